"""Align recognised words (faster-whisper) back to the approved script.

Subtitles must show the script's own words, so the recogniser only lends its timings: script and
recognised tokens are matched on a normalised form (case, punctuation and accents ignored) with
difflib's longest-matching-blocks; each matched script word takes its recognised timing, and runs
the recogniser missed (or misheard) get times interpolated between the matched neighbours, shared
in proportion to their length.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from difflib import SequenceMatcher

from pydantic import BaseModel

from tools.models import Word


class Recognised(BaseModel):
    word: str
    start: float
    end: float


class Alignment(BaseModel):
    words: list[Word]
    matched: int  # script words that took a recognised timing

    @property
    def coverage(self) -> float:
        return self.matched / len(self.words) if self.words else 1.0


def normalise(token: str) -> str:
    decomposed = unicodedata.normalize("NFKD", token.casefold())
    return "".join(c for c in decomposed if c.isalnum())


def _spread(words: Sequence[Word], lo: float, hi: float) -> list[tuple[float, float]]:
    """Share [lo, hi] among a run of unmatched words by character length."""
    weights = [max(len(normalise(w.word)), 1) for w in words]
    total, at, times = sum(weights), lo, []
    for weight in weights:
        step = (hi - lo) * weight / total
        times.append((at, at + step))
        at += step
    return times


def align(script_words: Sequence[Word], recognised: Sequence[Recognised], duration: float) -> Alignment:
    """The script's words with recognised timings where they match, interpolated elsewhere.

    `duration` is the audio length: it bounds a run of unmatched words at the end.
    """
    times: list[tuple[float, float] | None] = [None] * len(script_words)
    matcher = SequenceMatcher(
        None, [normalise(w.word) for w in script_words], [normalise(r.word) for r in recognised], autojunk=False
    )
    matched = 0
    for block in matcher.get_matching_blocks():
        for k in range(block.size):
            r = recognised[block.b + k]
            times[block.a + k] = (r.start, max(r.end, r.start))
            matched += 1
    out: list[Word] = []
    i = 0
    while i < len(script_words):
        if (t := times[i]) is not None:
            lo = out[-1].end if out else 0.0
            start = max(t[0], lo)  # recognisers sometimes overlap neighbours: keep times monotonic
            out.append(script_words[i].model_copy(update={"start": start, "end": max(t[1], start), "estimated": False}))
            i += 1
            continue
        j = i
        while j < len(script_words) and times[j] is None:
            j += 1
        lo = out[-1].end if out else 0.0
        nxt = times[j] if j < len(script_words) else None
        hi = max(nxt[0] if nxt is not None else duration, lo)
        for w, (s, e) in zip(script_words[i:j], _spread(script_words[i:j], lo, hi), strict=True):
            out.append(w.model_copy(update={"start": round(s, 3), "end": round(e, 3), "estimated": True}))
        i = j
    return Alignment(words=out, matched=matched)
