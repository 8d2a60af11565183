"""Requests the template writer cannot write honestly: explainers, tips, news, how-tos.

A story grammar can invent a lighthouse keeper; it cannot know why octopuses have three hearts.
For such a request it writes no facts at all: the user's question is the hook, the rest invites the
viewer to think and look it up, and the script approval says plainly that it is a question, not an
answer (`OfflineWriter.notice`). A revision of such a draft stays one (`revise_question`): the story
reviser would add story beats and tone lines ("Weeks passed.") that read as claims. Deterministic,
like the rest of the offline writer.
"""

from __future__ import annotations

import re
from typing import Literal

from tools.llm.hygiene import cap, plain_text, sentences
from tools.llm.story import Line, fit

Kind = Literal["explainer", "tips", "news", "how-to"]

_STORY = re.compile(r"\b(?:story|stories|tale|tales|fable|fairy ?tale|poem|bedtime)\b", re.IGNORECASE)
_HOW_TO = re.compile(r"\b(?:how\s+to|how\s+do\s+(?:i|you|we)|step[- ]by[- ]step|tutorial|guide\s+to)\b", re.IGNORECASE)
_TIPS = re.compile(
    r"\b(?:tips?|tricks?|hacks?|advice|(?:\d+|top\s+\w+)\s+ways?|ways\s+to|best\s+ways?)\b", re.IGNORECASE
)
_NEWS = re.compile(r"\b(?:news|latest|headlines?|this\s+week|today'?s|breaking|update\s+on|recap)\b", re.IGNORECASE)
_EXPLAIN = re.compile(
    r"^\W*(?:why|how|what|when|where|who|which|is|are|does|do|did|can|could|should)\b"
    r"|\b(?:explain\w*|explanation|facts?\s+about|history\s+of|science\s+of|the\s+truth\s+about"
    r"|what\s+(?:is|are|was|were|makes|happens)|why\s+(?:do|does|is|are|did)|how\s+(?:does|do|did|is|are))\b",
    re.IGNORECASE,
)
_LEAD = re.compile(
    r"^(?:(?:please|pls|hey|hi)\W+)*(?:(?:make|create|write|give|do)\s+(?:me\s+)?)?"
    r"(?:(?:a|an)\s+)?(?:(?:short|quick|vertical)\s+)*(?:video|explainer|short|clip|reel)?\s*(?:about|on|explaining)?\s*",
    re.IGNORECASE,
)

# Sentences that fill the length without claiming anything: the viewer is asked to think and check.
_BODY = (
    "It sounds like a simple question, but a good answer deserves a real source.",
    "So before anyone tells you, take a guess.",
    "Pause here and think about what you already know.",
    "Then look it up somewhere you trust, and check a second source too.",
    "Notice which detail surprises you the most.",
    "Write it down in one sentence, in your own words.",
    "If two sources disagree, that is worth knowing as well.",
    "Share what you found with someone who would enjoy it.",
    "Ask yourself how you would explain it to a friend in under a minute.",
    "Look for where the answer comes from, not just what it says.",
    "A number, a date or a name is easy to check, so check it.",
    "Experts often say it is more complicated than it looks, and that is part of the fun.",
    "If you already know the answer, see whether it still holds up today.",
    "Tell us in the comments what you learned.",
)
_SPARE = ("Think about it.", "Take your time.", "Check it yourself.", "Stay curious.", "Keep asking.")
_HOOK = "Here is today's question: {topic}?"
_CLOSE = "That is the question: {topic}."
_ASKED = re.compile(r"Here is today's question: (.+)\?")
FRAMING = frozenset(_BODY) | frozenset(_SPARE)  # every sentence a question draft may add


def factual_kind(request: str) -> Kind | None:
    """What kind of factual request this is, or None for a story (or anything a story can serve)."""
    text = plain_text(request, 600)
    if not text or _STORY.search(text):
        return None
    if _HOW_TO.search(text):
        return "how-to"
    if _TIPS.search(text):
        return "tips"
    if _NEWS.search(text):
        return "news"
    if _EXPLAIN.search(text) or text.rstrip().endswith("?"):
        return "explainer"
    return None


def topic(request: str) -> str:
    """The request as the viewer would ask it: "why octopuses have three hearts"."""
    text = plain_text(request, 300).strip().rstrip("?.!")
    shorter = _LEAD.sub("", text, count=1).strip()
    return (shorter or text)[:200]


def question_script(request: str, target: int) -> str:
    """The question as the hook, then sentences that invite the viewer to find out: no facts."""
    asked = topic(request) or "a question worth asking"
    body = [Line(text, 1 + i, (1, 2 * i)) for i, text in enumerate(_BODY)]
    return fit([*_ends(asked), *body], _spare(), target)


def asked_in(script: str) -> str | None:
    """The question a template question draft asks (from its hook), or None for any other script."""
    return next((m[1] for s in sentences(plain_text(script, 20_000)) if (m := _ASKED.fullmatch(s))), None)


def revise_question(script: str, asked: str, seed: int, target: int, fresh: bool) -> str:
    """The draft fitted to `target` words again from its own sentences and the framing ones only.

    The hook and the close stay; the draft's other sentences keep their order (a reviewer's own words
    first, then its framing, so "shorter" cuts framing from the end); then unused framing sentences.
    `fresh` (a note that keeps the length: "again", "add a joke") puts the unused framing first, from
    a place set by `seed`, so the new draft reads differently without saying anything new.
    """
    ends = _ends(asked)
    kept = [s for s in sentences(plain_text(script, 20_000)) if s not in {e.text for e in ends}]
    unused = [s for s in _BODY if s not in kept]
    unused = unused[seed % len(unused) :] + unused[: seed % len(unused)] if unused else []
    lines = [Line(s, 1 if s not in FRAMING else 3 if fresh else 2, (1, i)) for i, s in enumerate(kept)]
    lines += [Line(s, 2 if fresh else 3, (1, len(kept) + i)) for i, s in enumerate(unused)]
    return fit([*ends, *lines], _spare(), target)


def _ends(asked: str) -> list[Line]:
    return [Line(_HOOK.format(topic=asked), 0, (0, 0)), Line(cap(_CLOSE.format(topic=asked)), 0, (2, 0))]


def _spare() -> list[Line]:
    return [Line(text, 0, (1, 2 * i + 1)) for i, text in enumerate(_SPARE * 2)]
