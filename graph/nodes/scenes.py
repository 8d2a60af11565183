"""Stage 6: the scene plan: shots cut at sentence ends, each with a picture prompt from the writer."""

from __future__ import annotations

from typing import Any

from graph.context import NodeContext, done, stage
from graph.state import JobState
from tools import shots


@stage("plan_scenes")
async def plan_scenes(state: JobState, ctx: NodeContext) -> dict[str, Any]:
    request = ctx.request(state)
    text = ctx.script()
    plan = shots.plan_shots(text, ctx.words(), state["voice"]["duration"], seed=request.seed)
    title = state.get("idea", {}).get("title") or request.prompt
    prompts = await ctx.writer.scene_prompts(title, [s.text for s in plan])
    plan = [s.model_copy(update={"prompt": p}) for s, p in zip(plan, prompts, strict=True)]
    shots.write_shots(plan, ctx.path("shots.json"))
    return done(f"sentence planner + {ctx.writer.provider}", shot_seeds={}, reroll=[])
