"""Benchmark: the full offline job (`make --yes`) for a 45 s and a 90 s video.

Prints wall seconds per stage, the orchestration overhead (graph + checkpoints + job records:
wall time not spent inside any stage; target under 2% of wall), the largest event-loop lag
(target under 50 ms) and peak memory.

    .venv/bin/python bench/pipeline.py [--durations 45 90]
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import tempfile
import time
from pathlib import Path

from graph.service import JobService, Requester
from graph.state import JobRequest
from tools.media.probe import probe
from tools.settings import get_settings

PROMPT = "A clockmaker who builds a clock that runs backwards"


async def one_job(data: Path, duration: float) -> None:
    settings = get_settings().model_copy(update={"data_dir": data})
    async with JobService.open(settings) as svc:
        start = time.perf_counter()
        job_id = await svc.start(JobRequest(prompt=PROMPT, duration=duration), Requester(id="bench"), auto_approve=True)
        record = await svc.wait(job_id)
        wall = time.perf_counter() - start
        stages = svc.status(job_id).stages
    assert record.status == "done", record.error
    in_stages = sum(s.seconds for s in stages)
    video = probe(Path(record.artifacts["final_video"])).duration
    print(f"\n{duration:.0f} s requested -> {video:.1f} s video, job {job_id}")
    for s in stages:
        print(f"  {s.name:<18} {s.status:<8} {s.seconds:7.2f} s  {s.provider or ''}")
    overhead = wall - in_stages
    print(f"  wall {wall:.1f} s, real-time factor {wall / video:.3f}")
    print(f"  orchestration overhead {overhead:.2f} s = {100 * overhead / wall:.2f}% of wall (target < 2%)")
    print(f"  largest event-loop lag {record.max_loop_lag_ms} ms (target < 50 ms)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--durations", type=float, nargs="+", default=[45, 90])
    args = parser.parse_args()
    for duration in args.durations:
        with tempfile.TemporaryDirectory() as tmp:
            asyncio.run(one_job(Path(tmp), duration))
    child = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"\npeak memory: python {own:.0f} MiB, largest FFmpeg child {child:.0f} MiB")


if __name__ == "__main__":
    main()
