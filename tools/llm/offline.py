"""The writer that needs no keys and no network: every stage can run, and tests can rely on it.

Deterministic (same inputs, same text), so a re-run after a crash writes the same files. Stories
come from `story.py`'s grammar filled with the request's own hero and thing (`premise.py`); the
request never reaches the text except through plain words, so mentions and markup cannot either.
"""

from __future__ import annotations

from collections import Counter

from tools.errors import BadInput
from tools.llm.base import clamp_target
from tools.llm.factual import asked_in, factual_kind, question_script, revise_question, topic
from tools.llm.hygiene import STOPWORDS, content_words, plain_text, sentences, trim_to_words, word_count, words
from tools.llm.local import HOW_TO_GET_ONE, Found
from tools.llm.premise import FALLBACK_REQUESTS, Premise, parse_premise, stable_hash, title_case
from tools.llm.revision import length_scale, parse_note, revise_lines
from tools.llm.schemas import (
    PART_MAX,
    PLATFORMS,
    TITLE_CHARS,
    IdeaSource,
    PlannedShot,
    PlatformMeta,
    Revision,
    StoryIdea,
)
from tools.llm.story import ANGLE_BY_NAME, ANGLES, Angle, fillers, fit, story_lines

_CORES = {"friendship": "warmth", "mystery": "curiosity", "comedy": "delight", "adventure": "suspense"}
FRAMINGS = ("wide establishing shot", "medium shot", "close-up", "low-angle shot")
IMAGE_STYLE = "cinematic, soft light, vertical composition"


def visual_prompt(title: str, text: str, index: int) -> str:
    """An image prompt from a shot's own words: framing, subject, the story's theme, a style."""
    subject = " ".join(content_words(plain_text(text, 600))[:8]) or "an empty landscape at dawn"
    theme = " ".join(content_words(plain_text(title, 200))[:4])
    return ", ".join(p for p in (FRAMINGS[index % len(FRAMINGS)], subject, theme, IMAGE_STYLE) if p)


class OfflineWriter:
    """The template writer: the last fallback, and it says so (`notice`)."""

    provider = "offline"

    def __init__(self, found: Found | None = None) -> None:
        self.found = found  # a local server that answered but has no model to write with

    def notice(self, request: str) -> str:
        """What this draft is and the exact way to a real writer; for a factual request, that the
        draft only asks the question (a template cannot know facts)."""
        fix = self.found.missing() if self.found else HOW_TO_GET_ONE
        kind = factual_kind(request)
        if kind:
            what = (
                f"this looks like a request for facts ({kind}), which a template cannot know, so the draft only "
                f"asks the question ({topic(request)!r}) and invents nothing"
            )
        else:
            what = "this is a story template filled with your prompt's words, not a written script"
        return f"No language model is set up, so {what}. Reply with your own script, or to get a real writer: {fix}."

    async def ideas(self, request: str, sources: list[IdeaSource], count: int = 3) -> list[StoryIdea]:
        """One idea per angle of the request's premise, then of the sources', then of built-in ones.

        A vague request ("surprise me") has no premise, so the sources lead. There are four angles
        per premise, so a very large `count` gets fewer ideas.
        """
        if count < 1:
            raise ValueError("count must be at least 1")
        premises = _premises([request, *(s.text for s in sources)])
        candidates = [(p, a, ip, ia) for ip, p in enumerate(premises) for ia, a in enumerate(_angle_order(p))]
        ideas = [_idea(p, angle, ip, ia) for p, angle, ip, ia in candidates[:count]]
        return sorted(ideas, key=lambda idea: -idea.score)

    async def script(self, request: str, idea: StoryIdea, target_words: int) -> str:
        if factual_kind(request):  # never confident fiction for an explainer, tips, news or a how-to
            return question_script(request, clamp_target(target_words))
        # an idea from another source carries its premise before the logline's colon
        premise = parse_premise(request) or parse_premise(idea.logline.split(":")[0]) or _premises([])[0]
        seed = stable_hash(request, idea.title)
        angle = next((ANGLE_BY_NAME[t] for t in idea.tags if t in ANGLE_BY_NAME), ANGLES[seed % len(ANGLES)])
        target = clamp_target(target_words)
        return fit(story_lines(premise, angle, seed, target), fillers(), target)

    async def revise(self, script: str, note: str, target_words: int) -> str:
        """Keep the script's sentences where they fit and make the note visible in the new draft; a
        question draft (an explainer's) only changes length and framing: a template knows no facts."""
        if not sentences(plain_text(script, 20_000)):
            raise BadInput("there is no script to revise")
        target = clamp_target(round(target_words * length_scale(note)))
        seed = stable_hash(script, note)
        asked = asked_in(script)
        if asked is not None:
            return revise_question(script, asked, seed, target, fresh=length_scale(note) == 1)
        return revise_lines(script, parse_note(note), seed, target)

    async def revision(self, script: str, note: str, target_words: int) -> Revision:
        text = await self.revise(script, note, target_words)
        shown = plain_text(note, 80) or "a new draft"
        counts = f"{word_count(script)} to {word_count(text)} words"
        if asked_in(script) is not None:
            return Revision(
                text=text,
                summary=f"Kept the question and its framing for the note “{shown}”: {counts}. With no language "
                "model nothing is added that could be wrong (no facts, jokes or story).",
            )
        return Revision(text=text, summary=f"Rewrote for the note “{shown}”: {counts}.")

    async def scene_plan(self, title: str, sentence_texts: list[str], count: int) -> list[PlannedShot] | None:
        return None  # the sentence planner cuts by the voice's timing, which is better than a guess

    async def scene_prompts(self, title: str, shot_texts: list[str]) -> list[str]:
        return [visual_prompt(title, text, i) for i, text in enumerate(shot_texts)]

    async def platform_meta(self, title: str, script: str) -> PlatformMeta:
        """The title, the script's opening as the description, the story's own words as hashtags."""
        summary = trim_to_words(plain_text(script, 20_000), 45)
        topics = _topics(f"{title} {script}")
        return PlatformMeta.build(title, summary, dict.fromkeys(PLATFORMS, topics))


def _premises(texts: list[str]) -> list[Premise]:
    """Usable premises of `texts`, then the built-in ones, each once."""
    found: dict[str, Premise] = {}
    for text in [*texts, *FALLBACK_REQUESTS]:
        premise = parse_premise(text)
        if premise:
            found.setdefault(premise.summary.lower(), premise)
    return list(found.values())


def _angle_order(premise: Premise) -> list[Angle]:
    """The angle the request's own words ask for ("a funny video...") first, then the rest."""
    return sorted(ANGLES, key=lambda a: a.name != premise.tone)


def _idea(premise: Premise, angle: Angle, premise_rank: int, angle_rank: int) -> StoryIdea:
    title = title_case(premise.fill(angle.title))
    if len(title) > TITLE_CHARS:
        title = title[:TITLE_CHARS].rsplit(" ", 1)[0]
    jitter = stable_hash(premise.summary, angle.name) % 3
    parts = {
        "hook": 20 - angle_rank + jitter,
        "originality": 18 - 2 * angle_rank,
        "emotion": 20 - angle_rank,
        "fit": max(0, 23 - 6 * premise_rank),
    }
    parts = {name: max(0, min(PART_MAX, value)) for name, value in parts.items()}
    return StoryIdea(
        title=title,
        logline=premise.fill(f"{{Summary}}: {angle.twist}."),
        hook=premise.fill(angle.hook),
        score=sum(parts.values()),
        tags=[angle.name, *premise.keywords[:4]],
        angle=angle.twist,
        audience="anyone who likes a short story" if angle.name != "friendship" else "viewers who want warmth",
        emotional_core=_CORES[angle.name],
        score_parts=parts,
    )


def _topics(text: str, count: int = 6) -> list[str]:
    """The most repeated content words; ties go to the first seen (the title's)."""
    counts = Counter(w for w in words(plain_text(text, 20_000).lower()) if w not in STOPWORDS and len(w) > 3)
    return [word for word, _ in counts.most_common(count)]
