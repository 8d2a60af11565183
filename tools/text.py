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
MAX_SCRIPT_BYTES = 4 * MAX_SCRIPT_CHARS + 64 * 1024  # UTF-8 of the longest script, plus whitespace slack
MAX_MARKS = 2  # combining marks kept per base character (real scripts need at most two or three)

# Zero-width and bidirectional-control characters hide text or reorder it on screen.
# Hangul fillers (U+115F, U+1160, U+3164, U+FFA0) are letters to Unicode but draw nothing.
_INVISIBLE = re.compile("[\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff\u00ad\u115f\u1160\u3164\uffa0]")
_SENTENCE_END = re.compile(r"[.!?…。！？]+[\"'”’»)\]」』]*$")
_CLAUSE_END = re.compile(r"[,;:—–、，；：]+[\"'”’»)\]」』]*$")


def clean_script(text: str) -> str:
    """Normalise a script: NFC, no control or invisible characters, tidy whitespace.

    Raises BadInput when nothing speakable is left or the text is too long to be a short video.
    """
    text = unicodedata.normalize("NFC", text)
    text = _limit_marks(_INVISIBLE.sub("", text))
    text = "".join(ch if ch in "\n\t" or unicodedata.category(ch)[0] != "C" else " " for ch in text)
    lines = [" ".join(line.split()) for line in text.replace("\t", " ").splitlines()]
    text = re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()
    if not any(ch.isalnum() for ch in text):
        raise BadInput("the script is empty: it has no words to speak")
    if len(text) > MAX_SCRIPT_CHARS:
        raise BadInput(f"the script is too long: {len(text)} characters (at most {MAX_SCRIPT_CHARS})")
    return text


def _limit_marks(text: str) -> str:
    """Keep at most MAX_MARKS combining marks after each base character ("Zalgo" text stacks
    hundreds, which climb out of the subtitle box to the top of the frame)."""
    out: list[str] = []
    run = 0
    for ch in text:
        run = run + 1 if unicodedata.category(ch).startswith("M") else 0
        if run <= MAX_MARKS:
            out.append(ch)
    return "".join(out)


def clean_replacement(text: str) -> str:
    """A reviewer's replacement script (a .txt reply, `answer replace FILE`), cleaned like any script;
    BadInput when it is empty or too long, so the answer is refused and the job stays as it was."""
    try:
        return clean_script(text)
    except BadInput as exc:
        raise BadInput(str(exc).replace("the script", "the replacement script", 1)) from None


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
    if not path.exists():
        raise BadInput(f"{what} file not found: {path}")
    if not path.is_file():
        raise BadInput(f"{what} {path}: not a regular file")
    size = path.stat().st_size
    if size > MAX_SCRIPT_BYTES:  # refuse before reading: a 100 MB file must not cost 1.4 GB
        raise BadInput(f"{path.name}: the script file is too large: {size} bytes (at most {MAX_SCRIPT_BYTES})")
    try:
        return clean_script(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise BadInput(f"{path.name}: not UTF-8 text ({exc.reason})") from None
