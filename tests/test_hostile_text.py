"""Hostile scripts and the text shown from them: one enormous word, a 100 MB file, invisible fillers,
Zalgo, terminal escapes in a file name, and subtitle markup, which is shown as text and never obeyed.

The numbers in the comments are the defects of issue 14.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.hostile_helpers import (
    refused,
    render_args,
    rendered,
    report_worst_refusal,
    storybot,
)
from tools.media.subtitles import srt_line
from tools.text import MAX_SCRIPT_BYTES, clean_script

# the fixtures from tests/hostile_helpers.py that this module uses
__all__ = ["report_worst_refusal"]


# --- 6, 7, 11. scripts: a huge word, a huge file, invisible fillers, Zalgo --------------------------


def test_one_enormous_word_gets_a_clear_answer(tmp_path: Path) -> None:
    (tmp_path / "s.txt").write_text("a" * 5000, encoding="utf-8")
    out = tmp_path / "out"
    result = storybot(*render_args(tmp_path / "s.txt", out))
    if result.returncode == 0:
        rendered(result, out)
        assert len(json.loads((out / "shots.json").read_text())) == 1
    else:
        line = refused(result, "")
        assert "shots do not fit" not in line, line


def test_a_100_mb_script_is_refused_without_reading_it(tmp_path: Path) -> None:
    huge = tmp_path / "huge.txt"
    with huge.open("wb") as f:
        f.truncate(100 * 2**20)  # sparse: costs no disk, but reading it would cost 100 MB and more
    out = tmp_path / "out"
    result = storybot(*render_args(huge, out))
    refused(result, "too large", case="7 100 MB script")
    assert str(MAX_SCRIPT_BYTES) in result.stderr and not out.exists()


@pytest.mark.parametrize("content", ["\u3164\u3164 \u115f\u1160 \uffa0", "\u3164. \u3164!"])
def test_a_script_of_hangul_fillers_is_empty(tmp_path: Path, content: str) -> None:
    (tmp_path / "s.txt").write_text(content, encoding="utf-8")
    refused(storybot(*render_args(tmp_path / "s.txt", tmp_path / "out")), "empty")
    assert not (tmp_path / "out").exists()


def test_zalgo_keeps_two_marks_per_letter() -> None:
    zalgo = "".join(ch + "\u0336\u0301\u0317" * 60 for ch in "Hello") + " world."
    cleaned = clean_script(zalgo)
    assert cleaned.split()[1] == "world." and len(cleaned) <= len("Hello world.") + 2 * 5 + 5
    assert clean_script("नमस्ते दुनिया. ไม่ใช่") == "नमस्ते दुनिया. ไม่ใช่"  # real scripts keep their marks


# --- 9. terminal escapes ----------------------------------------------------------------------------


def test_escape_and_bell_in_a_file_name_are_shown_not_obeyed(tmp_path: Path) -> None:
    name = tmp_path / "evil\x1b[2J\x07\u202e.txt"
    line = refused(storybot(*render_args(name, tmp_path / "out")), "not found")
    assert "\x1b" not in line and "\x07" not in line and "\u202e" not in line
    assert "\\x1b[2J\\x07\\u202e" in line


# --- 12, 14. --out=-dash, SRT markup -------------------------------------------------------------


def test_dash_out_and_markup_in_the_script(tmp_path: Path) -> None:
    text = r"{\an8}Top <font color=red>red</font> and <b>bold</b>. Then {\i1} plain [x](y) text."
    (tmp_path / "s.txt").write_text(text, encoding="utf-8")
    result = storybot(*render_args(Path("s.txt"), "-dash"), cwd=tmp_path)
    out = tmp_path / "-dash"
    rendered(result, out)
    srt = (out / "subtitles.srt").read_text(encoding="utf-8")
    assert "{\\an8}" not in srt and "<font" not in srt and "<b>" not in srt and "{\\i1}" not in srt
    cues = [b.split("\n", 2)[2] for b in srt.strip().split("\n\n")]
    assert " ".join(cues).replace("\u2060", "").split() == text.split()  # every word still shown, in order
    ass = (out / "subtitles.ass").read_text(encoding="utf-8")
    assert "\\{\\an8\\}" in ass or "{\u2060\\an8}" in ass or "\\{" in ass  # braces escaped, not tags


def test_srt_line_neutralises_tags_only() -> None:
    assert srt_line("a < b, 3<4, {z}") == "a < b, 3<4, {z}"
    assert srt_line("<i>x</i> {\\pos(1,1)}") == "<\u2060i>x<\u2060/i> {\u2060\\pos(1,1)}"
