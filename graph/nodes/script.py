"""Stages 2-3 and the script approval: every draft is kept as script.vN.txt."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from langgraph.graph import END
from langgraph.types import Command, interrupt

from graph.context import NodeContext, done, stage
from graph.state import Answer, JobRequest, JobState
from tools.files import write_text_atomic
from tools.llm import StoryIdea, target_words
from tools.text import clean_script
from tools.tts import speaking_rate, spoken_seconds

LENGTH_TOLERANCE = 0.08


async def _sized(state: JobState, draft: Callable[[int], Awaitable[str]]) -> str:
    """Write to the word target, then, if the spoken draft misses --duration by more than 8%, once
    more with the target scaled by the miss: the calibrated rate cannot know this text's pauses."""
    request = JobRequest.model_validate(state["request"])
    voice = request.voice or "en-us"
    target = target_words(request.duration, await speaking_rate(voice))
    text = await draft(target)
    seconds = await spoken_seconds(text, voice)
    if abs(seconds / request.duration - 1) <= LENGTH_TOLERANCE:
        return text
    second = await draft(max(1, round(target * request.duration / seconds)))
    seconds2 = await spoken_seconds(second, voice)
    return second if abs(seconds2 - request.duration) < abs(seconds - request.duration) else text


def _draft(ctx: NodeContext, version: int) -> str:
    return ctx.path(f"script.v{version}.txt").read_text(encoding="utf-8").strip()


def _draft_update(version: int) -> dict[str, Any]:
    return {"script_version": version, "script_file": f"script.v{version}.txt", "revision": {}}


def _save_draft(ctx: NodeContext, version: int, text: str) -> dict[str, Any]:
    write_text_atomic(ctx.path(f"script.v{version}.txt"), clean_script(text) + "\n")
    return _draft_update(version)


@stage("write_script")
async def write_script(state: JobState, ctx: NodeContext) -> dict[str, Any]:
    request = ctx.request(state)
    version = state.get("script_version", 0) + 1
    if request.script_text is not None:
        return done("user", **_save_draft(ctx, version, request.script_text))
    if ctx.path(f"script.v{version}.txt").is_file():  # written before a crash: keep it
        return done(ctx.writer.provider, **_draft_update(version))
    ideas = [StoryIdea.model_validate(i) for i in state.get("ideas", [])]
    idea = StoryIdea.model_validate(state["idea"])
    if state.get("revision", {}).get("regenerate") and len(ideas) > 1:
        # a fresh draft: move on to the next idea, so a deterministic writer also gives new text
        idea = ideas[(version - 1) % len(ideas)]
    text = await _sized(state, lambda words: ctx.writer.script(request.prompt, idea, words))
    return done(ctx.writer.provider, **_save_draft(ctx, version, text))


@stage("revise_script")
async def revise_script(state: JobState, ctx: NodeContext) -> dict[str, Any]:
    version = state["script_version"] + 1
    revision = state.get("revision", {})
    if revision.get("text"):
        return done("user", **_save_draft(ctx, version, revision["text"]))
    if ctx.path(f"script.v{version}.txt").is_file():
        return done(ctx.writer.provider, **_draft_update(version))
    current = _draft(ctx, state["script_version"])
    text = await _sized(state, lambda words: ctx.writer.revise(current, revision.get("note", ""), words))
    return done(ctx.writer.provider, **_save_draft(ctx, version, text))


@stage("approve_script")
async def approve_script(state: JobState, ctx: NodeContext) -> Command[Any]:
    version = state["script_version"]
    text = _draft(ctx, version)
    if not ctx.auto_approve:
        request = ctx.request(state)
        answer = Answer.model_validate(interrupt({
            "approval": "approve_script",
            "question": f"Approve script version {version}?",
            "version": version,
            "script": text,
            "words": len(text.split()),
            "target_seconds": request.duration,
            "answers": ["approve", "revise NOTE", "replace FILE", "regenerate", "cancel"],
        }))
        if answer.action == "cancel":
            return Command(update=done("user", outcome="cancelled"), goto=END)
        if answer.action == "revise":
            return Command(update=done("user", revision={"note": answer.note or ""}), goto="revise_script")
        if answer.action == "replace":
            return Command(update=done("user", revision={"text": answer.text or ""}), goto="revise_script")
        if answer.action == "regenerate":
            return Command(update=done("user", revision={"regenerate": True}), goto="write_script")
    write_text_atomic(ctx.path("script.txt"), text + "\n")
    return Command(update=done("auto" if ctx.auto_approve else "user"), goto="voice")
