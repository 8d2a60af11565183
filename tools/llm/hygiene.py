"""Text hygiene for everything a writer reads from users or models.

Requests come from chat: they carry mentions (`@everyone`, `<@123>`), markdown, links, invisible and
control characters, and words hundreds of letters long. Narration is spoken, subtitled and posted
back to chat, so none of that may pass through a writer into a script, a title or a prompt.
"""

from __future__ import annotations

import re
import unicodedata

MAX_WORD_CHARS = 30  # longer "words" are noise or attacks, never narration

_ANGLE_MARKUP = re.compile(r"<[^<>\n]{0,200}>")  # Discord mentions, emoji, timestamps, HTML tags
_MD_LINK = re.compile(r"\[([^\[\]\n]{0,200})\]\([^()\s]{0,500}\)")
_URL = re.compile(r"\b(?:https?|ftp)://\S+|\bwww\.\S+", re.IGNORECASE)
_BROADCAST = re.compile(r"@+(?:everyone|here)\b", re.IGNORECASE)
_MARKUP_CHARS = re.compile(r"[@<>\[\]{}\\|*_~`#]")
_LONG_WORD = re.compile(rf"\S{{{MAX_WORD_CHARS + 1},}}")
_SENTENCE = re.compile(r"[^.!?]+(?:[.!?]+[\"'”’)]*|$)")

STOPWORDS = frozenset(
    "a about above after again all also am an and any are as at be because been before being below "
    "between both but by can could did do does doing down during each every few for from further "
    "had has have having he her here hers herself him himself his how i if in into is it its itself "
    "just let me more most much my myself no nor not now of off on once only or other our ours out "
    "over own same she should so some such than that the their theirs them themselves then there "
    "these they this those through to too under until up very was we were what when where which "
    "while who whom whose why will with would you your yours".split()
)


def plain_text(text: str, max_chars: int = 2000) -> str:
    """One line of speakable text: no markup, mentions, links, control or invisible characters.

    NFKC folds look-alikes (fullwidth `＠`, `［`) onto the characters the filters below remove.
    """
    text = unicodedata.normalize("NFKC", text)
    text = "".join(_char_or_space(ch) for ch in text)
    text = _MD_LINK.sub(r"\1", text)
    text = _ANGLE_MARKUP.sub(" ", text)
    text = _URL.sub(" ", text)
    text = _BROADCAST.sub(" ", text)
    text = _MARKUP_CHARS.sub(" ", text)
    text = _LONG_WORD.sub(" ", text)
    text = " ".join(text.split())
    text = re.sub(r"\s+([,.;:!?])", r"\1", text)
    if len(text) > max_chars:
        text = text[:max_chars].rsplit(" ", 1)[0]
    return text


def _char_or_space(ch: str) -> str:
    category = unicodedata.category(ch)
    if category == "Cf":  # zero-width and bidi controls: hide or reorder text
        return ""
    if (category[0] in "CZ" and ch != " ") or category == "So":  # controls, separators, emoji
        return " "
    return ch


def words(text: str) -> list[str]:
    """Letters-and-digits words (apostrophes and hyphens kept inside), in order."""
    return re.findall(r"[^\W_](?:[\w'’-]*[^\W_])?", text)


def content_words(text: str) -> list[str]:
    """Lower-cased words that carry meaning, first occurrence order, no repeats."""
    seen: dict[str, None] = {}
    for word in words(text.lower()):
        if word not in STOPWORDS and len(word) > 2 and not word.isdigit():
            seen.setdefault(word, None)
    return list(seen)


def word_count(text: str) -> int:
    """Whitespace tokens: the unit `tools.text.word_spans` and the voice timing count."""
    return len(text.split())


def sentences(text: str) -> list[str]:
    return [s.strip() for s in _SENTENCE.findall(text) if any(ch.isalnum() for ch in s)]


def trim_to_words(text: str, max_words: int) -> str:
    """The longest run of whole sentences from the start that fits `max_words` (at least one)."""
    kept: list[str] = []
    total = 0
    for sentence in sentences(text):
        n = word_count(sentence)
        if kept and total + n > max_words:
            break
        kept.append(sentence)
        total += n
    return " ".join(kept)


def cap(text: str) -> str:
    return text[:1].upper() + text[1:]
