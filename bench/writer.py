"""Benchmark: the writer with no key, on this machine: seconds per 60 s script, words written
against the target, valid JSON, peak RSS; then the whole offline job with it.

Uses whatever `get_writer` picks with no key (a running local server, else the embedded writer's
model from `storybot models pull writer` / STORYBOT_WRITER_MODEL, else the template writer), so the
figures say which it measured.

    .venv/bin/python bench/writer.py [--scripts 3] [--job] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import subprocess
import sys
import tempfile
import time

from tools.llm import get_writer, target_words
from tools.llm.hygiene import word_count
from tools.llm.schemas import StoryIdea
from tools.settings import get_settings

REQUESTS = [
    "A lighthouse keeper who befriends a lost whale",
    "why octopuses have three hearts",
    "a robot who learns to paint",
]


async def scripts(count: int) -> dict[str, object]:
    writer = get_writer(get_settings())
    target = target_words(60, 150)
    runs = []
    for request in (REQUESTS * count)[:count]:
        start = time.perf_counter()
        text = await writer.script(request, StoryIdea(title=request, logline=request, hook=request, score=0), target)
        runs.append({"request": request, "seconds": round(time.perf_counter() - start, 1), "words": word_count(text)})
    return {
        "writer": writer.provider,
        "target_words": target,
        "runs": runs,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024,
    }


def job() -> dict[str, object]:
    """The whole offline job (`storybot make --yes`, 45 s) with the same writer, in a fresh process."""
    with tempfile.TemporaryDirectory(prefix="storybot-bench-") as data:
        start = time.perf_counter()
        done = subprocess.run(
            [sys.executable, "-m", "storybot", "make", REQUESTS[0], "--yes", "--json", "--data", data],
            capture_output=True,
            text=True,
            check=False,
        )
        took = time.perf_counter() - start
    return {"job_seconds": round(took, 1), "exit": done.returncode}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scripts", type=int, default=3)
    parser.add_argument("--job", action="store_true", help="also time a whole offline job")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    result = asyncio.run(scripts(args.scripts))
    if args.job:
        result |= job()
    if args.json:
        print(json.dumps(result))
        return
    print(f"writer: {result['writer']}, target {result['target_words']} words, peak RSS {result['peak_rss_mb']} MB")
    for run in result["runs"]:  # type: ignore[attr-defined]
        print(f"  {run['seconds']:>6} s  {run['words']:>4} words  {run['request']}")
    if "job_seconds" in result:
        print(f"whole job: {result['job_seconds']} s (exit {result['exit']})")


if __name__ == "__main__":
    main()
