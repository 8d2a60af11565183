"""Issue 21, what stops a first run on a real card, proven on the CPU with the tiny models: the vision
worker names the torchvision fix at load, Whisper falls back to the CPU when CUDA fails (a real
ctranslate2 error, not a mock), LTX decodes frame by frame when memory is short, and the card's
memory picks a profile."""

from __future__ import annotations

import importlib.util
import json
import math
import shutil
import wave
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

from gpu_workers import families
from gpu_workers.families.vision import matching_torchvision, torchvision_problem, vision_placement
from tests.gpu_fixtures import build_tiny_models, models
from tools.gpu import GpuError, Look, LtxParams, VisionParams, WhisperParams, profile_policy
from tools.gpu.local import LocalBackend, LocalWorker
from tools.gpu.profiles import pick_profile, profile_named, resolve_profile
from tools.settings import Settings

GIB = 1 << 30


@pytest.fixture(scope="session")
def tiny_models() -> dict[str, str]:
    return build_tiny_models()


def tone(path: Path, seconds: float = 2.0, rate: int = 16000) -> Path:
    t = np.arange(int(seconds * rate)) / rate
    pcm = (np.sin(2 * math.pi * 220 * t) * 8000).astype(np.int16)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm.tobytes())
    return path


def test_torchvision_release_matches_torch() -> None:
    assert matching_torchvision("2.13.0") == "pip install 'torchvision==0.28.*'"
    assert matching_torchvision("2.11.0+cu130") == (
        "pip install 'torchvision==0.26.*' --index-url https://download.pytorch.org/whl/cu130"
    )


async def test_a_qwen_vl_judge_without_torchvision_fails_at_load_with_the_fix(tmp_path: Path) -> None:
    if importlib.util.find_spec("torchvision") is not None:
        pytest.skip("torchvision is installed here")
    folder = tmp_path / "qwen"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"model_type": "qwen2_5_vl"}), encoding="utf-8")
    backend = LocalBackend({"vision": str(folder)}, load_timeout=120)
    with pytest.raises(GpuError) as caught:
        await backend.run(
            "vision", VisionParams(images=[str(tmp_path / "k.png")], looks=[Look(image=0, prompt="a lighthouse")])
        )
    await backend.close()
    text = str(caught.value)
    assert caught.value.kind == "load" and "\n" not in text
    assert "qwen2_5_vl processor needs torchvision, which is not installed" in text
    assert text.endswith(matching_torchvision(torch.__version__))
    assert torchvision_problem("llava", torch.__version__) is None  # a LLaVA judge loads without it


async def test_whisper_falls_back_to_the_cpu_when_cuda_fails(tiny_models: dict[str, str], tmp_path: Path) -> None:
    """STORYBOT_WHISPER_DEVICE=cuda on a machine without a usable card: ctranslate2 itself refuses
    (as it does when libcublas.so.12 is missing), and the worker serves on the CPU in int8."""
    worker = LocalWorker(
        "whisper",
        models(tiny_models)["whisper"],
        load_timeout=120,
        request_timeout=120,
        retries=0,
        queue_size=2,
        env={"STORYBOT_WHISPER_DEVICE": "cuda"},
    )
    try:
        params = WhisperParams(audio=str(tone(tmp_path / "a.wav")), language="en", beam_size=1, max_new_tokens=8)
        heard = await worker.run(params.model_dump(), None)
        assert worker.info["device"] == "cpu" and worker.info["dtype"] == "int8" and worker.info["probed"]
        assert worker.info["fallback"].startswith("whisper on CUDA failed (RuntimeError: CUDA")
        assert any("notice: whisper on CUDA failed" in line for line in worker.stderr_tail)
        assert heard["duration"] == pytest.approx(2.0, abs=0.05)
    finally:
        await worker.close()


async def test_whisper_on_the_cpu_probes_without_a_fallback(tiny_models: dict[str, str]) -> None:
    worker = LocalWorker(
        "whisper", models(tiny_models)["whisper"], load_timeout=120, request_timeout=120, retries=0, queue_size=2
    )
    try:
        await worker.start()
        assert worker.info == {"device": "cpu", "dtype": "int8", "offload": "none", "probed": True}
    finally:
        await worker.close()


def test_ltx_decodes_frame_by_frame_when_memory_is_short(
    tiny_models: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The tiny VAE's real `_temporal_tiled_decode` runs (counted, not replaced) when framewise
    decoding is on; a 17-frame clip has 5 latent frames, over the 4 one temporal tile holds."""
    monkeypatch.setenv("STORYBOT_LTX_FRAMEWISE", "on")
    ltx = families.load("ltx", models(tiny_models)["ltx"])
    assert ltx.info["temporal_tiling"] is True and ltx.info["tiling"] is True
    vae = ltx.pipe.vae
    real, calls = vae._temporal_tiled_decode, []

    def counted(*args: Any, **kwargs: Any) -> Any:
        calls.append(args[0].shape)
        return real(*args, **kwargs)

    vae._temporal_tiled_decode = counted
    Image.new("RGB", (64, 96), (30, 120, 200)).save(tmp_path / "key.png")
    params = LtxParams(
        image=str(tmp_path / "key.png"),
        prompt="waves",
        output=str(tmp_path / "c.mp4"),
        width=64,
        height=96,
        num_frames=17,
        max_frames=17,
        steps=1,
    )
    result = ltx(params.model_dump(), lambda i, n: None)
    assert result.frames == 17 and Path(result.output).stat().st_size > 0
    assert len(calls) == 1 and calls[0][2] == 5  # (batch, channels, latent frames, h, w)


def test_tiled_decoding_is_chosen_from_memory() -> None:
    """Spatial and frame-by-frame tiling only where memory is short: on an 80 GB card with the whole
    pipeline resident both are off (tiling costs ~30% of the decode), on a 24 GB card both are on."""
    short = families.short_of_memory
    assert short("cuda", "none", free=70 * GIB, weights=20 * GIB, headroom=8 * GIB) is False  # 80 GB
    assert short("cuda", "none", free=30 * GIB, weights=20 * GIB, headroom=8 * GIB) is True  # little left
    assert short("cuda", "model", free=70 * GIB, weights=20 * GIB, headroom=8 * GIB) is True  # offloaded
    assert short("cpu", "none", free=0, weights=20 * GIB, headroom=8 * GIB) is True
    frames, tiles = families.pick_framewise, families.pick_tiling
    assert frames("auto", "cuda", short=False) is False and frames("auto", "cuda", short=True) is True
    assert frames("auto", "cpu", short=True) is False and frames("on", "cpu", short=False) is True
    assert tiles("auto", short=False) is False and tiles("auto", short=True) is True
    assert tiles("on", short=False) is True and tiles("off", short=True) is False
    with pytest.raises(ValueError, match="STORYBOT_LTX_FRAMEWISE"):
        frames("sometimes", "cuda", short=True)
    with pytest.raises(ValueError, match="STORYBOT_VAE_TILING"):
        tiles("always", short=True)


def test_the_cards_memory_picks_the_profile() -> None:
    assert pick_profile(24 * GIB).name == "24gb" and pick_profile(16 * GIB).name == "24gb"
    assert pick_profile(48 * GIB).name == "48gb"
    assert pick_profile(81559 << 20).name == "80gb"  # what an H100 80GB reports
    assert resolve_profile("none", 80 * GIB) is None and resolve_profile("24gb", 80 * GIB) == profile_named("24gb")
    small = resolve_profile("auto", 24 * GIB)
    assert small is not None and small.models["ltx"] == "Lightricks/LTX-Video-0.9.5"
    assert small.models["vision"] == "Qwen/Qwen2.5-VL-3B-Instruct" and small.estimated_peak_gib < 24
    with pytest.raises(ValueError, match="STORYBOT_GPU_PROFILE"):
        profile_named("12gb")


def test_the_profile_sets_the_backends_policy_and_explicit_settings_win() -> None:
    base = Settings(_env_file=None)
    offload, env, lease = profile_policy(base, 24 * GIB)
    assert (offload, lease) == ("model", True)
    assert env["STORYBOT_LTX_FRAMEWISE"] == "on" and env["STORYBOT_VISION_OFFLOAD"] == "auto"
    assert env["STORYBOT_VAE_TILING"] == "on"
    assert profile_policy(base, 80 * GIB)[::2] == ("auto", False)
    assert profile_policy(base, 80 * GIB)[1]["STORYBOT_VAE_TILING"] == "auto"  # tiles only when short
    given = Settings(
        _env_file=None, STORYBOT_GPU_OFFLOAD="sequential", STORYBOT_LTX_FRAMEWISE="off", STORYBOT_VAE_TILING="off"
    )
    offload, env, _ = profile_policy(given, 24 * GIB)
    assert offload == "sequential" and env["STORYBOT_LTX_FRAMEWISE"] == "off" and env["STORYBOT_VAE_TILING"] == "off"
    no_card = Settings(_env_file=None, STORYBOT_GPU_PROFILE="none")
    assert profile_policy(no_card, 24 * GIB) == (
        "auto",
        {"STORYBOT_LTX_FRAMEWISE": "auto", "STORYBOT_VAE_TILING": "auto", "STORYBOT_VISION_OFFLOAD": "none"},
        False,
    )


def test_the_judge_offloads_only_when_it_does_not_fit() -> None:
    assert vision_placement("auto", "cuda", free=10 * GIB, weights=16 * GIB, headroom=3 * GIB) == "device_map"
    assert vision_placement("auto", "cuda", free=60 * GIB, weights=16 * GIB, headroom=3 * GIB) == "none"
    assert vision_placement("none", "cuda", free=1, weights=16 * GIB, headroom=3 * GIB) == "none"
    assert vision_placement("auto", "cpu", free=0, weights=16 * GIB, headroom=3 * GIB) == "none"
    with pytest.raises(ValueError, match="STORYBOT_VISION_OFFLOAD"):
        vision_placement("always", "cuda", free=1, weights=1, headroom=1)


async def test_under_a_lease_a_family_stops_the_others_on_its_card(tiny_models: dict[str, str], tmp_path: Path) -> None:
    folders = models(tiny_models)
    backend = LocalBackend({"whisper": folders["whisper"], "vision": folders["vision"]}, lease=True, load_timeout=120)
    Image.new("RGB", (108, 192), (10, 60, 90)).save(tmp_path / "k.png")
    judge = VisionParams(images=[str(tmp_path / "k.png")], looks=[Look(image=0, prompt="a whale")], max_new_tokens=8)
    hear = WhisperParams(audio=str(tone(tmp_path / "a.wav", 1.0)), language="en", beam_size=1, max_new_tokens=4)
    try:
        await backend.run("whisper", hear)
        whisper = backend.workers["whisper"]
        assert whisper.proc is not None and whisper.proc.returncode is None
        await backend.run("vision", judge)
        assert whisper.proc is None  # stopped before the judge loaded
        vision = backend.workers["vision"]
        assert vision.proc is not None and vision.proc.returncode is None
        await backend.run("whisper", hear)
        assert vision.proc is None and whisper.starts == 2
    finally:
        await backend.close()


def test_the_smoke_run_fails_a_silent_cpu_fallback_and_accepts_an_announced_one() -> None:
    from bench.gpu_smoke import expect

    cpu = {"device": "cpu", "dtype": "float32", "offload": "none", "tiling": True, "slicing": True}
    assert expect("sdxl", cpu, "cpu", {}) == []
    assert expect("sdxl", cpu, "cuda", {}) == [
        "sdxl runs on cpu, not cuda (a silent fallback?)",
        "sdxl dtype float32, not bfloat16 or float16",
    ]
    ltx = {**cpu, "device": "cuda:0", "dtype": "bfloat16", "offload": "model", "temporal_tiling": False}
    assert expect("ltx", ltx, "cuda", {"latent_frames": 16, "temporal_tile_frames": 2}) == [
        "ltx: frame-by-frame (temporal) decoding is off"
    ]
    quiet = {"device": "cpu", "dtype": "int8", "offload": "none", "probed": True}
    assert expect("whisper", quiet, "cuda", {}) == ["whisper on cpu without an announced fallback"]
    assert expect("whisper", quiet | {"fallback": "whisper on CUDA failed (...)"}, "cuda", {}) == []


def test_cublas_failing_to_allocate_is_an_oom_not_a_fatal_error() -> None:
    from gpu_workers.serve import error_kind

    exc = RuntimeError("CUDA error: CUBLAS_STATUS_ALLOC_FAILED when calling `cublasCreate(handle)`")
    assert error_kind(exc) == "oom"
    assert error_kind(RuntimeError("CUDA error: CUBLAS_STATUS_EXECUTION_FAILED")) == "fatal"


def test_the_ltx_keyframe_is_cropped_to_the_models_aspect_not_squashed(tmp_path: Path) -> None:
    from gpu_workers.families.ltx import keyframe

    img = Image.new("RGB", (200, 100), (0, 0, 255))
    img.paste((255, 0, 0), (0, 0, 40, 100))  # a red band on the left fifth
    img.save(tmp_path / "k.png")
    out = keyframe(str(tmp_path / "k.png"), 64, 64)
    assert out.size == (64, 64) and out.getpixel((0, 32)) == (0, 0, 255)  # the centre square: no red band


def condition_ltx(tiny_models: dict[str, str], tmp_path: Path) -> Path:
    """The tiny LTX weights declared as 0.9.7's LTXConditionPipeline (same components)."""
    folder = tmp_path / "ltx-condition"
    shutil.copytree(models(tiny_models)["ltx"], folder)
    index = json.loads((folder / "model_index.json").read_text(encoding="utf-8"))
    (folder / "model_index.json").write_text(json.dumps(index | {"_class_name": "LTXConditionPipeline"}))
    return folder


class Recording:
    """Forwards to the real pipeline, keeping each call's arguments."""

    def __init__(self, pipe: Any) -> None:
        self.pipe, self.calls = pipe, list[dict[str, Any]]()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.pipe, name)

    def __call__(self, **kwargs: Any) -> Any:
        self.calls.append(kwargs)
        return self.pipe(**kwargs)


def test_a_distilled_ltx_runs_diffusers_documented_schedule(
    tiny_models: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from gpu_workers.families.ltx import Ltx, is_distilled

    assert is_distilled("Lightricks/LTX-Video-0.9.7-distilled", "auto")
    assert not is_distilled("Lightricks/LTX-Video-0.9.5", "auto") and is_distilled("/m/renamed", "on")
    monkeypatch.setenv("STORYBOT_LTX_DISTILLED", "on")
    ltx = families.load("ltx", str(condition_ltx(tiny_models, tmp_path)))
    assert ltx.info["distilled"] is True and ltx.info["pipeline"] == "LTXConditionPipeline"
    ltx.pipe = recording = Recording(ltx.pipe)
    Image.new("RGB", (64, 96), (30, 120, 200)).save(tmp_path / "key.png")
    steps: list[tuple[int, int]] = []
    params = LtxParams(
        image=str(tmp_path / "key.png"),
        prompt="waves",
        output=str(tmp_path / "c.npy"),
        width=64,
        height=96,
        num_frames=9,
        max_frames=9,
        steps=30,
    )
    ltx(params.model_dump(), lambda i, n: steps.append((i, n)))
    call = recording.calls[0]
    assert call["timesteps"] == list(Ltx.DISTILLED_TIMESTEPS) and "num_inference_steps" not in call
    assert call["guidance_scale"] == 1.0 and call["guidance_rescale"] == 0.7 and call["image_cond_noise_scale"] == 0
    assert call["conditions"][0].frame_index == 0
    assert steps[-1] == (8, 8)  # eight denoising steps ran, whatever STORYBOT_LTX_STEPS says
    assert np.load(tmp_path / "c.npy").shape == (9, 96, 64, 3)


def test_a_continuation_on_the_condition_pipeline_carries_the_last_frames(
    tiny_models: dict[str, str], tmp_path: Path
) -> None:
    from gpu_workers.families.ltx import CONTINUATION_FRAMES, segments

    assert segments(25, 17, CONTINUATION_FRAMES) == [17, 17] and segments(121, 121, 9) == [121]
    assert segments(161, 121, 9) == [121, 49]  # 121 + (49 - 9) = 161
    ltx = families.load("ltx", str(condition_ltx(tiny_models, tmp_path)))
    ltx.pipe = recording = Recording(ltx.pipe)
    Image.new("RGB", (64, 96), (30, 120, 200)).save(tmp_path / "key.png")
    params = LtxParams(
        image=str(tmp_path / "key.png"),
        prompt="waves",
        output=str(tmp_path / "c.npy"),
        width=64,
        height=96,
        num_frames=25,
        max_frames=17,
        steps=1,
    )
    result = ltx(params.model_dump(), lambda i, n: None)
    assert result.frames == 25 and result.segments == 2
    first, second = (c["conditions"][0] for c in recording.calls)
    assert first.image is not None and first.video is None  # the keyframe starts the shot
    assert second.video is not None and len(second.video) == CONTINUATION_FRAMES and second.image is None
    clip = np.load(tmp_path / "c.npy")
    assert clip.shape == (25, 96, 64, 3)
    # conditioned on exactly the frames the clip holds where the first segment ends (8-16)
    assert all(np.array_equal(np.asarray(v), clip[8 + i]) for i, v in enumerate(second.video))
