"""What a real card would meet, proven on the CPU with the tiny models: generators on the
execution device, VAE tiling/slicing on `pipe.vae`, offload choices, SDXL batch halving on an
out-of-memory error, LTX clips longer than one generation extended (never looped), workers that
exit on CUDA errors, die with their client, abandon a request whose client is gone, unload when
idle and see only their own card."""

from __future__ import annotations

import asyncio
import io
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, ClassVar

import av
import numpy as np
import pytest
import torch
from PIL import Image

from gpu_workers import families
from gpu_workers.protocol import Message, Request
from gpu_workers.serve import EXIT_FATAL, Server
from tests.gpu_fixtures import build_tiny_models, models
from tools.gpu import Look, LtxParams, SdxlParams, VisionParams
from tools.gpu.local import LocalBackend, parse_devices
from tools.vision import verdict

GIB = 1 << 30


@pytest.fixture(scope="session")
def tiny_models() -> dict[str, str]:
    return build_tiny_models()


class Spy:
    """Forwards to the real pipeline, recording each call's keyword arguments; `fail` may raise first."""

    def __init__(self, pipe: Any, fail: Any = None) -> None:
        self.pipe, self.fail, self.calls = pipe, fail, list[dict[str, Any]]()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.pipe, name)

    def __call__(self, **kwargs: Any) -> Any:
        self.calls.append(kwargs)
        if self.fail is not None:
            self.fail(kwargs)
        return self.pipe(**kwargs)


def sdxl_params(out: Path, n: int, steps: int = 2) -> SdxlParams:
    out.mkdir(parents=True, exist_ok=True)
    return SdxlParams(
        prompts=[f"a lighthouse {i}" for i in range(n)],
        seeds=list(range(10, 10 + n)),
        outputs=[str(out / f"k{i}.png") for i in range(n)],
        width=64,
        height=96,
        steps=steps,
    )


def test_generators_live_on_the_execution_device_and_tiling_reaches_the_vae(
    tiny_models: dict[str, str], tmp_path: Path
) -> None:
    folders = models(tiny_models)
    sdxl = families.load("sdxl", folders["sdxl"])
    assert sdxl.pipe.vae.use_tiling and sdxl.pipe.vae.use_slicing  # the VAE's own switches, not the pipe's
    spy = Spy(sdxl.pipe)
    sdxl.pipe = spy
    sdxl(sdxl_params(tmp_path, 2).model_dump(), lambda i, n: None)
    generators = spy.calls[0]["generator"]
    assert len(generators) == 2
    assert all(g.device == spy.pipe._execution_device for g in generators)

    ltx = families.load("ltx", folders["ltx"])
    assert ltx.pipe.vae.use_tiling and ltx.pipe.vae.config.timestep_conditioning  # decode draws noise on device
    assert ltx.info["pipeline"] == "LTXImageToVideoPipeline"  # from model_index.json's _class_name
    spy = Spy(ltx.pipe)
    ltx.pipe = spy
    Image.new("RGB", (64, 96), (200, 80, 20)).save(tmp_path / "key.png")
    ltx(
        LtxParams(
            image=str(tmp_path / "key.png"),
            prompt="waves",
            output=str(tmp_path / "c.mp4"),
            width=64,
            height=96,
            num_frames=9,
            max_frames=9,
            steps=1,
        ).model_dump(),
        lambda i, n: None,
    )
    call = spy.calls[0]
    assert call["generator"].device == spy.pipe._execution_device
    assert call["decode_timestep"] == 0.05 and call["decode_noise_scale"] == 0.025 and call["guidance_scale"] == 3


def test_a_vae_without_tiling_fails_loudly() -> None:
    class Vae:
        pass

    class Pipe:
        vae = Vae()
        components: ClassVar[dict[str, Any]] = {}

    with pytest.raises(AttributeError, match="enable_tiling"):  # tiling is wanted on a CPU
        families.place(Pipe(), "ltx", "cpu")


def test_offload_is_chosen_from_free_memory() -> None:
    pick = families.pick_offload
    assert pick("auto", free=80 * GIB, weights=10 * GIB, largest=5 * GIB, headroom=4 * GIB) == "none"
    assert pick("auto", free=12 * GIB, weights=18 * GIB, largest=6 * GIB, headroom=4 * GIB) == "model"
    assert pick("auto", free=6 * GIB, weights=18 * GIB, largest=6 * GIB, headroom=4 * GIB) == "sequential"
    assert pick("model", free=80 * GIB, weights=1, largest=1, headroom=1) == "model"
    with pytest.raises(ValueError, match="STORYBOT_GPU_OFFLOAD"):
        pick("always", free=1, weights=1, largest=1, headroom=1)


def test_an_oom_on_a_batch_halves_it_and_keeps_every_seeds_picture(tiny_models: dict[str, str], tmp_path: Path) -> None:
    sdxl = families.load("sdxl", models(tiny_models)["sdxl"])
    whole = sdxl(sdxl_params(tmp_path / "whole", 4).model_dump(), lambda i, n: None)
    assert whole.batch == 4

    def memory_for_one(kwargs: dict[str, Any]) -> None:  # a card with room for one picture at a time
        if len(kwargs["prompt"]) > 1:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    spy = Spy(sdxl.pipe, memory_for_one)
    sdxl.pipe = spy
    steps: list[tuple[int, int]] = []
    halved = sdxl(sdxl_params(tmp_path / "halved", 4).model_dump(), lambda i, n: steps.append((i, n)))
    assert [len(c["prompt"]) for c in spy.calls] == [4, 2, 1, 1, 1, 1]
    assert halved.batch == 1 and steps[-1] == (8, 8)
    for a, b in zip(whole.outputs, halved.outputs, strict=True):  # the same seeds, the same pictures
        assert np.abs(np.asarray(Image.open(a), np.int16) - np.asarray(Image.open(b), np.int16)).max() <= 2
    spy.fail = lambda kwargs: (_ for _ in ()).throw(torch.OutOfMemoryError("CUDA out of memory"))
    with pytest.raises(torch.OutOfMemoryError):  # one picture that does not fit fails as OOM
        sdxl(sdxl_params(tmp_path / "none", 1).model_dump(), lambda i, n: None)


def test_vision_judges_keyframes_in_batches_halved_on_oom(tiny_models: dict[str, str], tmp_path: Path) -> None:
    """Several keyframes in one generation (left-padded prompts) say what one at a time says; an
    out-of-memory halves the batch, and one look that does not fit fails as OOM."""
    judge = families.load("vision", models(tiny_models)["vision"])
    images = []
    for i, colour in enumerate([(10, 60, 90), (200, 40, 40), (40, 160, 60)]):
        Image.new("RGB", (108 + 16 * i, 192), colour).save(tmp_path / f"k{i}.png")
        images.append(str(tmp_path / f"k{i}.png"))
    looks = [
        Look(image=0, prompt="a whale"),
        Look(image=1, prompt="a lighthouse on a cliff at dusk, waves", previous=0),
        Look(image=2, prompt="rain", previous=1),
    ]
    params = VisionParams(images=images, looks=looks, max_new_tokens=12, batch=3)
    alone = judge(params.model_copy(update={"batch": 1}).model_dump(), lambda i, n: None)
    steps: list[tuple[int, int]] = []
    together = judge(params.model_dump(), lambda i, n: steps.append((i, n)))
    assert together.batch == 3 and steps == [(0, 3), (3, 3)]
    assert [v.raw for v in together.verdicts] == [v.raw for v in alone.verdicts]
    assert all(v.raw for v in together.verdicts)  # random weights still generate tokens

    generate, sizes = judge.model.generate, list[int]()

    def room_for_one(**kwargs: Any) -> Any:
        sizes.append(int(kwargs["input_ids"].shape[0]))
        if sizes[-1] > 1:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 3.00 GiB")
        return generate(**kwargs)

    judge.model.generate = room_for_one
    halved = judge(params.model_dump(), lambda i, n: None)
    assert sizes == [3, 1, 1, 1] and halved.batch == 1
    assert [v.raw for v in halved.verdicts] == [v.raw for v in alone.verdicts]
    judge.model.generate = lambda **kwargs: (_ for _ in ()).throw(torch.OutOfMemoryError("CUDA out of memory"))
    with pytest.raises(torch.OutOfMemoryError):
        judge(params.model_copy(update={"looks": looks[:1]}).model_dump(), lambda i, n: None)


def test_ltx_segments_cover_the_shot() -> None:
    assert families.segments(121, 121) == [121]
    assert families.segments(241, 121) == [121, 121]
    assert families.segments(145, 121) == [121, 25]
    for total in (9, 57, 161, 257, 401):
        plan = families.segments(total, 121)
        assert sum(plan) - (len(plan) - 1) == total and all((c - 1) % 8 == 0 and c <= 121 for c in plan)


def test_a_shot_longer_than_the_cap_is_extended_from_its_last_frame(
    tiny_models: dict[str, str], tmp_path: Path
) -> None:
    ltx = families.load("ltx", models(tiny_models)["ltx"])
    Image.new("RGB", (64, 96), (30, 120, 200)).save(tmp_path / "key.png")
    spy = Spy(ltx.pipe)
    ltx.pipe = spy
    result = ltx(
        LtxParams(
            image=str(tmp_path / "key.png"),
            prompt="waves",
            output=str(tmp_path / "c.mp4"),
            width=64,
            height=96,
            num_frames=25,
            max_frames=17,
            steps=1,
        ).model_dump(),
        lambda i, n: None,
    )
    assert result.segments == 2 and result.frames == 25
    assert [c["num_frames"] for c in spy.calls] == [17, 9]
    assert spy.calls[1]["image"] is not spy.calls[0]["image"]  # the continuation starts from the last frame
    with av.open(str(tmp_path / "c.mp4")) as container:
        frames = [f.to_ndarray(format="rgb24").astype(np.int16) for f in container.decode(video=0)]
    assert len(frames) == 25
    assert np.abs(frames[-1] - frames[0]).mean() > 0.5  # not a loop back to the start

    def stop_in_the_second_segment(step: int, total: int) -> None:
        if step > 1:
            raise RuntimeError("cancelled by the client")

    with pytest.raises(RuntimeError, match="cancelled"):  # the first segment was already being encoded
        ltx(
            LtxParams(
                image=str(tmp_path / "key.png"),
                prompt="waves",
                output=str(tmp_path / "gone.mp4"),
                width=64,
                height=96,
                num_frames=25,
                max_frames=17,
                steps=1,
            ).model_dump(),
            stop_in_the_second_segment,
        )
    assert not list(tmp_path.glob("*gone*"))  # neither the clip nor its partial file


def test_a_cuda_error_makes_the_worker_exit_after_reporting_it() -> None:
    out = io.StringIO()
    server = Server(out)
    served: list[str] = []

    def runner(params: dict[str, Any], progress: Any) -> Any:
        served.append(params["n"])
        raise RuntimeError("CUDA error: an illegal memory access was encountered")

    for n in ("1", "2"):
        server.pending.put(Request(id=n, params={"n": n}))
    assert server.serve(runner) == EXIT_FATAL
    assert served == ["1"]  # the second request is left for a fresh worker
    message = Message.model_validate_json(out.getvalue().splitlines()[0])
    assert message.error_kind == "fatal" and "illegal memory access" in (message.error or "")


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except FileNotFoundError:
        return False
    return state not in ("Z", "X")


def _wait_gone(pid: int, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not _alive(pid):
            return True
        time.sleep(0.1)
    return False


def test_a_worker_dies_with_its_client(tiny_models: dict[str, str], tmp_path: Path) -> None:
    """The client (here a small parent process) is SIGKILLed mid-request: its worker goes too."""
    parent = (
        "import subprocess, sys\n"
        "p = subprocess.Popen([sys.executable, '-m', 'gpu_workers.serve', 'sdxl', sys.argv[1]],"
        " stdin=subprocess.PIPE, stdout=subprocess.PIPE)\n"
        "assert b'ready' in p.stdout.readline()\n"
        "p.stdin.write(sys.argv[2].encode() + b'\\n'); p.stdin.flush()\n"
        "p.stdout.readline()\n"  # the first progress step: it is computing
        "print(p.pid, flush=True)\n"
        "import time; time.sleep(600)\n"
    )
    request = Request(id="r1", params=sdxl_params(tmp_path, 1, steps=500).model_dump()).model_dump_json()
    proc = subprocess.Popen(
        [sys.executable, "-c", parent, models(tiny_models)["sdxl"], request], stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None
        worker = int(proc.stdout.readline())
        assert _alive(worker)
        proc.kill()
        assert _wait_gone(worker, 15), "the worker outlived its client"
    finally:
        proc.kill()
        proc.wait()


def test_a_request_whose_client_is_gone_is_abandoned(tiny_models: dict[str, str], tmp_path: Path) -> None:
    worker = subprocess.Popen(
        [sys.executable, "-m", "gpu_workers.serve", "sdxl", models(tiny_models)["sdxl"]],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert worker.stdin is not None and worker.stdout is not None
        assert '"ready"' in worker.stdout.readline()
        request = Request(id="r1", params=sdxl_params(tmp_path, 1, steps=500).model_dump())
        worker.stdin.write(request.model_dump_json() + "\n")
        worker.stdin.flush()
        assert '"progress"' in worker.stdout.readline()
        started = time.monotonic()
        worker.stdin.close()  # the client closed its end (it crashed, or gave up)
        assert worker.wait(30) == 0
        assert time.monotonic() - started < 30  # well before 500 steps
        assert not Path(tmp_path / "k0.png").exists()
    finally:
        worker.kill()


async def test_an_idle_worker_unloads_and_the_next_request_starts_a_fresh_one(
    tiny_models: dict[str, str], tmp_path: Path
) -> None:
    backend = LocalBackend(models(tiny_models), idle_unload=1, devices=parse_devices("sdxl=3, ltx=1"))
    try:
        await backend.run("sdxl", sdxl_params(tmp_path, 1, steps=1))
        worker = backend.workers["sdxl"]
        assert worker.proc is not None
        environ = Path(f"/proc/{worker.proc.pid}/environ").read_bytes().split(b"\0")
        assert b"CUDA_VISIBLE_DEVICES=3" in environ  # the family's own card
        assert await asyncio.wait_for(worker.proc.wait(), 30) == 0  # unloaded after a second idle
        result = await backend.run("sdxl", sdxl_params(tmp_path, 1, steps=1))
        assert Path(result.outputs[0]).is_file() and worker.starts == 2
    finally:
        await backend.close()


def test_bad_device_maps_are_refused() -> None:
    assert parse_devices("sdxl=0,ltx=1,vision=0,whisper=0") == {"sdxl": "0", "ltx": "1", "vision": "0", "whisper": "0"}
    for text in ("sdxl", "gpu=1", "ltx="):
        with pytest.raises(Exception, match="STORYBOT_GPU_DEVICES"):
            parse_devices(text)


def test_the_vision_judge_sees_the_whole_frame_under_a_megapixel() -> None:
    assert verdict.fit_pixels((1080, 1920)) == (768, 1365)
    assert verdict.fit_pixels((512, 896)) == (512, 896)  # never scaled up
    assert json.loads(verdict.VERDICT_PROMPT.split("like this example:\n")[1].format())["score"] == 4


def test_a_redraw_leads_with_what_was_missing_within_clips_77_tokens() -> None:
    from gpu_workers.protocol import Verdict
    from tools.gpu import plan

    long_prompt = ", ".join(f"detail number {i} of the old stone lighthouse" for i in range(30))
    verdict = Verdict(parsed=True, score=3, missing=["a red lantern", "the whale"], unwanted=["text", "watermark"])
    prompt, negative = plan.redraw_prompts(long_prompt, "blurry, low quality", verdict)
    assert prompt.startswith("a red lantern, the whale, detail number 0")
    assert plan.clip_tokens(prompt) <= plan.CLIP_TOKENS < plan.clip_tokens(long_prompt)
    assert long_prompt.startswith(prompt.removeprefix("a red lantern, the whale, "))  # cut at a word, in order
    assert negative == "text, watermark, blurry, low quality"
    assert plan.ltx_prompt("a lighthouse", plan.Motion.pan_left, "climax") == (
        "a lighthouse, the camera pans slowly to the left, dramatic motion"
    )


def test_a_celery_worker_must_name_its_queue() -> None:
    from tests.gpu_fixtures import STORYBOT

    done = subprocess.run(
        [STORYBOT, "worker"],
        env={**os.environ, "REDIS_URL": "redis://127.0.0.1:1/0"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2 and "--queue" in done.stderr and len(done.stderr.strip().splitlines()) == 1
