"""Stages 0-1 and the first approval: where the story comes from."""

from __future__ import annotations

import json
from typing import Any, Literal

from langgraph.types import Command, interrupt

from graph.context import NodeContext, done, stage
from graph.state import Answer, IdeaApproval, JobState
from tools.files import write_json_atomic
from tools.ideas import collect_sources, source_key
from tools.llm import IdeaSource, StoryIdea


def _ideas_file(ctx: NodeContext) -> dict[str, Any]:
    path = ctx.path("ideas.json")
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


@stage("collect_ideas")
async def collect_ideas(state: JobState, ctx: NodeContext) -> dict[str, Any]:
    """The request, the seeds file, and Reddit and feed items no earlier job has used (then marked used)."""
    stored = _ideas_file(ctx)
    if "sources" in stored:  # collected before a crash: the same sources, not a second pick
        sources = [IdeaSource.model_validate(s) for s in stored["sources"]]
    else:
        s = ctx.settings
        seeds = s.data_dir / "seeds.txt"
        sources = await collect_sources(
            ctx.request(state).prompt,
            seeds if seeds.is_file() else None,
            s.feed_urls,
            subreddits=s.subreddits,
            reddit_url=s.reddit_base_url,
            user_agent=s.user_agent,
            seen=ctx.store.seen_sources,
        )
        write_json_atomic(ctx.path("ideas.json"), {"sources": [s.model_dump() for s in sources]})
        ctx.store.mark_sources_seen(ctx.job_id, [source_key(s) for s in sources if s.kind in ("rss", "reddit")])
    kinds = sorted({s.kind for s in sources})
    return done("+".join(kinds))


@stage("story_ideas")
async def story_ideas(state: JobState, ctx: NodeContext) -> dict[str, Any]:
    request = ctx.request(state)
    stored = _ideas_file(ctx)
    sources = [IdeaSource.model_validate(s) for s in stored.get("sources", [])]
    with ctx.metered("story_ideas"):
        ideas = await ctx.writer.ideas(request.prompt, sources, 3)
    write_json_atomic(ctx.path("ideas.json"), {**stored, "ideas": [i.model_dump() for i in ideas]})
    return done(ctx.writer.provider, ideas=[i.model_dump() for i in ideas])


@stage("pick_idea")
async def pick_idea(state: JobState, ctx: NodeContext) -> Command[Literal["write_script", "revise_script", "__end__"]]:
    """The requester picks an idea (approve takes the first), or replies with their own script."""
    ideas = [StoryIdea.model_validate(i) for i in state["ideas"]]
    if ctx.auto_approve:
        return Command(update=done("auto", idea=ideas[0].model_dump()), goto="write_script")
    answer = Answer.model_validate(interrupt(IdeaApproval(ideas=ideas)))
    if answer.action == "cancel":
        return Command(update=done("user", outcome="cancelled"), goto="__end__")
    if answer.action == "replace":  # their own script: straight to the script approval with it
        return Command(
            update=done("user", idea=ideas[0].model_dump(), revision={"text": answer.text or ""}), goto="revise_script"
        )
    index = answer.index if answer.action == "pick" and answer.index is not None else 0
    return Command(update=done("user", idea=ideas[index].model_dump()), goto="write_script")
