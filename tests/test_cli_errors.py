"""Bad input: exit code 2, one clear line on stderr, nothing written."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from PIL import Image

from tests.cli import storybot


@pytest.fixture
def script(tmp_path: Path) -> Path:
    path = tmp_path / "story.txt"
    path.write_text("A fine story. It has two sentences.", encoding="utf-8")
    return path


def assert_refused(result: subprocess.CompletedProcess[str], fragment: str, out: Path) -> None:
    assert result.returncode == 2, (result.returncode, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("storybot: error:") and fragment in lines[0], lines[0]
    assert result.stdout == ""
    assert not out.exists() or not any(out.iterdir())


def test_missing_script(tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert_refused(storybot("render", "--script", str(tmp_path / "nope.txt"), "--out", str(out)), "not found", out)


@pytest.mark.parametrize("content", ["", "   \n\t ", "\u200b\u200b\u2060", "!!! ... ???"])
def test_empty_script(tmp_path: Path, content: str) -> None:
    (tmp_path / "s.txt").write_text(content, encoding="utf-8")
    out = tmp_path / "out"
    assert_refused(storybot("render", "--script", str(tmp_path / "s.txt"), "--out", str(out)), "empty", out)


def test_binary_and_huge_scripts(tmp_path: Path) -> None:
    (tmp_path / "bin.txt").write_bytes(b"\xff\xfe\x00\x81garbage")
    out = tmp_path / "out"
    assert_refused(storybot("render", "--script", str(tmp_path / "bin.txt"), "--out", str(out)), "UTF-8", out)
    (tmp_path / "huge.txt").write_text("word " * 10_000, encoding="utf-8")
    assert_refused(storybot("render", "--script", str(tmp_path / "huge.txt"), "--out", str(out)), "too long", out)


def test_unknown_aspect_and_option(tmp_path: Path, script: Path) -> None:
    out = tmp_path / "out"
    assert_refused(storybot("render", "--script", str(script), "--aspect", "4:3", "--out", str(out)), "aspect", out)
    assert_refused(storybot("render", "--script", str(script), "--frobnicate"), "--frobnicate", out)


def test_corrupt_image_and_audio(tmp_path: Path, script: Path) -> None:
    images = tmp_path / "imgs"
    images.mkdir()
    Image.new("RGB", (10, 10)).save(images / "a.png")
    (images / "b.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    out = tmp_path / "out"
    assert_refused(
        storybot("render", "--script", str(script), "--images", str(images), "--out", str(out)), "b.png", out
    )
    bad_audio = tmp_path / "voice.mp3"
    bad_audio.write_bytes(b"ID3 this is not audio at all" * 10)
    assert_refused(
        storybot("render", "--script", str(script), "--voice", str(bad_audio), "--out", str(out)), "voice.mp3", out
    )
    assert_refused(
        storybot("render", "--script", str(script), "--music", str(tmp_path / "none.wav"), "--out", str(out)),
        "not found",
        out,
    )


def test_images_and_clips_together(tmp_path: Path, script: Path) -> None:
    out = tmp_path / "out"
    assert_refused(
        storybot(
            "render", "--script", str(script), "--images", str(tmp_path), "--clips", str(tmp_path), "--out", str(out)
        ),
        "not both",
        out,
    )


def test_existing_output_untouched_on_failure(tmp_path: Path, script: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "final.mp4").write_bytes(b"previous render")
    images = tmp_path / "imgs"
    images.mkdir()
    (images / "x.jpg").write_bytes(b"not a jpeg")
    result = storybot("render", "--script", str(script), "--images", str(images), "--out", str(out))
    assert result.returncode == 2
    assert sorted(p.name for p in out.iterdir()) == ["final.mp4"]
    assert (out / "final.mp4").read_bytes() == b"previous render"
