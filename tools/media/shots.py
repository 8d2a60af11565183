"""Shot planning: cut the voice into pictures at sentence ends, or where a writer's scene plan says.

Shots cover [0, voice duration] exactly, with no gaps, so the cut stays in sync with the voice.
Cuts fall in the pause before a new sentence; when there are fewer sentences than shots wanted
(or a user brought more images than sentences), clause ends and then word gaps are used. A scene
plan (the LLM's) groups whole sentences instead, and is timed by the same rule (`_timed`); its
extras beyond the Shot schema (mood, beat, negative prompt, search terms) go to `scenes.json`.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

from pydantic import BaseModel

from tools.errors import BadInput
from tools.files import write_json_atomic, write_text_atomic
from tools.llm.schemas import PlannedShot, check_coverage
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
    for last in [*breaks, len(words) - 1]:
        previous = shots[-1].motion if shots else None
        shot = _timed(script, words, duration, shots, first, last, rng.choice([m for m in motions if m != previous]))
        shots.append(shot.model_copy(update={"prompt": shot.text}))
        first = last + 1
    return shots


def _timed(
    script: str, words: list[Word], duration: float, before: list[Shot], first: int, last: int, motion: Motion
) -> Shot:
    """The shot of words first..last: it starts where the previous one ended and ends in the middle
    of the pause before the next word (the last shot at the end of the voice)."""
    start = before[-1].end if before else 0.0
    end = duration if last == len(words) - 1 else (words[last].end + words[last + 1].start) / 2
    text = script[words[first].char_start : words[last].char_end]
    return Shot(
        index=len(before),
        start=round(start, 3),
        end=round(end, 3),
        first_word=first,
        last_word=last,
        text=text,
        key_phrase=key_phrase(text),
        motion=motion,
    )


def sentence_ranges(words: list[Word]) -> list[tuple[int, int]]:
    """(first word, last word) of each sentence of the voice's words, cut where the shot planner cuts."""
    ranges: list[tuple[int, int]] = []
    first = 0
    for i, word in enumerate(words):
        if ends_sentence(word.word) or i == len(words) - 1:
            ranges.append((first, i))
            first = i + 1
    return ranges


def planned_shots(script: str, words: list[Word], duration: float, plan: list[PlannedShot]) -> list[Shot]:
    """A writer's scene plan timed from the words; ValueError when it leaves a gap, overlaps or has a
    shot under MIN_SHOT_SECONDS."""
    ranges = sentence_ranges(words)
    check_coverage([(p.first_sentence, p.last_sentence) for p in plan], len(ranges))
    out: list[Shot] = []
    for index, p in enumerate(plan):
        shot = _timed(
            script, words, duration, out, ranges[p.first_sentence][0], ranges[p.last_sentence][1], Motion(p.motion)
        )
        if shot.end - shot.start < MIN_SHOT_SECONDS:
            raise ValueError(f"shot {index + 1} would last {shot.end - shot.start:.2f} s")
        out.append(shot.model_copy(update={"prompt": p.prompt}))
    return out


class Scene(BaseModel):
    """One line of `scenes.json`: a shot as planned, with what the Shot schema does not carry."""

    shot: int  # 1-based
    start: float = 0.0
    end: float = 0.0
    text: str = ""
    prompt: str = ""
    motion: str = ""
    negative_prompt: str = ""
    mood: str = ""
    beat: str | None = None  # hook, build, climax or resolution (a writer's plan only)
    search_terms: list[str] = []  # for stock footage: concrete things a camera could film


def write_scenes(plan: list[Shot], planned: list[PlannedShot] | None, path: Path) -> None:
    """`scenes.json`: every shot, with the writer's extras when its plan was used."""
    extras = [p.model_dump(include={"negative_prompt", "mood", "beat", "search_terms"}) for p in planned or []]
    scenes = [
        Scene(
            shot=s.index + 1,
            start=s.start,
            end=s.end,
            text=s.text,
            prompt=s.prompt,
            motion=s.motion.value,
            **(extras[s.index] if extras else {}),
        )
        for s in plan
    ]
    write_json_atomic(path, [scene.model_dump() for scene in scenes])


def read_scenes(path: Path) -> dict[int, Scene]:
    """The scene plan by 0-based shot index (empty when there is none)."""
    if not path.is_file():
        return {}
    return {scene.shot - 1: scene for scene in (Scene.model_validate(e) for e in json.loads(path.read_bytes()))}


def write_shots(shots: list[Shot], path: Path) -> None:
    write_text_atomic(path, "[\n" + ",\n".join(s.model_dump_json() for s in shots) + "\n]\n")


def read_shots(path: Path) -> list[Shot]:
    return [Shot.model_validate(item) for item in json.loads(path.read_text(encoding="utf-8"))]
