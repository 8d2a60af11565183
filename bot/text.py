"""Plain-text helpers for what the bot writes: splitting, bars, durations, diffs.

Pure functions, so the look of every message can be tested without Discord.
"""

from __future__ import annotations

import difflib
import re
import unicodedata

SENTENCE_END = re.compile(r"(?<=[.!?…。！？])\s+")
APPROVE_WORDS = {"approve", "approved", "ok", "okay", "yes", "y", "lgtm", "go", "ship it", "👍", "✅", "👌"}
INVISIBLE = {"Cc", "Cf", "Co", "Cs"}  # control, format (zero-width, bidi), private use, surrogates


def one_line(text: str, limit: int = 300) -> str:
    """Collapse whitespace and cut with an ellipsis: error reasons and titles stay on one line."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1].rstrip() + "…"


def visible(text: str) -> str:
    """User text without control, zero-width or bidi characters (newlines kept)."""
    return "".join(c for c in text if c == "\n" or unicodedata.category(c) not in INVISIBLE)


def split_text(text: str, limit: int) -> list[str]:
    """Chunks of at most `limit` characters, cut at paragraphs, then sentences, then words."""
    chunks: list[str] = []
    current = ""
    for piece in _pieces(text.strip(), limit):
        joiner = "\n\n" if piece.startswith("\0") else " "
        piece = piece.lstrip("\0")
        if current and len(current) + len(joiner) + len(piece) <= limit:
            current += joiner + piece
        else:
            if current:
                chunks.append(current)
            current = piece
    if current:
        chunks.append(current)
    return chunks


def _pieces(text: str, limit: int) -> list[str]:
    """Sentences (a paragraph's first marked with NUL), with any over-long sentence cut at words."""
    out: list[str] = []
    for paragraph in re.split(r"\n\s*\n", text):
        for n, sentence in enumerate(SENTENCE_END.split(paragraph.strip())):
            mark = "\0" if n == 0 and out else ""
            while len(sentence) > limit:
                cut = sentence.rfind(" ", 0, limit)
                cut = cut if cut > 0 else limit
                out.append(mark + sentence[:cut])
                sentence, mark = sentence[cut:].lstrip(), ""
            if sentence:
                out.append(mark + sentence)
    return out


def progress_bar(fraction: float, width: int = 18) -> str:
    fraction = min(max(fraction, 0.0), 1.0)
    filled = round(fraction * width)
    return "▰" * filled + "▱" * (width - filled) + f" {fraction * 100:.0f}%"


def duration(seconds: float) -> str:
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    minutes, secs = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def mib(size: int) -> str:
    return f"{size / 1024 / 1024:.1f} MiB"


def word_diff(old: str, new: str, limit: int = 1000) -> str:
    """The change between two drafts as Discord markdown: ~~removed~~ and **added** words, with context."""
    a, b = old.split(), new.split()
    parts: list[str] = []
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(a=a, b=b, autojunk=False).get_opcodes():
        if op == "equal":
            same = a[i1:i2]
            parts.append(" ".join(same) if len(same) <= 8 else f"{' '.join(same[:3])} … {' '.join(same[-3:])}")
            continue
        if i2 > i1:
            parts.append(f"~~{_md(' '.join(a[i1:i2]))}~~")
        if j2 > j1:
            parts.append(f"**{_md(' '.join(b[j1:j2]))}**")
    return one_line(" ".join(parts), limit)


_BULLET = re.compile(r"(?m)^(\s*)([-+])")
_NUMBERED = re.compile(r"(?m)^(\s*\d+)\.(?=\s)")


def _md(text: str) -> str:
    """Escape what Discord would render: emphasis, code, spoilers, quotes, masked links `[text](url)`,
    headings and subtext (`#`, `-#`), and list markers at a line start (`-`, `+`, `1.`)."""
    text = re.sub(r"([*_~`|>\\\[\]#])", r"\\\1", text)
    return _NUMBERED.sub(r"\1\\.", _BULLET.sub(r"\1\\\2", text))


def quote(text: str) -> str:
    """User or model text shown inside Discord markdown without turning into markup."""
    return _md(visible(text))


def is_approval(text: str) -> bool:
    return text.strip().lower().rstrip("!.") in APPROVE_WORDS


def shot_numbers(text: str) -> list[int]:
    """'reroll 2, 3' or '2 3' → [2, 3]."""
    return sorted({int(n) for n in re.findall(r"\d+", text)})
