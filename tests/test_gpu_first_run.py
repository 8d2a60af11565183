"""Issue 21, what stops a first run on a real card, proven on the CPU with the tiny models: the vision
worker names the torchvision fix at load, Whisper falls back to the CPU when CUDA fails (a real
ctranslate2 error, not a mock), LTX decodes frame by frame when memory is short, and the card's
memory picks a profile."""

from __future__ import annotations

import importlib.util
import json
import math
import wave
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

from gpu_workers import families
from gpu_workers.families.vision import matching_torchvision, torchvision_problem
from tests.gpu_fixtures import build_tiny_models, models
from tools.gpu import GpuError, LtxParams, VisionParams, WhisperParams
from tools.gpu.local import LocalBackend, LocalWorker

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
        await backend.run("vision", VisionParams(image=str(tmp_path / "k.png"), prompt="a lighthouse"))
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


def test_framewise_decoding_is_chosen_from_memory() -> None:
    pick = families.pick_framewise
    assert pick("auto", "cuda", "none", free=70 * GIB, weights=20 * GIB, headroom=8 * GIB) is False  # 80 GB
    assert pick("auto", "cuda", "none", free=30 * GIB, weights=20 * GIB, headroom=8 * GIB) is True  # little left
    assert pick("auto", "cuda", "model", free=20 * GIB, weights=20 * GIB, headroom=8 * GIB) is True  # 24 GB
    assert pick("auto", "cpu", "none", free=0, weights=20 * GIB, headroom=8 * GIB) is False
    assert pick("on", "cpu", "none", free=0, weights=1, headroom=1) is True
    with pytest.raises(ValueError, match="STORYBOT_LTX_FRAMEWISE"):
        pick("sometimes", "cuda", "none", free=1, weights=1, headroom=1)
