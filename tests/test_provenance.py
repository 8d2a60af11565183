"""C2PA signing on its own: the user's certificate when configured, the source type rule, and that a
rewrite after signing is detected (why signing is post-production's last write)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tools.errors import BadInput
from tools.media.ffmpeg import ffmpeg_exe
from tools.provenance import local_identity, read_manifest, sign_finished, signing_identity, source_type
from tools.provenance.manifest import IPTC
from tools.settings import Settings
from tools.visuals.base import Credit


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("c2pa") / "clip.mp4"
    subprocess.run(
        [
            ffmpeg_exe(),
            "-v",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
            "color=c=blue:s=160x284:d=1:r=30",
            "-f",
            "lavfi",
            "-i",
            "sine=d=1",
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-c:a",
            "aac",
            "-shortest",
            "-movflags",
            "+faststart",
            str(path),
        ],
        check=True,
        timeout=60,
    )
    return path


def test_source_type_follows_pictures_and_voice() -> None:
    assert source_type(["images:gpt-image-1", "sdxl:base"], "piper") == IPTC + "trainedAlgorithmicMedia"
    assert source_type(["pexels", "cards"], "elevenlabs") == IPTC + "compositeWithTrainedAlgorithmicMedia"
    assert source_type(["user", "sdxl:base"], "recording") == IPTC + "compositeWithTrainedAlgorithmicMedia"
    assert source_type(["user", "pixabay"], "recording") == IPTC + "composite"


def test_the_users_certificate_signs_and_credits_are_ingredients(clip: Path, tmp_path: Path) -> None:
    local_identity(tmp_path / "users-own-ca")  # stands in for a certificate the user bought
    video = tmp_path / "final.mp4"
    video.write_bytes(clip.read_bytes())
    settings = Settings(
        STORYBOT_DATA_DIR=tmp_path / "data",
        STORYBOT_C2PA_CERT=tmp_path / "users-own-ca" / "signer.pem",
        STORYBOT_C2PA_KEY=tmp_path / "users-own-ca" / "signer.key",
    )
    assert signing_identity(settings).local is False
    credit = Credit(shot=1, source="pexels", id="1000", author="Ann Example", url="https://www.pexels.com/video/1000/")
    made = sign_finished(settings, [video], "elevenlabs", ["pexels"], [credit])
    assert made.notice is None and made.signer == "STORYBOT_C2PA_CERT"  # no self-signed notice
    assert not (tmp_path / "data" / "c2pa").exists()
    store = read_manifest(video)
    manifest = store["manifests"][store["active_manifest"]]
    assert store["validation_state"] == "Valid"
    assert [i["title"] for i in manifest["ingredients"]] == ["pexels 1000 by Ann Example"]


def test_a_change_after_signing_breaks_the_manifest(clip: Path, tmp_path: Path) -> None:
    video = tmp_path / "final.mp4"
    video.write_bytes(clip.read_bytes())
    settings = Settings(STORYBOT_DATA_DIR=tmp_path)
    assert sign_finished(settings, [video], "piper", ["cards"], []).notice  # the local-certificate notice
    assert read_manifest(video)["validation_state"] == "Valid"
    data = bytearray(video.read_bytes())
    data[-100] ^= 0xFF  # one byte of the media, as any rewrite after signing would change it
    video.write_bytes(bytes(data))
    store = read_manifest(video)
    assert store["validation_state"] == "Invalid"
    assert "assertion.bmffHash.mismatch" in {s["code"] for s in store.get("validation_status", [])}


def test_half_a_certificate_is_bad_input(tmp_path: Path) -> None:
    with pytest.raises(BadInput, match="together"):
        signing_identity(Settings(STORYBOT_DATA_DIR=tmp_path, STORYBOT_C2PA_CERT=tmp_path / "cert.pem"))
