"""Benchmark: a 60 s, 8-shot 9:16 render of a fixed script with the offline defaults.

Prints wall seconds per stage, the real-time factor (wall / video seconds) of the final cut and of
the whole render, peak memory and file size. Targets on a 2-core machine: final cut <= 0.5,
whole render <= 0.75.

    .venv/bin/python bench/render.py [--keep DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import tempfile
import time
from pathlib import Path

from tools.render import RenderOptions, render

HERE = Path(__file__).resolve().parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", type=Path, help="render into this folder and keep it")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        out = args.keep or Path(tmp) / "out"
        start = time.perf_counter()
        artifacts = asyncio.run(render(RenderOptions(script=HERE / "story60.txt", out=out)))
        wall = time.perf_counter() - start
        meta = json.loads(Path(artifacts.metadata).read_text())
    video = meta["video"]["duration"]
    stages = meta["stage_seconds"]
    cut = stages["post_produce"]
    child_peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    self_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"video: {video:.1f} s, {meta['shots']} shots, {meta['video']['size_bytes'] / 2**20:.1f} MiB, "
          f"{meta['loudness']['integrated_lufs']} LUFS, {meta['loudness']['true_peak_dbtp']} dBTP")
    for name, seconds in stages.items():
        print(f"  {name:<14} {seconds:7.2f} s")
    print(f"whole render: {wall:.1f} s wall, real-time factor {wall / video:.3f} (target <= 0.75)")
    print(f"final cut:    {cut:.1f} s wall, real-time factor {cut / video:.3f} (target <= 0.5)")
    print(f"peak memory:  python {self_peak:.0f} MiB, largest FFmpeg child {child_peak:.0f} MiB")


if __name__ == "__main__":
    main()
