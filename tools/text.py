"""Script text hygiene and word spans.

Every later stage indexes the *cleaned* script by character position, so cleaning happens once,
here, before any file is written.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path

from tools.errors import BadInput

MAX_SCRIPT_CHARS = 20_000

# Zero-width and bidirectional-control characters hide text or reorder it on screen.
_INVISIBLE = re.compile("[\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff\u00ad]")
_SENTENCE_END = re.compile(r"[.!?…。！？]+[\"'”’»)\]」』]*$")
_CLAUSE_END = re.compile(r"[,;:—–、，；：]+[\"'”’»)\]」』]*$")


def clean_script(text: str) -> str:
    """Normalise a script: NFC, no control or invisible characters, tidy whitespace.

    Raises BadInput when nothing speakable is left or the text is too long to be a short video.
    """
    text = unicodedata.normalize("NFC", text)
    text = _INVISIBLE.sub("", text)
    text = "".join(
        ch if ch in "\n\t" or unicodedata.category(ch)[0] != "C" else " " for ch in text
    )
    lines = [" ".join(line.split()) for line in text.replace("\t", " ").splitlines()]
    text = re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()
    if not any(ch.isalnum() for ch in text):
        raise BadInput("the script is empty: it has no words to speak")
    if len(text) > MAX_SCRIPT_CHARS:
        raise BadInput(f"the script is too long: {len(text)} characters (at most {MAX_SCRIPT_CHARS})")
    return text


@dataclass(frozen=True)
class Span:
    text: str
    start: int
    end: int


def word_spans(text: str) -> list[Span]:
    """Whitespace-separated tokens with their character positions (punctuation stays attached)."""
    return [Span(m.group(), m.start(), m.end()) for m in re.finditer(r"\S+", text)]


def ends_sentence(token: str) -> bool:
    return bool(_SENTENCE_END.search(token))


def ends_clause(token: str) -> bool:
    return bool(_CLAUSE_END.search(token))


def natural_key(name: str) -> list[int | str]:
    """Sort key that puts shot2 before shot10."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", name)]


def read_script_file(path: Path, what: str = "script") -> str:
    """A user's text file, cleaned; BadInput (one line) when it is missing, not UTF-8 or empty."""
    if not path.is_file():
        raise BadInput(f"{what} file not found: {path}")
    try:
        return clean_script(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise BadInput(f"{path.name}: not UTF-8 text ({exc.reason})") from None
