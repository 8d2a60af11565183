"""The Piper voices one can download: a snapshot of the public voice repository's index.

`data/assets/piper_voices.json` is the index of rhasspy/piper-voices (v1.0.0; 163 voices in 44
languages), cut to what we use: each voice's name, language, quality, speaker count and files with
their size and MD5. The index says nothing of licences: each voice's `MODEL_CARD` (a few hundred
bytes, listed with its MD5) names its dataset's licence, so the card is what is read, downloaded
first and kept beside the voice. A licence that forbids commercial use, or one we cannot classify,
makes the voice one that is used only when named (`--voice piper:NAME`), never picked for a language.
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, TypeAdapter

from tools.assets import ASSETS_DIR

INDEX_FILE = ASSETS_DIR / "piper_voices.json"
QUALITY_ORDER = ("medium", "high", "low", "x_low")  # medium: natural and 63 MB; high is twice that
_PATH = re.compile(r"[a-z]{2,3}/[a-z]{2,3}_[A-Z]{2}/\w+/(?:x_low|low|medium|high)/[\w.-]+")
Use = Literal["commercial", "non-commercial", "unknown"]


class FileEntry(BaseModel):
    size_bytes: int
    md5_digest: str


class Language(BaseModel):
    code: str  # de_DE
    family: str  # de
    name_english: str = ""
    country_english: str = ""


class IndexVoice(BaseModel):
    name: str
    quality: str
    num_speakers: int = 1
    language: Language
    files: dict[str, FileEntry]

    def file(self, suffix: str) -> tuple[str, FileEntry]:
        """(path in the repository, entry) of the file ending in `suffix` (".onnx", "MODEL_CARD")."""
        found = [(p, e) for p, e in self.files.items() if p.endswith(suffix) and not p.endswith(suffix + ".json")]
        if len(found) != 1 or not _PATH.fullmatch(found[0][0]) or ".." in found[0][0]:
            raise ValueError(f"the voice index has no usable {suffix} file for {self.name}")
        return found[0]

    @property
    def bytes(self) -> int:
        return sum(e.size_bytes for e in self.files.values())


_INDEX = TypeAdapter(dict[str, IndexVoice])
_KEY = re.compile(r"[a-z]{2,3}_[A-Z]{2}-\w+-(?:x_low|low|medium|high)")  # names files: nothing else


@cache
def index(path: Path = INDEX_FILE) -> dict[str, IndexVoice]:
    """The index at `path`; an entry whose key is not a voice name of the repository's shape is left
    out (keys become file names in the voices folder)."""
    return {k: v for k, v in _INDEX.validate_json(path.read_bytes()).items() if _KEY.fullmatch(k)}


class Licence(BaseModel):
    """What a voice's model card says of its dataset's licence."""

    text: str  # the card's own words ("CC0", "CC BY-NC-SA 4.0", or a URL); "" when it names none
    use: Use

    @property
    def commercial(self) -> bool:
        return self.use == "commercial"

    def label(self) -> str:
        what = self.text or "not stated"
        return what if self.use == "commercial" else f"{what} ({self.use} use)"


_NON_COMMERCIAL = re.compile(r"non[- ]?commercial|\bnc\b|by-nc|research (?:use )?only|not for commercial", re.I)
_COMMERCIAL = re.compile(
    r"\bcc0\b|public[- ]domain|\bmit\b|apache|\bbsd\b|\bcc[- ]by(?:[- ]sa)?(?:[- ][0-9.]+)?\b"
    r"|creative ?commons attribution",
    re.I,
)
_LICENCE_LINE = re.compile(r"^\W*licen[cs]e\W*[:\-]\s*(.+)$", re.I | re.M)


def read_licence(card: str) -> Licence:
    """The licence a MODEL_CARD names: commercial use allowed only when it says so in words we know."""
    lines = [m.strip() for m in _LICENCE_LINE.findall(card)]
    text = "; ".join(lines)[:200]
    if not text:
        return Licence(text="", use="unknown")
    if _NON_COMMERCIAL.search(text):
        return Licence(text=text, use="non-commercial")
    return Licence(text=text, use="commercial" if _COMMERCIAL.search(text) else "unknown")


def language_tag(voice: IndexVoice) -> str:
    """de_DE -> de-de, as the catalogue writes languages."""
    return voice.language.code.replace("_", "-").lower()


def for_language(language: str, voices: dict[str, IndexVoice]) -> list[str]:
    """Voices of an index for a language (en, en-gb, de...), the likeliest first: the exact region,
    one speaker, medium quality."""
    wanted = language.lower().replace("_", "-")
    primary = wanted.split("-")[0]
    found = [k for k, v in voices.items() if v.language.family.lower() == primary]

    def rank(key: str) -> tuple[int, int, int, str]:
        v = voices[key]
        quality = QUALITY_ORDER.index(v.quality) if v.quality in QUALITY_ORDER else len(QUALITY_ORDER)
        return (0 if language_tag(v) == wanted else 1, 0 if v.num_speakers == 1 else 1, quality, key)

    return sorted(found, key=rank)
