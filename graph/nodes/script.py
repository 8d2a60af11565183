"""Stages 2-3 and the script approval: every draft is kept as script.vN.txt."""

from __future__ import annotations

from typing import Any

from langgraph.graph import END
from langgraph.types import Command, interrupt

from graph.context import NodeContext, done, stage
from graph.state import Answer, JobState
from tools.files import write_text_atomic
from tools.llm import StoryIdea, target_words
from tools.text import clean_script
from tools.tts import speaking_rate


async def _target_words(state: JobState, ctx: NodeContext) -> int:
    request = ctx.request(state)
    wpm = await speaking_rate(request.voice or "en-us")
    return target_words(request.duration, wpm)


def _draft(ctx: NodeContext, version: int) -> str:
    return ctx.path(f"script.v{version}.txt").read_text(encoding="utf-8").strip()


def _save_draft(ctx: NodeContext, version: int, text: str) -> dict[str, Any]:
    name = f"script.v{version}.txt"
    write_text_atomic(ctx.path(name), clean_script(text) + "\n")
    return {"script_version": version, "script_file": name, "revision": {}}


@stage("write_script")
async def write_script(state: JobState, ctx: NodeContext) -> dict[str, Any]:
    request = ctx.request(state)
    version = state.get("script_version", 0) + 1
    if request.script_text is not None:
        return done("user", **_save_draft(ctx, version, request.script_text))
    if ctx.path(f"script.v{version}.txt").is_file():  # written before a crash: keep it
        return done(ctx.writer.provider, **_save_draft(ctx, version, _draft(ctx, version)))
    ideas = [StoryIdea.model_validate(i) for i in state.get("ideas", [])]
    idea = StoryIdea.model_validate(state["idea"])
    if state.get("revision", {}).get("regenerate") and len(ideas) > 1:
        # a fresh draft: move on to the next idea, so a deterministic writer also gives new text
        idea = ideas[(version - 1) % len(ideas)]
    text = await ctx.writer.script(request.prompt, idea, await _target_words(state, ctx))
    return done(ctx.writer.provider, **_save_draft(ctx, version, text))


@stage("revise_script")
async def revise_script(state: JobState, ctx: NodeContext) -> dict[str, Any]:
    version = state["script_version"] + 1
    revision = state.get("revision", {})
    if revision.get("text"):
        return done("user", **_save_draft(ctx, version, revision["text"]))
    if ctx.path(f"script.v{version}.txt").is_file():
        return done(ctx.writer.provider, **_save_draft(ctx, version, _draft(ctx, version)))
    text = await ctx.writer.revise(_draft(ctx, state["script_version"]), revision.get("note", ""),
                                   await _target_words(state, ctx))
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
