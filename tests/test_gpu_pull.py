"""`storybot models pull sdxl ltx whisper vision` (issue 21 #4) against a local server speaking the
hub's tree listing (recursive, sizes and checksums) and resolve routes, serving the tiny models with
files no loader reads beside them; the local backend then loads the pulled folder, and pulls a
missing one itself before the worker starts, outside the load timeout."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.cli import storybot
from tests.gpu_fixtures import build_tiny_models, models
from tests.local_http import LocalServer, Reply, Request, local_server
from tools.gpu import WhisperParams
from tools.gpu.local import LocalBackend
from tools.gpu.pull import PULLED, select

DECOYS = {"README.md": b"# card", "model.onnx": b"onnx" * 10, "flax/model.msgpack": b"flax"}


class Hub:
    """Several repos' files; `cut` drops a transfer once (the next asks with Range)."""

    def __init__(self, repos: dict[str, dict[str, bytes]]) -> None:
        self.repos, self.cut = repos, set[str]()
        self.server: LocalServer | None = None

    def handle(self, request: Request) -> Reply:
        if tree := re.fullmatch(r"/api/models/([\w.-]+/[\w.-]+)/tree/main\?recursive=true", request.path):
            files = self.repos.get(tree[1])
            return Reply.json([self.entry(p, d) for p, d in files.items()]) if files else Reply(404, b"no repo")
        got = re.fullmatch(r"/([\w.-]+/[\w.-]+)/resolve/main/(.+)", request.path)
        if not got or got[2] not in self.repos.get(got[1], {}):
            return Reply(404, b"not found")
        data = self.repos[got[1]][got[2]]
        ranged = re.fullmatch(r"bytes=(\d+)-", request.headers.get("Range", ""))
        start = int(ranged[1]) if ranged else 0
        headers = {"Content-Length": str(len(data) - start)}
        if ranged:
            headers["Content-Range"] = f"bytes {start}-{len(data) - 1}/{len(data)}"
        body = data[start:]
        if got[2] in self.cut:
            self.cut.discard(got[2])
            body = body[: len(body) // 2]
        return Reply(206 if ranged else 200, iter([body]), headers)

    @staticmethod
    def entry(path: str, data: bytes) -> dict[str, Any]:
        entry: dict[str, Any] = {
            "type": "file",
            "path": path,
            "size": len(data),
            "oid": hashlib.sha1(f"blob {len(data)}\0".encode() + data).hexdigest(),
        }
        if path.endswith((".safetensors", ".bin")):
            entry["lfs"] = {"oid": hashlib.sha256(data).hexdigest(), "size": len(data), "pointerSize": 134}
        return entry


def files_of(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


@pytest.fixture
def hub() -> Iterator[Hub]:
    tiny = models(build_tiny_models())
    repos = {f"tiny/{family}": files_of(Path(tiny[family])) for family in ("sdxl", "whisper")}
    repos["tiny/sdxl"] |= DECOYS | {"sd_xl_base.safetensors": b"single-file checkpoint"}
    served = Hub(repos)
    with local_server(served.handle) as server:
        served.server = server
        yield served


def test_models_pull_fetches_what_the_loaders_read_resumed_and_checked(hub: Hub, tmp_path: Path) -> None:
    assert hub.server is not None
    env = {
        "HOME": str(tmp_path),
        "STORYBOT_HUB_URL": hub.server.url,
        "STORYBOT_SDXL_MODEL": "tiny/sdxl",
        "STORYBOT_WHISPER_MODEL": "tiny/whisper",
        "STORYBOT_GPU_PROFILE": "none",
    }
    hub.cut.add("unet/diffusion_pytorch_model.safetensors")
    done = storybot("models", "pull", "sdxl", "whisper", env=env)
    assert done.returncode == 0, done.stderr
    sdxl, whisper = (tmp_path / ".cache/storybot/models" / f / f"tiny--{f}" for f in ("sdxl", "whisper"))
    assert done.stdout.split() == [str(sdxl), str(whisper)]
    assert "sdxl: tiny/sdxl is ready" in done.stderr and "whisper: tiny/whisper is ready" in done.stderr
    expected = {p: d for p, d in hub.repos["tiny/sdxl"].items() if p not in DECOYS and p != "sd_xl_base.safetensors"}
    assert {p: d for p, d in files_of(sdxl).items() if p != PULLED} == expected
    assert {p: d for p, d in files_of(whisper).items() if p != PULLED} == hub.repos["tiny/whisper"]
    asked = [r.path for r in hub.server.requests]
    assert not any(d in p for p in asked for d in [*DECOYS, "sd_xl_base"])  # never downloaded
    unet = [r for r in hub.server.requests if r.path.endswith("unet/diffusion_pytorch_model.safetensors")]
    assert [r.headers.get("Range") is not None for r in unet] == [False, True]  # resumed where it was cut
    again = storybot("models", "pull", "whisper", env=env)  # whole already: nothing is fetched again
    assert again.returncode == 0 and len(hub.server.requests) == len(asked) + 1  # the listing only
    assert storybot("models", "pull", "nope", env=env).returncode == 2


async def test_the_backend_pulls_before_the_worker_starts_then_loads_the_folder(
    hub: Hub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert hub.server is not None
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))  # an empty Hugging Face cache
    backend = LocalBackend({"whisper": "tiny/whisper"}, hub_url=hub.server.url, load_timeout=120)
    try:
        heard = await backend.run("whisper", WhisperParams(audio=str(silence(tmp_path)), language="en", beam_size=1))
        worker = backend.workers["whisper"]
        assert worker.model == str(tmp_path / ".cache/storybot/models/whisper/tiny--whisper")
        assert (Path(worker.model) / PULLED).is_file() and worker.starts == 1 and heard.duration > 0
    finally:
        await backend.close()


def silence(tmp_path: Path) -> Path:
    import wave

    path = tmp_path / "s.wav"
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(b"\0\0" * 16000)
    return path


def test_the_loaders_files_are_chosen_one_weights_format_per_folder() -> None:
    index = {"_class_name": "StableDiffusionXLPipeline", "unet": ["diffusers", "UNet2DConditionModel"], "vae": []}
    listed = [
        "model_index.json",
        "sd_xl_base_1.0.safetensors",
        "unet/config.json",
        "unet/diffusion_pytorch_model.safetensors",
        "unet/diffusion_pytorch_model.fp16.safetensors",
        "vae/diffusion_pytorch_model.safetensors",
        "vae_1_0/diffusion_pytorch_model.safetensors",
        "onnx/unet/model.onnx",
        "text_encoder/model.safetensors",
    ]
    assert select(listed, index) == [
        "model_index.json",
        "unet/config.json",
        "unet/diffusion_pytorch_model.fp16.safetensors",
        "vae/diffusion_pytorch_model.safetensors",
    ]
    assert select(["config.json", "model.bin", "README.md", "vocabulary.json"], None) == [
        "config.json",
        "model.bin",
        "vocabulary.json",
    ]
