"""Subtitles in any script: every character of the ASS text is in the font libass is told to use.

The check reads the fonts with fontTools straight from the folder libass gets (`fontsdir`), by
family name, independent of how the chain chose them; one frame per language is burned with the
real libass to see that text lands inside the safe area (and, by eye, that it is real glyphs).
"""

from __future__ import annotations

import os
import re
import unicodedata
from functools import cache
from pathlib import Path

import pysubs2
import pytest
from fontTools.ttLib import TTCollection, TTFont

from tests.media_checks import burn_subtitles, safe_area_mask
from tests.test_subtitles import timed_words
from tools.media.fonts import fonts_dir
from tools.media.subtitles import display_width, line_limit, text_width, write_subtitles
from tools.models import Aspect

SCRIPTS = {
    "japanese": "灯台守は毎晩、らせん階段を上りました。ある夜、海の向こうから歌が聞こえてきたのです。"
    "それはクジラの歌でした。",
    "russian": "Смотритель маяка каждый вечер поднимался по винтовой лестнице. Однажды ночью он услышал песню кита.",
    "arabic": "كان حارس المنارة يصعد الدرج كل ليلة. وفي إحدى الليالي سمع أغنية حوت بعيد.",
    "spanish": "El farero subía la escalera cada noche. ¿Oyó algo? ¡Sí! Una ballena cantaba, señor Muñoz.",
    "emoji": "We start filming 🎬 today 🎉 and the whale 🐋 sings ✨ for everyone ❤️",
    "thai": "ผู้ดูแลประภาคารปีนบันไดทุกคืน แล้ววันหนึ่งเขาได้ยินเสียงวาฬร้องเพลง",
    "hindi": "प्रकाशस्तंभ का रखवाला हर रात सीढ़ियाँ चढ़ता था।",
}
_FN = re.compile(r"\{\\fn([^}]*)\}")
_TAGS = re.compile(r"\{[^}]*\}")
FRAMES = Path(os.environ.get("STORYBOT_FONT_FRAMES", "")) if os.environ.get("STORYBOT_FONT_FRAMES") else None


@cache
def families() -> dict[str, frozenset[int]]:
    """Family name -> code points, for every font file in the folder libass reads."""
    out: dict[str, frozenset[int]] = {}
    for path in sorted(fonts_dir().iterdir()):
        fonts = TTCollection(str(path), lazy=True).fonts if path.suffix == ".ttc" else [TTFont(str(path), lazy=True)]
        for font in fonts:
            name = font["name"].getDebugName(16) or font["name"].getDebugName(1)
            out.setdefault(str(name), frozenset(font.getBestCmap() or {}))
    return out


def drawn_characters(event_text: str, style_font: str) -> list[tuple[str, str]]:
    """(character, family libass is told to draw it with) for each visible character of an event."""
    out, font, at = [], style_font, 0
    for match in re.finditer(r"\{[^}]*\}", event_text):
        out += [(ch, font) for ch in event_text[at : match.start()]]
        named = _FN.fullmatch(match.group())
        font = named.group(1) if named else font
        at = match.end()
    out += [(ch, font) for ch in event_text[at:]]
    text = "".join(ch for ch, _ in out)
    visible = []
    for k, (ch, family) in enumerate(out):
        if text[k : k + 2] == "\\N" or (k and text[k - 1 : k + 1] == "\\N"):
            continue
        if ch.isspace() or unicodedata.category(ch) in ("Cf", "Mn") or 0xFE00 <= ord(ch) <= 0xFE0F:
            continue
        visible.append((ch, family))
    return visible


@pytest.mark.parametrize("name", list(SCRIPTS))
def test_every_character_has_a_glyph_in_its_font(tmp_path: Path, name: str) -> None:
    script = SCRIPTS[name]
    aspect = Aspect.portrait
    files = write_subtitles(script, timed_words(script), aspect, tmp_path)
    subs = pysubs2.load(str(files.ass))
    known = families()
    shown = ""
    for event in subs:
        for ch, family in drawn_characters(event.text, subs.styles["Default"].fontname):
            assert family in known, f"{family!r} is not in the fonts folder"
            assert ord(ch) in known[family], f"{ch!r} (U+{ord(ch):04X}) is not in {family}"
            shown += ch
    assert shown.replace("\\", "") == "".join(
        ch
        for ch in script
        if not ch.isspace() and unicodedata.category(ch) not in ("Cf", "Mn") and not 0xFE00 <= ord(ch) <= 0xFE0F
    )
    # unspaced scripts are cut by characters within the line limit, and fit the safe area
    room = aspect.size[0] - 2 * subs.styles["Default"].marginl
    for cue in files.cues:
        assert all(display_width(line) <= line_limit(aspect) for line in cue.lines), cue
        assert all(text_width(line, files.font_size) <= room for line in cue.lines), cue


@pytest.mark.parametrize("name", ["japanese", "russian", "arabic", "spanish", "emoji"])
def test_a_frame_burns_inside_the_safe_area(tmp_path: Path, name: str) -> None:
    script = SCRIPTS[name]
    aspect = Aspect.portrait
    files = write_subtitles(script, timed_words(script), aspect, tmp_path)
    cue = files.cues[0]
    out = (FRAMES / f"{name}.png") if FRAMES else tmp_path / "frame.png"
    out.parent.mkdir(parents=True, exist_ok=True)
    ink = burn_subtitles(files.ass, aspect, out, at=(cue.start + cue.end) / 2)
    inside = safe_area_mask(aspect)
    assert ink[inside].sum() > 2000
    assert not ink[~inside].any()
