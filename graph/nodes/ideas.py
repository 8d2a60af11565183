"""Stages 0-1 and the first approval: where the story comes from."""

from __future__ import annotations

from typing import Literal

from langgraph.types import Command, interrupt
from pydantic import BaseModel

from graph.context import NodeContext, StageUpdate, done, stage
from graph.state import Answer, IdeaApproval, JobState
from tools.files import write_json_atomic
from tools.ideas import collect_sources, source_key
from tools.llm import IdeaSource, StoryIdea


class _IdeasFile(BaseModel):
    """`ideas.json`: the sources collected, then the ideas scored from them."""

    sources: list[IdeaSource] | None = None  # None: not collected yet
    ideas: list[StoryIdea] = []


def _ideas_file(ctx: NodeContext) -> _IdeasFile:
    path = ctx.path("ideas.json")
    return _IdeasFile.model_validate_json(path.read_bytes()) if path.is_file() else _IdeasFile()


@stage("collect_ideas")
async def collect_ideas(state: JobState, ctx: NodeContext) -> StageUpdate:
    """The request, the seeds file, and Reddit and feed items no earlier job has used (then marked used)."""
    stored = _ideas_file(ctx)
    if stored.sources is not None:  # collected before a crash: the same sources, not a second pick
        sources = stored.sources
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
        write_json_atomic(
            ctx.path("ideas.json"), _IdeasFile(sources=sources).model_dump(mode="json", exclude={"ideas"})
        )
        ctx.store.mark_sources_seen(ctx.job_id, [source_key(s) for s in sources if s.kind in ("rss", "reddit")])
    kinds = sorted({s.kind for s in sources})
    return done("+".join(kinds))


@stage("story_ideas")
async def story_ideas(state: JobState, ctx: NodeContext) -> StageUpdate:
    request = ctx.request(state)
    stored = _ideas_file(ctx)
    with ctx.metered("story_ideas"):
        ideas = await ctx.writer.ideas(request.prompt, stored.sources or [], 3)
    stored.ideas = ideas
    write_json_atomic(ctx.path("ideas.json"), stored.model_dump(mode="json"))
    return done(ctx.writer.provider, ideas=ideas)


@stage("pick_idea")
async def pick_idea(state: JobState, ctx: NodeContext) -> Command[Literal["write_script", "revise_script", "__end__"]]:
    """The requester picks an idea (approve takes the first), or replies with their own script."""
    ideas = [StoryIdea.model_validate(i) for i in state["ideas"]]
    if ctx.auto_approve:
        return Command(update=done("auto", idea=ideas[0]), goto="write_script")
    answer = Answer.model_validate(interrupt(IdeaApproval(ideas=ideas)))
    if answer.action == "cancel":
        return Command(update=done("user", outcome="cancelled"), goto="__end__")
    if answer.action == "replace":  # their own script: straight to the script approval with it
        return Command(update=done("user", idea=ideas[0], revision={"text": answer.text or ""}), goto="revise_script")
    index = answer.index if answer.action == "pick" and answer.index is not None else 0
    return Command(update=done("user", idea=ideas[index]), goto="write_script")
