"""Benchmark: N keyframe requests through one warm worker versus a new process per request (the
seed's pattern: spawn Python, import torch and diffusers, load the model, run, exit), with the same
tiny SDXL model. Per-request overhead is the wall time the caller sees minus the time inside the
model (reported by the worker); the target for the warm worker is under 20 ms.

    .venv/bin/python bench/workers.py [--requests N] [--models DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from gpu_workers.protocol import Message, Request, SdxlParams
from tools.gpu.local import LocalBackend


def params(out: Path, i: int) -> SdxlParams:
    return SdxlParams(
        prompts=["a lighthouse at dusk"], seeds=[i], outputs=[str(out / f"k{i}.png")], width=64, height=64, steps=2
    )


async def warm(model: str, out: Path, n: int) -> list[tuple[float, float]]:
    backend = LocalBackend({"sdxl": model})
    try:
        await backend.run("sdxl", params(out, 0))  # load once, outside the measurement
        worker, timings = backend.worker("sdxl"), []
        for i in range(n):
            started = time.perf_counter()
            await backend.run("sdxl", params(out, i))
            timings.append((time.perf_counter() - started, worker.last_run_seconds))
        return timings
    finally:
        await backend.close()


def cold(model: str, out: Path, n: int) -> list[tuple[float, float]]:
    timings = []
    for i in range(n):
        started = time.perf_counter()
        request = Request(id=str(i), params=params(out, i).model_dump()).model_dump_json() + "\n"
        done = subprocess.run(
            [sys.executable, "-m", "gpu_workers.serve", "sdxl", model],
            input=request,
            capture_output=True,
            text=True,
            check=True,
        )
        result = Message.model_validate_json(done.stdout.splitlines()[-1])
        timings.append((time.perf_counter() - started, result.run_seconds or 0.0))
    return timings


def report(name: str, timings: list[tuple[float, float]]) -> float:
    walls = [w for w, _ in timings]
    overhead = statistics.median(w - r for w, r in timings) * 1000
    print(
        f"{name:>28}: {len(walls)} requests, median wall {statistics.median(walls) * 1000:8.1f} ms, "
        f"median overhead {overhead:8.1f} ms/request"
    )
    return overhead


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=20)
    parser.add_argument("--cold-requests", type=int, default=5, help="new-process requests (each costs seconds)")
    parser.add_argument("--models", type=Path, help="a `storybot models tiny` folder (built if omitted)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        models = args.models
        if models is None:
            models = root / "models"
            subprocess.run(
                [Path(sys.executable).with_name("storybot"), "models", "tiny", models, "--no-settings"],
                check=True,
                capture_output=True,
            )
        model = str(models / "sdxl")
        warm_timings = asyncio.run(warm(model, root, args.requests))
        warm_overhead = report("warm worker", warm_timings)
        cold_timings = cold(model, root, args.cold_requests)
        cold_overhead = report("new process per request", cold_timings)
        wall_ratio = statistics.median(w for w, _ in cold_timings) / statistics.median(w for w, _ in warm_timings)
        print(
            f"overhead ratio (new process / warm): {cold_overhead / warm_overhead:,.0f}x; "
            f"wall ratio: {wall_ratio:,.1f}x; "
            f"warm target < 20 ms: {'met' if warm_overhead < 20 else 'MISSED'}"
        )


if __name__ == "__main__":
    main()
