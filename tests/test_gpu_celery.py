"""The celery backend for real: a redis-server and a `storybot worker` process serving all four
tiny models through the same client API as the local backend, and a worker process killed
mid-task whose task is redelivered and completes."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from celery.result import AsyncResult
from PIL import Image

from tests.gpu_fixtures import children, redis_server, start_celery_worker
from tests.s3_server import S3Server
from tools.gpu import GpuError, Look, LtxParams, SdxlParams, VisionParams, WhisperParams, make_client
from tools.gpu.celery_backend import CeleryBackend
from tools.settings import Settings
from tools.tts import synthesize


@pytest.fixture
def redis_url(tmp_path: Path) -> Iterator[str]:
    with redis_server(tmp_path) as url:
        yield url


@pytest.fixture
def worker(redis_url: str, tmp_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    proc = start_celery_worker(redis_url, "sdxl,whisper,ltx,vision", tmp_path / "worker.log")
    yield proc
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def sdxl(tmp_path: Path, steps: int) -> SdxlParams:
    return SdxlParams(
        prompts=["a whale"], seeds=[3], outputs=[str(tmp_path / "k.png")], width=96, height=160, steps=steps
    )


async def test_same_api_and_a_killed_worker_process_is_redelivered(
    tiny_models: dict[str, str], redis_url: str, worker: subprocess.Popen[bytes], tmp_path: Path
) -> None:
    settings = Settings.model_validate(
        {"STORYBOT_GPU_BACKEND": "celery", "REDIS_URL": redis_url, "STORYBOT_GPU_REQUEST_TIMEOUT": 600, **tiny_models}
    )
    client = make_client(settings)
    assert isinstance(client, CeleryBackend)
    try:
        speech = await synthesize("A lost whale sang below the rocks.", tmp_path / "voice.wav")
        heard = await client.run("whisper", WhisperParams(audio=str(speech.wav), beam_size=1, max_new_tokens=16))
        assert abs(heard.duration - speech.duration) < 0.1
        Image.new("RGB", (108, 192), (30, 90, 160)).save(tmp_path / "key.png")
        clip = await client.run(
            "ltx",
            LtxParams(
                image=str(tmp_path / "key.png"),
                prompt="waves",
                width=64,
                height=96,
                num_frames=9,
                steps=2,
                output=str(tmp_path / "clip.mp4"),
            ),
        )
        assert clip.frames == 9 and (tmp_path / "clip.mp4").stat().st_size > 0
        judged = await client.run(
            "vision",
            VisionParams(images=[str(tmp_path / "key.png")], looks=[Look(image=0, prompt="waves")], max_new_tokens=16),
        )
        [verdict] = judged.verdicts
        assert verdict.parsed is False and verdict.score is None

        killed: list[int] = []

        def kill_the_pool_process(step: int, total: int) -> None:
            if not killed and step >= 1 and total > 1:  # mid-denoising
                pool = children(worker.pid)
                assert len(pool) == 1
                os.kill(pool[0], signal.SIGKILL)
                killed.append(pool[0])

        result = await client.run("sdxl", sdxl(tmp_path, steps=12), kill_the_pool_process)
        assert killed
        assert Image.open(result.outputs[0]).size == (96, 160)
        assert children(worker.pid) != killed  # a new pool process served the redelivered task
    finally:
        await client.close()


async def test_a_missing_model_is_reported_by_the_worker(
    redis_url: str, worker: subprocess.Popen[bytes], tmp_path: Path
) -> None:
    client = CeleryBackend({"sdxl": str(tmp_path / "nope")}, redis_url, request_timeout=60)
    try:
        with pytest.raises(GpuError, match=r"sdxl model .*nope failed to load") as caught:
            await client.run("sdxl", sdxl(tmp_path, 2))
        assert caught.value.kind == "load"
    finally:
        await client.close()


async def test_no_worker_on_the_queue_times_out_clearly(redis_url: str, tmp_path: Path) -> None:
    client = CeleryBackend({"ltx": "some/model"}, redis_url, request_timeout=1)
    try:
        with pytest.raises(GpuError, match="is a worker consuming queue 'ltx'") as caught:
            await client.run("ltx", LtxParams(image="k.png", prompt="p", output="o.mp4"))
        assert caught.value.kind == "timeout"
    finally:
        await client.close()


async def test_cancel_stops_a_running_task_and_the_worker_serves_the_next(
    tiny_models: dict[str, str], redis_url: str, worker: subprocess.Popen[bytes], tmp_path: Path
) -> None:
    client = CeleryBackend({"sdxl": tiny_models["STORYBOT_SDXL_MODEL"]}, redis_url, request_timeout=300)
    try:
        stepping = asyncio.Event()
        task = asyncio.create_task(
            client.run("sdxl", sdxl(tmp_path, steps=2000), lambda i, n: stepping.set() if i >= 1 else None)
        )
        await asyncio.wait_for(stepping.wait(), 120)
        started = time.monotonic()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert client.last_task_id is not None
        outcome = await asyncio.to_thread(AsyncResult(client.last_task_id, app=client.app).get, timeout=60)
        assert outcome["error_kind"] == "cancelled"  # stopped at a step, not run to its 2000th
        assert time.monotonic() - started < 60
        result = await client.run("sdxl", sdxl(tmp_path, steps=2))
        assert Image.open(result.outputs[0]).size == (96, 160)
    finally:
        await client.close()


async def test_with_object_storage_files_travel_as_keys_not_paths(
    tiny_models: dict[str, str], redis_url: str, tmp_path: Path, s3: S3Server
) -> None:
    """A GPU box that cannot see the runner's folder: inputs and outputs go through the bucket."""
    bucket = s3.bucket()
    remote = s3.env(bucket)
    proc = start_celery_worker(redis_url, "sdxl,whisper,ltx,vision", tmp_path / "worker.log", remote)
    settings = Settings.model_validate(
        {
            "STORYBOT_GPU_BACKEND": "celery",
            "REDIS_URL": redis_url,
            "STORYBOT_GPU_REQUEST_TIMEOUT": 600,
            "STORYBOT_DATA_DIR": str(tmp_path / "runner"),
            **tiny_models,
            **remote,
        }
    )
    client = make_client(settings)
    assert isinstance(client, CeleryBackend) and client.storage is not None
    job = tmp_path / "runner" / "jobs" / "0123456789ab"
    job.mkdir(parents=True)
    try:
        asked = [str(job / "keyframes" / "shot_01.png"), str(job / "keyframes" / "shot_02.png")]
        pictures = await client.run(
            "sdxl",
            SdxlParams(prompts=["a whale", "a lighthouse"], seeds=[3, 4], outputs=asked, width=96, height=160, steps=2),
        )
        assert pictures.outputs == asked and all(Image.open(p).size == (96, 160) for p in asked)
        clip = await client.run(
            "ltx",
            LtxParams(
                image=asked[0], prompt="waves", width=64, height=96, num_frames=9, steps=2, output=str(job / "c.mp4")
            ),
        )
        assert clip.output == str(job / "c.mp4") and clip.frames == 9 and (job / "c.mp4").stat().st_size > 0
        judged = await client.run(
            "vision",
            VisionParams(images=asked, looks=[Look(image=1, previous=0, prompt="a lighthouse")], max_new_tokens=16),
        )
        assert [v.parsed for v in judged.verdicts] == [False]
        speech = await synthesize("A lost whale sang below the rocks.", job / "voice.wav")
        heard = await client.run("whisper", WhisperParams(audio=str(speech.wav), beam_size=1, max_new_tokens=16))
        assert abs(heard.duration - speech.duration) < 0.1
        assert not s3.objects(bucket, "videos/gpu/"), "a request's objects outlived it"
    finally:
        await client.close()
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(30)
    shipped = (tmp_path / "worker.log").read_text(errors="replace").count("fetched from object storage")
    assert shipped == 4, (tmp_path / "worker.log").read_text(errors="replace")[-3000:]
