"""The local backend on the real diffusers / transformers code with tiny random-weight models:
one warm worker per family, progress, batching, seeds, retries after a kill, cancel, clear failures."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from gpu_workers.serve import error_kind
from tests.gpu_fixtures import build_tiny_models, models
from tools.gpu import GpuError, Look, LtxParams, SdxlParams, VisionParams
from tools.gpu import plan as gpu_plan
from tools.gpu.local import LocalBackend
from tools.models import Aspect
from tools.vision.verdict import parse_verdict


@pytest.fixture(scope="session")
def tiny_models() -> dict[str, str]:
    return build_tiny_models()


def sdxl_params(tmp_path: Path, n: int = 2, steps: int = 2, seeds: list[int] | None = None) -> SdxlParams:
    tmp_path.mkdir(exist_ok=True)
    width, height = gpu_plan.sdxl_size(Aspect.portrait, 8)
    return SdxlParams(
        prompts=["a lighthouse at dusk"] * n,
        seeds=seeds or list(range(n)),
        outputs=[str(tmp_path / f"k{i}.png") for i in range(n)],
        negative_prompt="blurry",
        width=width,
        height=height,
        steps=steps,
    )


async def test_sdxl_batch_warm_worker_progress_and_seeds(tiny_models: dict[str, str], tmp_path: Path) -> None:
    backend = LocalBackend(models(tiny_models))
    try:
        steps: list[tuple[int, int]] = []
        result = await backend.run("sdxl", sdxl_params(tmp_path, 3, seeds=[5, 6, 5]), lambda i, n: steps.append((i, n)))
        assert steps == [(3, 6), (6, 6)]  # one batch: every step advances all three pictures
        assert result.seeds == [5, 6, 5] and result.batch == 3
        sizes = {Image.open(p).size for p in result.outputs}
        assert sizes == {(96, 160)}  # SDXL's 768x1344 portrait bucket, divided by 8
        first, second, third = (np.asarray(Image.open(p), dtype=np.int16) for p in result.outputs)
        # a seed gives the same picture (up to batched float rounding) whatever its place in the batch
        assert np.abs(first - third).max() <= 2 < np.abs(first - second).max()
        await backend.run("sdxl", sdxl_params(tmp_path))
        assert backend.workers["sdxl"].starts == 1  # no model load the second time
        info = backend.workers["sdxl"].info  # what the worker chose, from its ready message
        assert info["tiling"] is True and info["slicing"] is True and info["offload"] == "none"
    finally:
        await backend.close()


async def test_per_shot_negative_prompts_change_only_their_shot(tiny_models: dict[str, str], tmp_path: Path) -> None:
    backend = LocalBackend(models(tiny_models))
    try:
        plain = await backend.run("sdxl", sdxl_params(tmp_path / "a", 2, seeds=[4, 4]))
        params = sdxl_params(tmp_path / "b", 2, seeds=[4, 4]).model_copy(
            update={"negative_prompts": ["blurry", "neon, crowds"]}
        )
        steered = await backend.run("sdxl", params)
        before, after = ([np.asarray(Image.open(p), dtype=np.int16) for p in r.outputs] for r in (plain, steered))
        assert np.abs(before[0] - after[0]).max() <= 2 < np.abs(before[1] - after[1]).max()
        with pytest.raises(GpuError, match="differ in length"):
            await backend.run("sdxl", params.model_copy(update={"negative_prompts": ["only one"]}))
    finally:
        await backend.close()


async def test_killed_worker_is_restarted_and_the_request_retried(tiny_models: dict[str, str], tmp_path: Path) -> None:
    backend = LocalBackend(models(tiny_models), retries=2)
    worker = backend.worker("sdxl")
    killed: list[int] = []

    def kill_once(step: int, total: int) -> None:
        if not killed and worker.proc is not None:
            killed.append(worker.proc.pid)
            os.kill(worker.proc.pid, signal.SIGKILL)

    try:
        result = await backend.run("sdxl", sdxl_params(tmp_path, 1, steps=6), kill_once)
        assert killed and worker.starts == 2
        assert Image.open(result.outputs[0]).size == (96, 160)
    finally:
        await backend.close()


async def test_cancel_stops_the_request_and_the_worker_serves_the_next(
    tiny_models: dict[str, str], tmp_path: Path
) -> None:
    backend = LocalBackend(models(tiny_models))
    try:
        first_step = asyncio.Event()
        task = asyncio.create_task(
            backend.run("sdxl", sdxl_params(tmp_path, 1, steps=200), lambda i, n: first_step.set())
        )
        await asyncio.wait_for(first_step.wait(), 60)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        result = await backend.run("sdxl", sdxl_params(tmp_path, 1))
        assert Path(result.outputs[0]).is_file()
        assert backend.workers["sdxl"].starts == 1  # cancelled in the worker, not by killing it
    finally:
        await backend.close()


async def test_ltx_clip_from_a_keyframe(tiny_models: dict[str, str], tmp_path: Path) -> None:
    Image.new("RGB", (1080, 1920), (200, 120, 40)).save(tmp_path / "key.png")
    width, height = gpu_plan.ltx_size(Aspect.portrait, 8)
    frames = gpu_plan.ltx_frames(0.5)
    backend = LocalBackend(models(tiny_models))
    try:
        result = await backend.run(
            "ltx",
            LtxParams(
                image=str(tmp_path / "key.png"),
                prompt="waves",
                width=width,
                height=height,
                num_frames=frames,
                steps=2,
                output=str(tmp_path / "clip.mp4"),
            ),
        )
    finally:
        await backend.close()
    with av.open(str(tmp_path / "clip.mp4")) as container:
        stream = container.streams.video[0]
        decoded = sum(1 for _ in container.decode(stream))
        assert (stream.width, stream.height) == (width, height) == (64, 96)
    assert decoded == result.frames == frames == 17


async def test_vision_verdict_from_random_weights_is_recorded_unparsed(
    tiny_models: dict[str, str], tmp_path: Path
) -> None:
    Image.new("RGB", (108, 192), (10, 60, 90)).save(tmp_path / "a.png")
    Image.new("RGB", (108, 192), (90, 60, 10)).save(tmp_path / "b.png")
    backend = LocalBackend(models(tiny_models))
    try:
        judged = await backend.run(
            "vision",
            VisionParams(
                images=[str(tmp_path / "a.png"), str(tmp_path / "b.png")],
                looks=[Look(image=1, prompt="a whale", previous=0)],
                max_new_tokens=24,
            ),
        )
        [verdict] = judged.verdicts
        info = backend.workers["vision"].info
    finally:
        await backend.close()
    assert info["chat_template"] is True and info["model_type"] == "llava"  # the chat-template branch ran
    assert verdict.parsed is False and verdict.score is None and verdict.value is None
    assert not gpu_plan.needs_retry(verdict, threshold=6)  # noise is no reason to redraw


def test_verdict_parsing_policy() -> None:
    good = parse_verdict(
        'Sure! {"score": 4, "missing": ["whale", "moon"], "unwanted": "text, watermark",'
        ' "consistent": true} hope that helps'
    )
    assert good.parsed and good.score == 4 and good.consistent is True
    assert good.missing == ["whale", "moon"] and good.unwanted == ["text", "watermark"]
    assert gpu_plan.needs_retry(good, 6) and not gpu_plan.needs_retry(good, 4)
    older = parse_verdict('{"adherence": 4, "quality": 8.5}')  # a judge answering the older two scores
    assert older.parsed and older.value == 4
    prompt, negative = gpu_plan.redraw_prompts("a lighthouse keeper on a cliff at dusk", "blurry", good)
    assert prompt == "whale, moon, a lighthouse keeper on a cliff at dusk"
    assert negative == "text, watermark, blurry"
    for text in ("no json here", '{"adherence": 42, "quality": 1}', '{"note": 1}', "{adherence: 3}", '{"score": null}'):
        verdict = parse_verdict(text)
        assert not verdict.parsed and verdict.adherence is None and verdict.raw == text


def test_sizes_and_frame_counts() -> None:
    for aspect in Aspect:
        w, h = gpu_plan.ltx_size(aspect)
        assert w % 32 == 0 and h % 32 == 0 and (w > h) == (aspect is Aspect.landscape)
    assert gpu_plan.sdxl_size(Aspect.portrait) == (768, 1344)
    for seconds in (0.2, 1.0, 3.7, 5.0):
        frames = gpu_plan.ltx_frames(seconds)
        assert (frames - 1) % 8 == 0 and frames >= seconds * 24
    assert gpu_plan.frame_cap(120) == 113 and gpu_plan.frame_cap(121) == 121


async def test_a_missing_model_fails_fast_with_one_clear_line(tmp_path: Path) -> None:
    backend = LocalBackend({"sdxl": str(tmp_path / "nope")}, load_timeout=60)
    started = time.perf_counter()
    with pytest.raises(GpuError) as caught:
        await backend.run("sdxl", sdxl_params(tmp_path))
    await backend.close()
    assert caught.value.kind == "load" and "nope" in str(caught.value) and "\n" not in str(caught.value)
    assert time.perf_counter() - started < 30


async def test_a_corrupt_model_fails_to_load(tmp_path: Path) -> None:
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "model_index.json").write_text("{not json", encoding="utf-8")
    backend = LocalBackend({"ltx": str(tmp_path / "bad")})
    with pytest.raises(GpuError, match=r"ltx model .*bad failed to load") as caught:
        await backend.run("ltx", LtxParams(image="k.png", prompt="p", output="o.mp4"))
    await backend.close()
    assert caught.value.kind == "load"


def test_out_of_memory_is_named() -> None:
    assert error_kind(RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")) == "oom"
    assert error_kind(type("OutOfMemoryError", (RuntimeError,), {})("boom")) == "oom"
    assert error_kind(RuntimeError("something else")) == "error"
    assert error_kind(RuntimeError("CUDA error: an illegal memory access was encountered")) == "fatal"


def test_the_scene_plan_steers_each_shots_prompts(tmp_path: Path) -> None:
    import json
    from types import SimpleNamespace

    from graph.nodes.prompts import negative_prompt, picture_prompt
    from tools.media.shots import read_scenes
    from tools.models import Shot

    (tmp_path / "scenes.json").write_text(
        json.dumps([{"shot": 1, "negative_prompt": "text", "mood": "hushed"}, {"shot": 2}])
    )
    ctx = SimpleNamespace(path=lambda name: tmp_path / name, settings=SimpleNamespace(sdxl_negative_prompt="blurry"))
    first, second = (
        Shot(index=i, start=i, end=i + 1, first_word=0, last_word=0, text="t", key_phrase="k", prompt=f"shot {i}")
        for i in range(2)
    )
    scenes = read_scenes(ctx.path("scenes.json"))
    assert picture_prompt(first, scenes) == "shot 0, hushed mood" and picture_prompt(second, scenes) == "shot 1"
    assert negative_prompt(ctx, first, scenes) == "text, blurry"  # type: ignore[arg-type]
    assert negative_prompt(ctx, second, scenes) == "blurry"  # type: ignore[arg-type]
