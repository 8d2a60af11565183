"""Hostile --out folders: storybot never deletes or overwrites what it did not write, refuses a folder it
cannot use before any work, takes inputs from inside its own output for nothing, and sweeps the temporaries
of dead runs while keeping live ones.

Every case asserts the exit code, the single `storybot: error:` line, and the files before and after
(tests/hostile_helpers.py). The numbers in the comments are the defects of issue 14.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.hostile_helpers import (
    SHORT,
    clip,
    dead_pid,
    refused,
    render_args,
    rendered,
    report_worst_refusal,
    script,
    snapshot,
    storybot,
    zero_sample_wav,
)
from tools.files import sweep_stale

# the fixtures from tests/hostile_helpers.py that this module uses
__all__ = ["clip", "report_worst_refusal", "script"]


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One storybot output folder (with its metadata.json), shared by the cases that need one."""
    root = tmp_path_factory.mktemp("finished")
    (root / "s.txt").write_text(SHORT, encoding="utf-8")
    result = storybot(*render_args(root / "s.txt", root / "out"))
    rendered(result, root / "out")
    return root / "out"


# --- 1. data loss: --out that holds someone else's files ----------------------------------------


def test_out_with_users_own_clips_and_files_is_refused_untouched(tmp_path: Path, script: Path, clip: Path) -> None:
    out = tmp_path / "mine"
    (out / "clips").mkdir(parents=True)
    (out / "keyframes").mkdir()
    (out / "clips" / "holiday.mp4").write_bytes(clip.read_bytes())
    (out / "keyframes" / "drawing.png").write_bytes(b"my drawing")
    (out / "final.discord.mp4").write_bytes(b"my own video")
    before = snapshot(out)
    refused(storybot(*render_args(script, out)), "storybot did not write", case="1 foreign --out")
    refused(
        storybot(*render_args(script, out, "--clips", str(out / "clips"))), "inside --out", case="1 input inside --out"
    )
    assert snapshot(out) == before


def test_input_folder_inside_a_storybot_out_is_refused(finished: Path, script: Path, clip: Path) -> None:
    mine = finished / "my clips"
    mine.mkdir(exist_ok=True)
    (mine / "a.mp4").write_bytes(clip.read_bytes())
    before = snapshot(finished)
    try:
        refused(storybot(*render_args(script, finished, "--clips", str(mine))), "inside --out")
        assert snapshot(finished) == before
        (finished / "clips").mkdir(exist_ok=True)  # storybot's own folder name, as an input
        before = snapshot(finished)
        refused(storybot(*render_args(script, finished, "--clips", str(finished / "clips"))), "--clips")
        refused(storybot(*render_args(finished / "script.txt", finished)), "would be replaced")
        assert snapshot(finished) == before
    finally:
        (mine / "a.mp4").unlink()
        mine.rmdir()


def test_rerender_into_own_output_keeps_the_users_extra_files(tmp_path: Path, script: Path) -> None:
    out = tmp_path / "out"
    rendered(storybot(*render_args(script, out)), out)
    assert json.loads((out / "metadata.json").read_text())["generator"] == "storybot"
    (out / "notes.txt").write_text("my notes", encoding="utf-8")
    script.write_text("Hello again. A new take.", encoding="utf-8")
    rendered(storybot(*render_args(script, out)), out)
    assert (out / "notes.txt").read_text(encoding="utf-8") == "my notes"
    assert (out / "script.txt").read_text(encoding="utf-8").strip() == "Hello again. A new take."


# --- 5. unwritable --out, found before any work --------------------------------------------------


def test_unwritable_out_is_refused_before_work(tmp_path: Path, script: Path, finished: Path) -> None:
    a_file = tmp_path / "a-file"
    a_file.write_text("keep", encoding="utf-8")
    refused(storybot(*render_args(script, a_file)), "it is a file", case="5 --out is a file")
    refused(storybot(*render_args(script, a_file / "sub")), "is a file, not a folder")
    assert a_file.read_text(encoding="utf-8") == "keep"
    # a file where storybot writes its clips/ folder (in a storybot folder)
    (finished / "clips.bak").mkdir(exist_ok=True)
    clips = finished / "clips"
    clips.mkdir(exist_ok=True)
    clips.rename(finished / "clips.bak" / "clips")
    clips.write_text("not a folder", encoding="utf-8")
    try:
        before = snapshot(finished)
        result = storybot(*render_args(script, finished))
        refused(result, "clips is a file", case="5 clips is a file")
        assert result.elapsed < 20 and snapshot(finished) == before  # type: ignore[attr-defined]
    finally:
        clips.unlink()
        (finished / "clips.bak" / "clips").rename(clips)
        (finished / "clips.bak").rmdir()
    if os.geteuid() != 0:  # root writes into read-only folders anyway
        locked = tmp_path / "locked"
        locked.mkdir()
        locked.chmod(0o555)
        try:
            refused(storybot(*render_args(script, locked / "out")), "not writable")
        finally:
            locked.chmod(0o755)
    refused(storybot(*render_args(script, "/proc/storybot-out")), "cannot write there", case="5 read-only fs")


# --- 13. debris after a kill ----------------------------------------------------------------------


def test_stale_temporaries_of_dead_runs_are_swept_live_ones_kept(finished: Path, tmp_path: Path) -> None:
    dead = dead_pid()
    stale = [
        finished / f".render-{dead}-abcd1234",
        finished / f".final.{dead}-0123abcd.tmp.mp4",
        finished / "clips" / f".shot_01.{dead}-89abcdef.tmp.mp4",
    ]
    (finished / "clips").mkdir(exist_ok=True)
    stale[0].mkdir()
    (stale[0] / "voice.wav").write_bytes(b"half")
    for p in stale[1:]:
        p.write_bytes(b"half")
    live = finished / f".render-{os.getpid()}-live0000"
    live.mkdir()
    try:
        (tmp_path / "s.txt").write_text(SHORT, encoding="utf-8")
        silent = zero_sample_wav(tmp_path / "silent.wav")  # refused after the --out checks, which sweep
        refused(storybot(*render_args(tmp_path / "s.txt", finished, "--music", str(silent))), "silent.wav")
        assert not any(p.exists() for p in stale)
        assert live.is_dir() and (finished / "final.mp4").is_file()
    finally:
        live.rmdir()
    assert sweep_stale(finished) == []


# --- cases that already passed, kept so they stay passing ------------------------------------------


def test_filter_metacharacters_in_every_path(tmp_path: Path) -> None:
    root = tmp_path / "it's [a], b; c: d=e\\f"
    root.mkdir()
    (root / "s, 1.txt").write_text(SHORT, encoding="utf-8")
    out = root / "out'[0:v]"
    rendered(storybot(*render_args(root / "s, 1.txt", out)), out)
