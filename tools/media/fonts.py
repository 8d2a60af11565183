"""The subtitle fonts: Lato first, then Noto families from PyPI for every script Lato lacks.

libass is told exactly which font draws each run of characters (`\\fn` overrides), chosen here by
each font's own character map (fontTools), and gets the files from one folder (`fontsdir`), so
nothing depends on the fonts, or the fontconfig, of the machine. Every font is SIL OFL 1.1:
Lato (shipped in data/assets), `manimgx-fonts` (Noto Sans, Noto Sans Arabic, Hebrew, Devanagari,
Thai and other scripts, Noto Sans Symbols, Noto Emoji) and `manimgx-fonts-cjk` (Noto Sans CJK).
"""

from __future__ import annotations

import os
import tempfile
import unicodedata
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from fontTools.ttLib import TTFont

from tools.assets import FONT_BOLD, FONT_FAMILY


@dataclass(frozen=True)
class Face:
    family: str  # the name libass is given in `\fn`
    path: Path
    index: int = 0  # face inside a collection (.ttc)


def _noto(name: str) -> Path | None:
    try:
        import manimgx_fonts
    except ImportError:
        return None
    path = Path(manimgx_fonts.__file__).parent / name
    return path if path.is_file() else None


def _cjk() -> Path | None:
    try:
        import manimgx_fonts_cjk
    except ImportError:
        return None
    path = Path(manimgx_fonts_cjk.__file__).parent / "NotoSansCJK-VF.otf.ttc"
    return path if path.is_file() else None


# Script fonts in the order they are tried; the CJK collection holds JP, KR, SC, TC, HK faces.
_SCRIPTS = [
    "NotoSans[wght].ttf",
    "NotoSansArabic[wght].ttf",
    "NotoSansHebrew[wght].ttf",
    "NotoSansDevanagari[wght].ttf",
    "NotoSansThai[wght].ttf",
    "NotoSansBengali[wght].ttf",
    "NotoSansTamil[wght].ttf",
    "NotoSansTelugu[wght].ttf",
    "NotoSansKannada[wght].ttf",
    "NotoSansMalayalam[wght].ttf",
    "NotoSansGujarati[wght].ttf",
    "NotoSansGurmukhi[wght].ttf",
    "NotoSansOriya[wght].ttf",
    "NotoSansSinhala[wght].ttf",
    "NotoSansKhmer[wght].ttf",
    "NotoSansLao[wght].ttf",
    "NotoSansMyanmar[wght].ttf",
    "NotoSansGeorgian[wght].ttf",
    "NotoSansArmenian[wght].ttf",
    "NotoSansEthiopic[wght].ttf",
]
_CJK_FACES = {
    "ja": ("Noto Sans CJK JP", 0),
    "ko": ("Noto Sans CJK KR", 1),
    "zh": ("Noto Sans CJK SC", 2),
    "zh-tw": ("Noto Sans CJK TC", 3),
    "zh-hk": ("Noto Sans CJK HK", 4),
}
_LAST = ["NotoSansSymbols[wght].ttf", "NotoEmoji[wght].ttf"]


def _family(path: Path) -> str:
    font = TTFont(str(path), lazy=True)
    return str(font["name"].getDebugName(16) or font["name"].getDebugName(1))


@cache
def chain(cjk: str = "ja") -> tuple[Face, ...]:
    """The fallback chain, first choice first; `cjk` picks the Han glyph forms (ja, ko, zh, zh-tw)."""
    faces = [Face(FONT_FAMILY, FONT_BOLD)]
    faces += [Face(_family(p), p) for name in _SCRIPTS if (p := _noto(name))]
    if (collection := _cjk()) is not None:
        family, index = _CJK_FACES.get(cjk, _CJK_FACES["ja"])
        faces.append(Face(family, collection, index))
    faces += [Face(_family(p), p) for name in _LAST if (p := _noto(name))]
    return tuple(faces)


@cache
def coverage(face: Face) -> frozenset[int]:
    """Code points the face has a glyph for (read once; the CJK collection takes a few seconds)."""
    font = TTFont(str(face.path), fontNumber=face.index, lazy=True)
    return frozenset(font.getBestCmap() or {})


def _rides_along(ch: str) -> bool:
    """Spaces, joiners, variation selectors and combining marks stay in the run before them."""
    return ch.isspace() or unicodedata.category(ch) in ("Cf", "Mn", "Me") or 0xFE00 <= ord(ch) <= 0xFE0F


def face_for(ch: str, cjk: str = "ja") -> Face | None:
    """The first face of the chain that draws `ch`, or None when none does."""
    point = ord(ch)
    for face in chain(cjk):
        if point in coverage(face):
            return face
    return None


def runs(text: str, cjk: str = "ja") -> list[tuple[Face, str]]:
    """`text` cut into runs drawn by one face each (a character no face has stays with Lato)."""
    out: list[tuple[Face, str]] = []
    for ch in text:
        if out and _rides_along(ch):
            out[-1] = (out[-1][0], out[-1][1] + ch)
            continue
        face = face_for(ch, cjk) or chain(cjk)[0]
        if out and out[-1][0] == face:
            out[-1] = (face, out[-1][1] + ch)
        else:
            out.append((face, ch))
    return out


def cjk_variant(language: str | None) -> str:
    return language if language in _CJK_FACES else "ja"


@cache
def fonts_dir() -> Path:
    """A folder holding (links to) every font of the chain: what libass's `fontsdir` gets.

    It lives in the temporary folder, per user (a folder someone else made there is not used), and
    its links are renewed when a package moved its files.
    """
    folder = Path(tempfile.gettempdir()) / f"storybot-fonts-{os.getuid()}"
    folder.mkdir(mode=0o700, exist_ok=True)
    if folder.is_symlink() or folder.stat().st_uid != os.getuid():
        folder = Path(tempfile.mkdtemp(prefix="storybot-fonts-"))
    for face in chain():
        link = folder / face.path.name
        if link.is_symlink() and link.resolve() == face.path.resolve():
            continue
        partial = folder / f".{face.path.name}.{os.getpid()}"
        partial.unlink(missing_ok=True)
        partial.symlink_to(face.path)
        partial.replace(link)
    return folder
