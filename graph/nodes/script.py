"""Stages 2-3 and the script approval: every draft is kept as script.vN.txt.

A revision also writes `script.vN.change.json` (the note, the writer's one-line summary), so the
approval can show the reviewer what changed: the summary and a word diff against the draft before.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Awaitable, Callable
from typing import Any

from langgraph.graph import END
from langgraph.types import Command, interrupt

from graph.context import NodeContext, done, stage
from graph.nodes.voice import choose_voice
from graph.state import Answer, JobRequest, JobState
from tools.files import write_json_atomic, write_text_atomic
from tools.llm import Revision, StoryIdea, target_words
from tools.text import clean_script
from tools.tts import speaking_rate, spoken_seconds
from tools.tts.espeak import EspeakVoice

LENGTH_TOLERANCE = 0.08


async def _pace(ctx: NodeContext, request: JobRequest) -> tuple[str, float, float]:
    """(espeak-ng voice that estimates durations, its measured rate, the narrating voice's rate).

    The narrator is paced by the rate measured on its last narration, else on a fixed paragraph
    (Piper, espeak-ng), else espeak-ng's; espeak-ng's pause-aware estimate of a draft is scaled by
    the ratio of the two rates."""
    chosen = await choose_voice(ctx.settings, request, request.script_text or request.prompt)
    narrator = chosen.voice
    estimator = narrator.voice if isinstance(narrator, EspeakVoice) else "en-us"
    rate = await speaking_rate(estimator)
    measured = ctx.store.voice_rate(narrator.rate_key)
    if measured is None and (measured := await narrator.speaking_rate()):
        ctx.store.set_voice_rate(narrator.rate_key, measured)  # measured once, kept with the jobs
    return estimator, rate, measured or rate


async def _sized(ctx: NodeContext, state: JobState, draft: Callable[[int], Awaitable[Revision]]) -> Revision:
    """Write to the word target, then, if the spoken draft misses --duration by more than 8%, once
    more with the target scaled by the miss: the calibrated rate cannot know this text's pauses."""
    request = JobRequest.model_validate(state["request"])
    estimator, rate, narrator = await _pace(ctx, request)

    async def seconds(text: str) -> float:
        return await spoken_seconds(text, estimator) * rate / narrator

    target = target_words(request.duration, narrator)
    first = await draft(target)
    took = await seconds(first.text)
    if abs(took / request.duration - 1) <= LENGTH_TOLERANCE:
        return first
    second = await draft(max(1, round(target * request.duration / took)))
    took2 = await seconds(second.text)
    return second if abs(took2 - request.duration) < abs(took - request.duration) else first


def word_diff(old: str, new: str) -> str:
    """`git diff --word-diff=plain` style: [-removed words-]{+added words+}, the rest as is."""
    a, b = old.split(), new.split()
    out: list[str] = []
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes():
        if tag == "equal":
            out.append(" ".join(a[i1:i2]))
            continue
        if i2 > i1:
            out.append("[-" + " ".join(a[i1:i2]) + "-]")
        if j2 > j1:
            out.append("{+" + " ".join(b[j1:j2]) + "+}")
    return " ".join(out)


def _change(ctx: NodeContext, version: int) -> dict[str, Any]:
    """What the approval shows about how this version came to be: the summary, a word diff and the
    draft before (for front ends that draw their own diff)."""
    path = ctx.path(f"script.v{version}.change.json")
    if version < 2 or not path.is_file():
        return {}
    change = json.loads(path.read_text(encoding="utf-8"))
    previous = _draft(ctx, version - 1)
    return {"summary": change.get("summary", ""), "diff": word_diff(previous, _draft(ctx, version)),
            "previous_script": previous}


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
    async def draft(words: int) -> Revision:
        return Revision(text=await ctx.writer.script(request.prompt, idea, words), summary="")

    with ctx.metered("write_script"):
        written = await _sized(ctx, state, draft)
    return done(ctx.writer.provider, **_save_draft(ctx, version, written.text))


@stage("revise_script")
async def revise_script(state: JobState, ctx: NodeContext) -> dict[str, Any]:
    version = state["script_version"] + 1
    revision = state.get("revision", {})
    change = ctx.path(f"script.v{version}.change.json")
    if revision.get("text"):
        write_json_atomic(change, {"note": None, "summary": "Replaced with the reviewer's own text."})
        return done("user", **_save_draft(ctx, version, revision["text"]))
    if ctx.path(f"script.v{version}.txt").is_file():
        return done(ctx.writer.provider, **_draft_update(version))
    current = _draft(ctx, state["script_version"])
    note = revision.get("note", "")
    with ctx.metered("revise_script"):
        revised = await _sized(ctx, state, lambda words: ctx.writer.revision(current, note, words))
    write_json_atomic(change, {"note": note, "summary": revised.summary})  # before the draft: it marks it done
    return done(ctx.writer.provider, **_save_draft(ctx, version, revised.text))


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
            **_change(ctx, version),
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
