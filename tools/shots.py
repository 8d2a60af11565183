"""Shot planning: cut the voice into pictures at sentence ends.

Shots cover [0, voice duration] exactly, with no gaps, so the cut stays in sync with the voice.
Cuts fall in the pause before a new sentence; when there are fewer sentences than shots wanted
(or a user brought more images than sentences), clause ends and then word gaps are used.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

from tools.errors import BadInput
from tools.files import write_text_atomic
from tools.models import Motion, Shot, Word
from tools.text import ends_clause, ends_sentence

TARGET_SHOT_SECONDS = 7.5
MIN_SHOT_SECONDS = 1.0

_STOP = frozenset(
    "a an and are as at be but by for from had has have he her his i if in into is it its "
    "me my no not of on or our she so than that the their them then there they this to was we "
    "were what when which who will with you your".split()
)


def default_shot_count(duration: float) -> int:
    return max(1, round(duration / TARGET_SHOT_SECONDS))


def _break_rank(word: Word) -> int:
    """How good a cut after this word is: sentence end 2, clause end 1, any word gap 0."""
    return 2 if ends_sentence(word.word) else 1 if ends_clause(word.word) else 0


def _choose_breaks(words: list[Word], count: int, duration: float) -> list[int]:
    """Indexes of the last word of each shot but the final one.

    Uses the best break rank that offers enough candidates, then for each ideal cut time picks
    the nearest candidate after the previous cut that still leaves one for every later cut.
    """
    for rank in (2, 1, 0):
        candidates = [i for i, w in enumerate(words[:-1]) if _break_rank(w) >= rank]
        if len(candidates) >= count - 1:
            break
    chosen: list[int] = []
    lo = 0
    for k in range(1, count):
        hi = len(candidates) - (count - 1 - k)
        ideal = duration * k / count
        pick = min(range(lo, hi), key=lambda c: abs(words[candidates[c] + 1].start - ideal))
        chosen.append(candidates[pick])
        lo = pick + 1
    return chosen


def key_phrase(text: str, max_words: int = 4) -> str:
    """A short title for a shot: its first content words, punctuation stripped."""
    tokens = [t.strip(".,;:!?\"'()[]{}«»“”‘’…—–-") for t in text.split()]
    content = [t for t in tokens if t and t.lower() not in _STOP]
    return " ".join(content[:max_words] or tokens[:max_words])


def plan_shots(script: str, words: list[Word], duration: float, count: int | None = None, seed: int = 0) -> list[Shot]:
    """Split the voice into `count` shots (default: one per ~7.5 s) at the best breaks."""
    if not words:
        raise BadInput("the script has no words to plan shots from")
    max_count = max(1, min(len(words), int(duration // MIN_SHOT_SECONDS)))
    # the default is only a wish: a long voice with few words (one huge word) gets as many as fit
    wanted = count or min(default_shot_count(duration), max_count)
    if wanted > max_count:
        raise BadInput(
            f"{wanted} shots do not fit a {duration:.1f} s voice with {len(words)} words (at most {max_count})"
        )
    breaks = _choose_breaks(words, wanted, duration)
    motions = list(Motion)
    rng = random.Random(seed)
    shots: list[Shot] = []
    first = 0
    for index, last in enumerate([*breaks, len(words) - 1]):
        start = shots[-1].end if shots else 0.0
        if last == len(words) - 1:
            end = duration
        else:  # cut in the middle of the pause before the next word
            end = (words[last].end + words[last + 1].start) / 2
        text = script[words[first].char_start : words[last].char_end]
        previous = shots[-1].motion if shots else None
        motion = rng.choice([m for m in motions if m != previous])
        shots.append(
            Shot(
                index=index,
                start=round(start, 3),
                end=round(end, 3),
                first_word=first,
                last_word=last,
                text=text,
                key_phrase=key_phrase(text),
                prompt=text,
                motion=motion,
            )
        )
        first = last + 1
    return shots


def write_shots(shots: list[Shot], path: Path) -> None:
    write_text_atomic(path, "[\n" + ",\n".join(s.model_dump_json() for s in shots) + "\n]\n")


def read_shots(path: Path) -> list[Shot]:
    return [Shot.model_validate(item) for item in json.loads(path.read_text(encoding="utf-8"))]
