"""Stage 6: the scene plan. A writer that plans (the LLM) groups the script's sentences into shots
with an image prompt, negative prompt, camera motion, mood and beat; the plan must cover the script
exactly and give every shot at least a second, or the sentence planner cuts instead.

`shots.json` keeps the shared Shot schema; the plan's extra fields go to `scenes.json`, one entry per shot.
"""

from __future__ import annotations

from typing import Any

from graph.context import NodeContext, done, stage
from graph.events import Event
from graph.state import JobState
from tools import shots
from tools.files import write_json_atomic
from tools.llm import PlannedShot, WriterError
from tools.llm.schemas import check_coverage
from tools.models import Motion, Shot, Word
from tools.text import ends_sentence


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
    """Shots timed from the words; ValueError when the plan leaves a gap, overlaps or has a too-short shot."""
    ranges = sentence_ranges(words)
    check_coverage([(p.first_sentence, p.last_sentence) for p in plan], len(ranges))
    out: list[Shot] = []
    for index, p in enumerate(plan):
        first, last = ranges[p.first_sentence][0], ranges[p.last_sentence][1]
        start = out[-1].end if out else 0.0
        end = duration if last == len(words) - 1 else (words[last].end + words[last + 1].start) / 2
        if end - start < shots.MIN_SHOT_SECONDS:
            raise ValueError(f"shot {index + 1} would last {end - start:.2f} s")
        text = script[words[first].char_start : words[last].char_end]
        out.append(
            Shot(
                index=index,
                start=round(start, 3),
                end=round(end, 3),
                first_word=first,
                last_word=last,
                text=text,
                key_phrase=shots.key_phrase(text),
                prompt=p.prompt,
                motion=Motion(p.motion),
            )
        )
    return out


@stage("plan_scenes")
async def plan_scenes(state: JobState, ctx: NodeContext) -> dict[str, Any]:
    request = ctx.request(state)
    text, words = ctx.script(), ctx.words()
    duration = state["voice"]["duration"]
    title = state.get("idea", {}).get("title") or request.prompt
    texts = [text[words[a].char_start : words[b].char_end] for a, b in sentence_ranges(words)]
    plan: list[Shot] | None = None
    extras: list[dict[str, Any]] = []
    provider = f"sentence planner + {ctx.writer.provider}"
    own = len(request.media)  # the user's pictures: one shot each (spares become re-roll alternates)
    count = min(own, len(words), max(1, int(duration // shots.MIN_SHOT_SECONDS))) if own else None
    with ctx.metered("plan_scenes"):
        try:
            planned = None if own else await ctx.writer.scene_plan(title, texts, shots.default_shot_count(duration))
            if planned:
                plan = planned_shots(text, words, duration, planned)
                extras = [p.model_dump(include={"negative_prompt", "mood", "beat", "search_terms"}) for p in planned]
                provider = ctx.writer.provider
        except (WriterError, ValueError) as exc:
            message = f"the scene plan was unusable, so the sentence planner cut the shots: {exc}"
            ctx.emit(Event(job_id=ctx.job_id, kind="notice", message=message))
        if plan is None:
            plan = shots.plan_shots(text, words, duration, count=count, seed=request.seed)
            prompts = await ctx.writer.scene_prompts(title, [s.text for s in plan])
            plan = [s.model_copy(update={"prompt": p}) for s, p in zip(plan, prompts, strict=True)]
    shots.write_shots(plan, ctx.path("shots.json"))
    write_json_atomic(
        ctx.path("scenes.json"),
        [
            {
                "shot": s.index + 1,
                "start": s.start,
                "end": s.end,
                "text": s.text,
                "prompt": s.prompt,
                "motion": s.motion.value,
                **(extras[s.index] if extras else {}),
            }
            for s in plan
        ],
    )
    return done(provider, shot_seeds={}, reroll=[])
