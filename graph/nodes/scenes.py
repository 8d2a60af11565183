"""Stage 6: the scene plan. A writer that plans (the LLM) groups the script's sentences into shots
with an image prompt, negative prompt, camera motion, mood and beat; the plan must cover the script
exactly and give every shot at least a second, or the sentence planner cuts instead.

`shots.json` keeps the shared Shot schema; the plan's extra fields go to `scenes.json` (`tools.media.shots.Scene`).
"""

from __future__ import annotations

from graph.context import NodeContext, StageUpdate, done, stage
from graph.events import Event
from graph.state import JobState
from tools.llm import PlannedShot, WriterError
from tools.media import shots
from tools.models import Shot


@stage("plan_scenes")
async def plan_scenes(state: JobState, ctx: NodeContext) -> StageUpdate:
    request = ctx.request(state)
    text, words = ctx.script(), ctx.words()
    duration = ctx.voice(state).duration
    title = ctx.title(state)
    texts = [text[words[a].char_start : words[b].char_end] for a, b in shots.sentence_ranges(words)]
    plan: list[Shot] | None = None
    planned: list[PlannedShot] | None = None
    provider = f"sentence planner + {ctx.writer.provider}"
    own = len(request.media)  # the user's pictures: one shot each (spares become re-roll alternates)
    count = min(own, len(words), max(1, int(duration // shots.MIN_SHOT_SECONDS))) if own else None
    with ctx.metered("plan_scenes"):
        try:
            planned = None if own else await ctx.writer.scene_plan(title, texts, shots.default_shot_count(duration))
            if planned:
                plan = shots.planned_shots(text, words, duration, planned)
                provider = ctx.writer.provider
        except (WriterError, ValueError) as exc:
            planned = None
            message = f"the scene plan was unusable, so the sentence planner cut the shots: {exc}"
            ctx.emit(Event(job_id=ctx.job_id, kind="notice", message=message))
        if plan is None:
            plan = shots.plan_shots(text, words, duration, count=count, seed=request.seed)
            prompts = await ctx.writer.scene_prompts(title, [s.text for s in plan])
            plan = [s.model_copy(update={"prompt": p}) for s, p in zip(plan, prompts, strict=True)]
    shots.write_shots(plan, ctx.path("shots.json"))
    shots.write_scenes(plan, planned, ctx.path("scenes.json"))
    return done(provider, shot_seeds={}, reroll=[])
