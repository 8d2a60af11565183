"""Offline revision: a reviewer's note applied to a script the writer did not necessarily write.

The script may be the user's own, so nothing is re-generated from a premise: its sentences are
kept (as many as the new length allows), and the note shows in the new draft. Tone words ("funnier",
"more dramatic") add sentences in that tone, length words ("shorter", "longer") change the target,
and anything else becomes one new sentence: "add a storm" -> "And then there was a storm.",
"the whale should sing" -> "The keeper hoped that the whale would sing."
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass

from tools.llm.hygiene import STOPWORDS, cap, content_words, plain_text, sentences, words
from tools.llm.premise import TONES
from tools.llm.story import MIDDLE, Line, episodes, fillers, fit

_TONE_LINES = {
    "comedy": (
        "Nobody had warned {H} about this part, and frankly, nobody would have believed it.",
        "{H_} tried to look calm, which fooled exactly no one.",
        "Even the birds seemed to be laughing.",
        "It was, by any measure, a ridiculous plan, which is exactly why it worked.",
    ),
    "adventure": (
        "Then the silence broke, and everything {H} had built began to shake.",
        "There would be no second chance.",
        "Every heartbeat felt like a countdown.",
        "For one terrible moment, it seemed that all was lost.",
    ),
    "mystery": (
        "Somewhere, a door creaked open that should have stayed shut.",
        "{H_} had the strange feeling of being watched.",
        "None of the clues fit together, not yet.",
        "The answer had been hiding in plain sight all along.",
    ),
    "friendship": (
        "There was kindness in it, the quiet kind that lasts.",
        "{H_} smiled, and meant it.",
        "Some days, hope is a very small thing, and that is enough.",
        "The light stayed on, warm and steady, all night long.",
    ),
}
_SHORTER = frozenset("shorter shorten cut trim tighter tighten brief briefer condense concise quicker".split())
_LONGER = frozenset("longer lengthen expand extend detailed slower".split())
# Words that only say how to change the script, never what it is about.
_STYLE = frozenset(
    "make it this script story video bit little lot much way more less please version "
    "draft tone feel sound ending beginning".split()
)
_ADD = re.compile(
    r"^(?:(?:add|include|mention|introduce|use|show|feature|focus\s+on|talk\s+about|bring\s+in"
    r"|put\s+in)\s+|(?:make|let)\s+(?:it|this|the\s+\w+)\s+(?:be\s+)?(?:more\s+)?about\s+|about\s+)",
    re.IGNORECASE,
)
_SEE = re.compile(r"^(?:make|let|have|see)\s+", re.IGNORECASE)
_MODAL = re.compile(r"\b(?:should|must|could|can|will|needs?\s+to|has\s+to|have\s+to|ought\s+to)\b", re.IGNORECASE)
_PLEASE = re.compile(r"^(?:please\s+|(?:can|could|would)\s+you\s+)+", re.IGNORECASE)
_NOT_NAMES = frozenset(
    "same next end first last only other way day days night nights morning time moment rest whole".split()
)
OPENERS = ("Listen closely, because this one is worth it.", "Here it is again, told a little differently.")


@dataclass(frozen=True)
class Note:
    tone: str | None
    scale: float  # from `length_scale`
    sentence: str | None  # the note's content as a template over {H} (the script's hero)


def length_scale(note: str) -> float:
    """What "shorter" or "longer" in a note does to the word target (both writers honour it)."""
    lowered = {w.lower() for w in words(plain_text(note, 400))}
    return 0.7 if lowered & _SHORTER else 1.3 if lowered & _LONGER else 1.0


def parse_note(note: str) -> Note:
    text = plain_text(note, 400)
    lowered = {w.lower() for w in words(text)}
    tone = next((name for name, keys in TONES.items() if lowered & keys), None)
    clauses = re.split(r"[,.;!?]|\band\b|\bbut\b|\balso\b", text, flags=re.IGNORECASE)
    return Note(tone, length_scale(note), next((s for s in map(_content_sentence, clauses) if s), None))


def _content_sentence(clause: str) -> str | None:
    """One new sentence from a clause that says what the story should contain."""
    clause = _PLEASE.sub("", clause.strip())
    style_words = _STYLE | STOPWORDS | _SHORTER | _LONGER | frozenset().union(*TONES.values())
    if not [w for w in content_words(clause) if w not in style_words]:
        return None
    if _ADD.match(clause):
        return f"And then there was {_phrase(_ADD.sub('', clause, count=1))}."
    if _MODAL.search(clause):
        return f"{{H_}} hoped that {_phrase(_MODAL.sub('would', clause, count=1))}."
    if _SEE.match(clause):
        return f"{{H_}} hoped to see {_phrase(_SEE.sub('', clause, count=1))}."
    return f"And then there was {_phrase(clause)}."


def _phrase(text: str) -> str:
    """At most 14 plain words, and no braces left for `str.format` to trip on."""
    return " ".join(words(text)[:14]).replace("{", "").replace("}", "")


def revise_lines(script: str, note: Note, seed: int, target: int) -> str:
    """The script's sentences, the note's sentences, fitted to `target` words."""
    kept = sentences(plain_text(script, 20_000))
    hero, thing = _refs(kept)
    fill = {"H": hero, "H_": cap(hero)}
    n = len(kept)
    lines = [Line(s, 0 if i in (0, n - 1) else 1, (MIDDLE, 10 * i)) for i, s in enumerate(kept)]
    third = 10 * max(1, n // 3) - 5
    if note.sentence:
        lines.append(Line(note.sentence.format(**fill), 0, (MIDDLE, third)))
    if note.tone:
        slots = (third + 1, 10 * max(1, 2 * n // 3) - 5, 10 * (n - 1) - 5, 10 * max(1, n // 2) - 5)
        lines += [
            Line(text.format(**fill), min(i, 2), (MIDDLE, slot))  # one sure, one as the script's own
            for i, (text, slot) in enumerate(zip(_TONE_LINES[note.tone], slots, strict=True))
        ]
    if not note.sentence and not note.tone and note.scale == 1:  # "again": still a new draft
        lines.append(Line(OPENERS[seed % len(OPENERS)], 0, (MIDDLE, -1)))
    extra = [Line(e.text, e.priority, (MIDDLE, 10 * (n - 1) - 3)) for e in episodes(hero, thing, seed, target)]
    return fit(lines + extra, fillers((MIDDLE,)), target)


def _refs(kept: list[str]) -> tuple[str, str]:
    """The script's two most mentioned names or `the X` phrases, as (hero, thing)."""
    counts: Counter[str] = Counter()
    for sentence in kept:
        tokens = words(sentence)
        for i, token in enumerate(tokens):
            if i > 0 and token[:1].isupper() and token.lower() not in STOPWORDS:
                counts[token] += 1
            if token.lower() == "the" and i + 1 < len(tokens) and _noun(tokens[i + 1]):
                pair = tokens[i + 1 : i + 3]
                counts[f"the {tokens[i + 1]}"] += 1
                if len(pair) == 2 and _noun(pair[1]):
                    counts[f"the {' '.join(pair)}"] += 1
    # "the lighthouse keeper" beats "the lighthouse" when the two always come together
    ranked = sorted(counts, key=lambda k: (-counts[k], -len(k)))
    top: list[str] = []
    for key in ranked:
        if not any(key in t or t in key for t in top):
            top.append(key)
    return (top[0] if top else "they"), (top[1] if len(top) > 1 else "it")


def _noun(token: str) -> bool:
    return token.lower() not in STOPWORDS | _NOT_NAMES and token.isalpha()
