"""bench/gpu_smoke.py's checks that cannot run on a CPU box for real (issue 21): the OOM check's
bisection and its verdicts against a simulated card, the ballast's filling against a fake torch
with the caching allocator's block sizes, and the distilled LTXConditionPipeline the tiny builder makes."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from collections import deque
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from bench.gpu_smoke import BALLAST, expect_distilled, find_halving, oom_check
from gpu_workers.protocol import ImageResult, SdxlParams
from tools.gpu import GpuError

MIB = 1 << 20


class Card:
    """The SDXL worker on a card with `free` MiB left: under `one` MiB even one picture runs out of
    memory, under `two` the batch of two does and the worker halves it."""

    def __init__(self, one: int, two: int, restart_on_oom: bool = False) -> None:
        self.one, self.two, self.restart_on_oom = one, two, restart_on_oom
        self.free = 80_000
        self.starts = 1
        self.stderr_tail: deque[str] = deque(maxlen=20)
        self.closed = False

    # the ballast's side
    async def leave(self, mib: int) -> dict[str, float]:
        self.free = mib
        return {"free_mib": float(mib), "held_mib": 80_000.0 - mib}

    async def close(self) -> None:
        self.closed, self.free = True, 80_000

    # the backend's side
    def worker(self, family: str) -> Card:
        return self

    async def run(self, family: str, params: SdxlParams, progress: Any = None) -> ImageResult:
        if self.free < self.two:
            self.stderr_tail.append("sdxl out of memory; retrying with batches of 1")
        if self.free < self.one:
            if self.restart_on_oom:
                self.starts += 1
            raise GpuError("sdxl: OutOfMemoryError: CUDA out of memory. Tried to allocate 20.00 MiB", "oom")
        for i, out in enumerate(params.outputs):
            noise = np.random.default_rng(i).integers(0, 255, (16, 16, 3), dtype=np.uint8)
            Image.fromarray(noise).save(out)
        return ImageResult(
            outputs=params.outputs,
            seeds=params.seeds,
            width=params.width,
            height=params.height,
            batch=1 if self.free < self.two else 2,
        )


async def check(card: Card, tmp_path: Path) -> tuple[dict[str, Any], list[str]]:
    return await oom_check(card, card, tmp_path, real=False)  # type: ignore[arg-type]


async def test_the_oom_check_finds_where_the_batch_halves_and_the_same_worker_serves_after(tmp_path: Path) -> None:
    card = Card(one=300, two=420)
    fields, failed = await check(card, tmp_path)
    assert failed == [] and fields["oom_leaves_serving"] is True and fields["oom_served_after"] is True
    full = fields["oom_full_card"]
    assert full["free_mib"] == 0 and full["outcome"] == "oom" and full["halving_logged"]
    assert "OutOfMemoryError" in full["error"]
    assert 300 <= fields["oom_halved_at_free_mib"] < 420
    assert card.closed and len(fields["oom_probes"]) <= 8


async def test_a_card_that_never_runs_out_of_memory_fails_the_check(tmp_path: Path) -> None:
    fields, failed = await check(Card(one=0, two=0), tmp_path)
    assert fields["oom_leaves_serving"] is False
    assert failed[0] == "sdxl with the card full (0.0 MiB free): whole, no out-of-memory"
    assert failed[1].startswith("sdxl: no free memory found where two pictures ran out and one fitted")


async def test_no_level_where_one_picture_fits_and_two_do_not_fails_the_check(tmp_path: Path) -> None:
    fields, failed = await check(Card(one=301, two=302), tmp_path)
    assert len(failed) == 1 and "no free memory found" in failed[0] and fields["oom_halved_at_free_mib"] is None


async def test_a_worker_restarted_by_the_out_of_memory_fails_the_check(tmp_path: Path) -> None:
    _, failed = await check(Card(one=300, two=420, restart_on_oom=True), tmp_path)
    assert failed and failed[-1].startswith("sdxl: the worker was restarted during the OOM check")


async def test_the_bisection_stops_on_another_error_and_at_its_resolution() -> None:
    seen: list[int] = []

    async def failing(mib: int) -> str:
        seen.append(mib)
        return "error" if mib > 100 else "oom"

    assert await find_halving(failing, 64) is None and seen == [64, 128]

    async def gapless(mib: int) -> str:
        return "oom" if mib < 200 else "whole"

    assert await find_halving(gapless, 64, limit=50) is None


FAKE_TORCH = '''
"""Just what the ballast calls, with the CUDA caching allocator's segment sizes: up to 1 MiB from
2 MiB segments shared by the small blocks, under 10 MiB a 20 MiB segment, else rounded up to 2 MiB."""
MIB = 1 << 20
uint8 = "uint8"
state = {"free": 80 * 1024 * MIB - 3 * MIB // 2, "small": 0, "small_segments": 0}


class OutOfMemoryError(RuntimeError):
    pass


class Tensor:
    def __init__(self, n, segment, small):
        self.n, self.segment, self.small = n, segment, small

    def numel(self):
        return self.n

    def __del__(self):
        if self.small:
            state["small"] -= 1
        else:
            state["free"] += self.segment


def empty(n, dtype=None, device=None):
    if n <= MIB:
        if state["small"] >= 2 * state["small_segments"]:
            if state["free"] < 2 * MIB:
                raise OutOfMemoryError("CUDA out of memory")
            state["free"] -= 2 * MIB
            state["small_segments"] += 1
        state["small"] += 1
        return Tensor(n, 0, True)
    segment = 20 * MIB if n < 10 * MIB else -(-n // (2 * MIB)) * 2 * MIB
    if segment > state["free"] - 4 * MIB * (segment > 1024 * MIB):  # a huge cudaMalloc wants some slack
        raise OutOfMemoryError("CUDA out of memory")
    state["free"] -= segment
    return Tensor(n, segment, False)


class cuda:
    OutOfMemoryError = OutOfMemoryError

    @staticmethod
    def mem_get_info():
        return state["free"], 80 * 1024 * MIB

    @staticmethod
    def empty_cache():
        kept = -(-state["small"] // 2)
        state["free"] += (state["small_segments"] - kept) * 2 * MIB
        state["small_segments"] = kept

    @staticmethod
    def synchronize():
        pass
'''


def test_the_ballast_leaves_what_it_is_asked_to_within_two_mib(tmp_path: Path) -> None:
    (tmp_path / "torch.py").write_text(textwrap.dedent(FAKE_TORCH), encoding="utf-8")
    asks = [0, 100, 3, 0, 12_345, 1]
    answer = subprocess.run(
        [sys.executable, "-c", BALLAST],
        input="".join(f"{a}\n" for a in asks),
        capture_output=True,
        text=True,
        timeout=60,
        env={"PYTHONPATH": str(tmp_path)},
        check=True,
    )
    levels = [json.loads(line) for line in answer.stdout.splitlines()]
    assert len(levels) == len(asks)
    for ask, level in zip(asks, levels, strict=True):
        assert ask <= level["free_mib"] < ask + 2, (ask, level)
        assert level["held_mib"] > 80 * 1024 - ask - 30


def test_the_distilled_row_fails_the_image_to_video_pipeline_and_a_single_generation() -> None:
    info = {"pipeline": "LTXConditionPipeline", "distilled": True}
    assert expect_distilled(info, {"segments": 2, "frames": 25, "steps": (16, 16)}, 25) == []
    assert expect_distilled({"pipeline": "LTXImageToVideoPipeline", "distilled": False}, {"segments": 1}, 25) == [
        "ltx-distilled: the worker built LTXImageToVideoPipeline, not LTXConditionPipeline",
        "ltx-distilled: the worker did not take the checkpoint as distilled",
        "ltx-distilled: 1 generation(s), no continuation ran",
        "ltx-distilled: None frames, not 25",
        "ltx-distilled: progress ended at None, not the distilled schedule's 8",
    ]


def test_the_tiny_builder_makes_a_distilled_condition_pipeline(tmp_path: Path) -> None:
    from gpu_workers import families
    from gpu_workers.tiny import build_ltx

    folder = build_ltx(tmp_path / "ltx-distilled", "LTXConditionPipeline")
    index = json.loads((folder / "model_index.json").read_text(encoding="utf-8"))
    assert index["_class_name"] == "LTXConditionPipeline"
    ltx = families.load("ltx", str(folder))
    assert ltx.info["pipeline"] == "LTXConditionPipeline" and ltx.info["distilled"] is True
    with pytest.raises(ValueError, match="LTXConditionPipeline"):
        build_ltx(tmp_path / "other", "LTXPipeline")
