"""Subtitle cues and files: every script word once, readable cues, literal text on screen."""

from __future__ import annotations

import html
import re
from itertools import pairwise
from pathlib import Path

import numpy as np
import pysubs2
import pytest

from tests.media_checks import burn_subtitles, safe_area_mask
from tools.media.subtitles import (
    MAX_CUE,
    MIN_CUE,
    OUTLINE,
    SHADOW,
    Cue,
    build_cues,
    display_width,
    escape_ass_text,
    line_limit,
    text_width,
    write_subtitles,
)
from tools.models import Aspect, Word
from tools.text import clean_script, ends_clause, ends_sentence, word_spans

_RIVER = "the old man walked slowly along the quiet river bank while small birds sang above him and"
RUN_ON = " ".join((_RIVER.split() * 4)[:60])  # one sentence, no punctuation at all
URL = "https://example.com/a/very/long/path/that/keeps/going?and=more&x=1"
SCRIPTS = {
    "story": (
        "The lighthouse keeper had not spoken to anyone in three years, and the silence had become a "
        "kind of company. Every night he climbed the spiral stairs, counted them under his breath, and "
        "lit the lamp. Then one evening a boat appeared on the horizon; it carried a single passenger. "
        'She said: "These are yours." He did not remember writing any of them.\n\n'
        "But the handwriting was his own."
    ),
    "accents_quotes": "Crème brûlée à Zürich, naïve owners said: «C'est la vie» — “truly” 'so' ok.",
    "hostile": r"Look at [x] and (y) and {z}; type C:\new\Name or \N and \h, \{ok\} or {\i1} done.",
    "emoji_cjk": "We start filming 🎬 today. 日本語のテキストです。 "
    "吾輩は猫である。名前はまだ無い。どこで生れたかとんと見当がつかぬ。",
    "run_on": RUN_ON,
    "url": f"Visit {URL} for more & <b>bold</b> details.",
}


def timed_words(script: str, per_char: float = 0.065) -> list[Word]:
    """Plausible speech timings: longer words take longer, punctuation adds a pause."""
    t, words = 0.0, []
    for span in word_spans(script):
        length = 0.12 + per_char * len(span.text)
        words.append(
            Word(word=span.text, start=round(t, 3), end=round(t + length, 3), char_start=span.start, char_end=span.end)
        )
        t += length + (0.35 if ends_sentence(span.text) else 0.15 if ends_clause(span.text) else 0.04)
    return words


def words_at(script: str, times: list[tuple[float, float]]) -> list[Word]:
    spans = word_spans(script)
    assert len(spans) == len(times)
    return [
        Word(word=s.text, start=a, end=b, char_start=s.start, char_end=s.end)
        for s, (a, b) in zip(spans, times, strict=True)
    ]


def cue_words(cues: list[Cue]) -> list[str]:
    """The characters the cues show, in order, spaces left out (a token cut by characters spans cues)."""
    return list("".join("".join(line.split()) for cue in cues for line in cue.lines))


def is_long_token(line: str, aspect: Aspect) -> bool:
    return " " not in line and display_width(line) > line_limit(aspect)


def assert_readable(cues: list[Cue], words: list[Word], aspect: Aspect) -> None:
    limit = line_limit(aspect)
    assert limit <= 42
    pieces = {c.first_word for a, c in pairwise(cues) if c.first_word == c.last_word == a.last_word}
    for a, b in pairwise(cues):  # in order; the pieces of a token cut by characters repeat its index
        assert b.first_word == a.last_word + 1 or b.first_word == b.last_word == a.last_word
    assert cues[0].first_word == 0
    assert cues[-1].last_word == len(words) - 1
    for cue in cues:
        shortest = MIN_CUE if cue.first_word not in pieces else 0.3
        assert shortest - 1e-6 <= cue.end - cue.start <= MAX_CUE + 1e-6, cue
        assert 1 <= len(cue.lines) <= 2, cue
        for line in cue.lines:
            assert display_width(line) <= limit, cue
    for a, b in pairwise(cues):
        assert a.start < b.start and a.end <= b.start, (a, b)


@pytest.mark.parametrize("aspect", list(Aspect))
@pytest.mark.parametrize("name", list(SCRIPTS))
def test_cues_hold_every_word_once_and_stay_readable(name: str, aspect: Aspect) -> None:
    script = clean_script(SCRIPTS[name])
    assert script == SCRIPTS[name].strip()
    words = timed_words(script)
    cues = build_cues(words, aspect, voice_end=words[-1].end)
    assert cue_words(cues) == list("".join(script.split()))
    assert all(line in script for cue in cues for line in cue.lines)
    assert_readable(cues, words, aspect)
    assert cues[-1].end <= words[-1].end + 1.0


def test_line_limits_are_smaller_on_narrow_frames() -> None:
    assert line_limit(Aspect.landscape) == 42
    assert line_limit(Aspect.portrait) < line_limit(Aspect.square) < 42


@pytest.mark.parametrize("aspect", list(Aspect))
def test_cues_break_at_every_sentence_end(aspect: Aspect) -> None:
    words = timed_words(SCRIPTS["story"])
    for cue in build_cues(words, aspect):
        inside = words[cue.first_word : cue.last_word]
        assert not any(ends_sentence(w.word) for w in inside), cue.lines


def test_a_blank_line_ends_a_cue_like_a_full_stop() -> None:
    cues = build_cues(timed_words("Chapter one begins\n\nIt was dark"), Aspect.landscape)
    assert [c.lines for c in cues] == [["Chapter one begins"], ["It was dark"]]


def test_a_sentence_too_long_for_one_cue_breaks_at_its_comma() -> None:
    script = "When the storm passed over the harbour, the fishermen went back to their boats."
    cues = build_cues(timed_words(script), Aspect.portrait)
    assert len(cues) == 2
    assert cues[0].lines == ["When the storm passed", "over the harbour,"]


def test_lines_split_after_punctuation_rather_than_before_a_weak_word() -> None:
    (cue,) = build_cues(timed_words("The storm had passed, so we walked home slowly."), Aspect.portrait)
    assert cue.lines == ["The storm had passed,", "so we walked home slowly."]
    (cue,) = build_cues(timed_words("one two three four five six seven eight nine"), Aspect.portrait)
    assert cue.lines == ["one two three four five", "six seven eight nine"]


def test_short_cue_is_held_one_second_and_small_gaps_close() -> None:
    script = "Hi. Then the long story begins here."
    words = words_at(script, [(0.0, 0.3), (2.0, 2.2), (2.2, 2.4), (2.4, 2.6), (2.6, 2.8), (2.8, 3.0), (3.0, 3.4)])
    first, second = build_cues(words, Aspect.portrait)
    assert (first.start, first.end, first.lines) == (0.0, 1.0, ["Hi."])
    assert second.start == 2.0

    words = words_at(script, [(0.0, 0.3), (1.2, 1.4), (1.4, 1.6), (1.6, 1.8), (1.8, 2.0), (2.0, 2.2), (2.2, 2.6)])
    first, _ = build_cues(words, Aspect.portrait)
    assert first.end == 1.2  # a 0.2 s gap would flicker: bridged


def test_short_sentence_without_room_merges_with_its_neighbour() -> None:
    script = "Go. Now we run."
    words = words_at(script, [(0.0, 0.2), (0.3, 0.5), (0.5, 0.6), (0.6, 0.9)])
    (cue,) = build_cues(words, Aspect.portrait)
    assert cue.lines == ["Go. Now we run."]
    assert cue.end - cue.start >= MIN_CUE


def test_slow_speech_is_cut_before_seven_seconds() -> None:
    script = "one two three four five six seven eight nine ten"
    words = words_at(script, [(i * 1.0, i * 1.0 + 0.5) for i in range(10)])
    cues = build_cues(words, Aspect.landscape)
    assert len(cues) == 2
    assert_readable(cues, words, Aspect.landscape)


def test_cues_end_within_a_second_of_the_voice() -> None:
    words = timed_words("A short ending. Bye.")
    cues = build_cues(words, Aspect.portrait, voice_end=words[-1].end)
    assert cues[-1].end <= words[-1].end + 1.0
    with pytest.raises(ValueError, match="past the end"):
        build_cues(words, Aspect.portrait, voice_end=words[-1].start - 2)


def test_escape_ass_text() -> None:
    wj = "\u2060"
    assert escape_ass_text(r"C:\new\Name") == f"C:\\{wj}new\\{wj}Name"
    assert escape_ass_text(r"\N\h") == f"\\{wj}N\\{wj}h"
    assert escape_ass_text("{z}") == r"\{z\}"
    assert escape_ass_text(r"\{ok\}") == f"\\{wj}\\{{ok\\{wj}\\}}"
    assert escape_ass_text("a\\") == f"a\\{wj}"
    assert escape_ass_text(r"a\b, c: «d» [e] (f) 'g' \"h\"") == r"a\b, c: «d» [e] (f) 'g' \"h\""


_TAG = re.compile(r"\{\\(?:k\d+|fs\d+|fn[^}]*)\}")


def ass_plain(text: str) -> list[str]:
    """The lines an ASS event shows (escapes undone, tags removed, hard-split halves kept apart)."""
    return [
        _TAG.sub("", part).replace("\\{", "{").replace("\\}", "}").replace("\u2060", "") for part in text.split("\\N")
    ]


@pytest.mark.parametrize("aspect", list(Aspect))
@pytest.mark.parametrize("name", ["hostile", "accents_quotes", "url", "emoji_cjk", "story"])
def test_files_parse_back_with_the_same_words(tmp_path: Path, name: str, aspect: Aspect) -> None:
    script = SCRIPTS[name]
    words = timed_words(script)
    files = write_subtitles(script, words, aspect, tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["subtitles.ass", "subtitles.srt", "subtitles.vtt"]
    cues = files.cues
    assert cue_words(cues) == list("".join(script.split()))

    srt = pysubs2.load(str(files.srt), keep_html_tags=True)
    vtt = pysubs2.load(str(files.vtt), keep_html_tags=True)
    ass = pysubs2.load(str(files.ass))
    assert len(srt) == len(vtt) == len(ass) == len(cues)
    for cue, s, v, a in zip(cues, srt, vtt, ass, strict=True):
        assert s.text.replace("\u2060", "") == "\\N".join(cue.lines)  # pysubs2 reads a line break as \N
        assert html.unescape(v.text) == "\\N".join(cue.lines)
        assert (s.start, s.end) == (v.start, v.end) == (round(cue.start * 1000), round(cue.end * 1000))
        assert abs(a.start - cue.start * 1000) <= 5 and abs(a.end - cue.end * 1000) <= 5
        assert ass_plain(a.text) == cue.lines
    vtt_text = files.vtt.read_text(encoding="utf-8")
    assert vtt_text.startswith("WEBVTT\n")
    if name == "url":
        assert "more &amp;" in vtt_text and "&lt;b&gt;bold&lt;/b&gt;" in vtt_text and "&x=1" not in vtt_text
        srt_text = files.srt.read_text(encoding="utf-8")
        assert "more &" in srt_text and "<\u2060b>bold<\u2060/b>" in srt_text and "<b>" not in srt_text


@pytest.mark.parametrize("aspect", list(Aspect))
def test_ass_karaoke_style_and_safe_area(tmp_path: Path, aspect: Aspect) -> None:
    script = SCRIPTS["story"] + " " + SCRIPTS["url"]
    words = timed_words(script)
    files = write_subtitles(script, words, aspect, tmp_path)
    subs = pysubs2.load(str(files.ass))
    width, height = aspect.size
    assert (subs.info["PlayResX"], subs.info["PlayResY"]) == (str(width), str(height))
    assert subs.info["WrapStyle"] == "2" and subs.info["ScaledBorderAndShadow"] == "yes"

    style = subs.styles["Default"]
    safe = aspect.safe_area
    assert style.fontname == "Lato" and style.bold and style.fontsize == files.font_size
    assert style.alignment == pysubs2.Alignment.BOTTOM_CENTER
    assert style.marginl >= safe.left and style.marginr >= safe.right and style.marginv >= safe.bottom
    assert style.marginv + 2.5 * files.font_size < height - safe.top
    assert 4 <= style.outline <= 6 and style.shadow > 0
    assert (style.secondarycolor.r, style.secondarycolor.g, style.secondarycolor.b) == (255, 255, 255)
    yellow = style.primarycolor
    assert yellow.r > 200 and yellow.g > 150 and yellow.b < 100

    room = width - style.marginl - style.marginr
    lines = [ln for c in files.cues for ln in c.lines]
    assert max(text_width(ln, files.font_size) for ln in lines) <= room
    assert files.font_size >= 40

    for cue, event in zip(files.cues, subs, strict=True):
        ticks = [int(k) for k in re.findall(r"\\k(\d+)", event.text)]
        assert len(ticks) >= cue.last_word - cue.first_word + 1
        assert abs(sum(ticks) * 10 - (event.end - event.start)) <= 20, event.text


def test_wide_lines_shrink_the_font(tmp_path: Path) -> None:
    script = "WWWWWWWWWWWW MMMMMMMMMMMMM"
    files = write_subtitles(script, timed_words(script), Aspect.portrait, tmp_path)
    assert 30 < files.font_size < 64
    room = 1080 - Aspect.portrait.safe_area.left - Aspect.portrait.safe_area.right - 2 * (OUTLINE + SHADOW)
    assert text_width(script, files.font_size) <= room < text_width(script, files.font_size + 2)


def test_words_must_be_the_scripts_tokens(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="one per token"):
        write_subtitles("two words", timed_words("two wordz"), Aspect.portrait, tmp_path)


def test_rewrite_replaces_files_and_leaves_no_temporaries(tmp_path: Path) -> None:
    write_subtitles("First version.", timed_words("First version."), Aspect.portrait, tmp_path)
    files = write_subtitles("Second one.", timed_words("Second one."), Aspect.portrait, tmp_path)
    assert "Second one." in files.srt.read_text(encoding="utf-8")
    assert len(list(tmp_path.iterdir())) == 3


@pytest.mark.parametrize(
    ("script", "aspect"),
    [
        (r"{\i1}x C:\new\Name \N\h", Aspect.portrait),
        ("WWWWWWWWWWWW MMMMMMMMMMMMM", Aspect.portrait),
        (r"[x] «a» “b” 'c', d:e {z} \{ok\} \n\N\h", Aspect.landscape),
    ],
)
def test_burned_text_is_literal_and_inside_the_safe_area(tmp_path: Path, script: str, aspect: Aspect) -> None:
    files = write_subtitles(script, timed_words(script), aspect, tmp_path)
    (cue,) = files.cues
    assert len(cue.lines) == 1
    ink = burn_subtitles(files.ass, aspect, tmp_path / "frame.png")
    inside = safe_area_mask(aspect)
    assert ink[inside].sum() > 500
    assert not ink[~inside].any()

    rows, cols = np.nonzero(ink)
    # One line, as wide as Lato draws the literal text: no brace block eaten, no backslash read as \N.
    assert rows.max() - rows.min() < 1.4 * files.font_size
    expected = text_width(cue.lines[0], files.font_size) + 2 * OUTLINE + SHADOW
    assert abs((cols.max() - cols.min()) - expected) < 0.04 * expected
