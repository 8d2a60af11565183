"""Stages 2-3 and the script approval: every draft is kept as script.vN.txt.

A revision also writes `script.vN.change.json` (the note, the writer's one-line summary), so the
approval can show the reviewer what changed: the summary and a word diff against the draft before.
"""

from __future__ import annotations

import difflib
from collections.abc import Awaitable, Callable
from typing import Literal

from langgraph.types import Command, interrupt
from pydantic import BaseModel

from graph.context import NodeContext, StageUpdate, done, stage
from graph.events import Event
from graph.nodes.voice import choose_voice
from graph.state import LENGTH_TOLERANCE, Answer, JobRequest, JobState, ScriptApproval
from graph.store import JobStore
from tools.files import write_json_atomic, write_text_atomic
from tools.llm import Revision, StoryIdea, target_words
from tools.llm.revision import length_scale
from tools.llm.schemas import TITLE_CHARS
from tools.llm.story import ANGLES
from tools.settings import Settings
from tools.text import clean_script
from tools.tts import speaking_rate, spoken_seconds


async def _pace(ctx: NodeContext, request: JobRequest) -> tuple[str, float, float]:
    return await pace(ctx.settings, ctx.store, request)


async def pace(settings: Settings, store: JobStore, request: JobRequest) -> tuple[str, float, float]:
    """(espeak-ng voice that estimates durations, its measured rate, the narrating voice's rate).

    The narrator is paced by the rate measured on its last narration, else on a fixed paragraph
    (Piper, espeak-ng), else espeak-ng's; espeak-ng's pause-aware estimate of a draft is scaled by
    the ratio of the two rates. Voices and rates are cached per process: `JobService.warm` fills
    them at start, so the first script does not wait for a model to load."""
    chosen = await choose_voice(settings, request, request.script_text or request.prompt)
    narrator = chosen.voice
    estimator = narrator.estimator
    rate = await speaking_rate(estimator)
    measured = store.voice_rate(narrator.rate_key)
    if measured is None and (measured := await narrator.speaking_rate()):
        store.set_voice_rate(narrator.rate_key, measured)  # measured once, kept with the jobs
    return estimator, rate, measured or rate


async def _seconds(ctx: NodeContext, request: JobRequest, text: str) -> float:
    """How long the narrating voice takes to say `text` (espeak-ng's estimate, scaled to its rate)."""
    estimator, rate, narrator = await _pace(ctx, request)
    return await spoken_seconds(text, estimator) * rate / narrator


async def _sized(
    ctx: NodeContext,
    state: JobState,
    draft: Callable[[int], Awaitable[Revision]],
    goal: float | None = None,
    scale: float = 1.0,
) -> Revision:
    """Write to the word target, then, if the spoken draft misses the goal (--duration, unless a note
    asked for longer or shorter) by more than 8%, once more with the target scaled by the miss (the
    calibrated rate cannot know this text's pauses). The closer of the two is kept, however far off:
    the approval shows its length, and the reviewer can ask for it longer or shorter; a model that
    misses the length never fails the job. `scale` is what the writer itself does to the target
    for the note's length words, so it is taken out of the number passed to it."""
    request = ctx.request(state)
    goal = goal or request.duration
    _, _, narrator = await _pace(ctx, request)

    async def seconds(text: str) -> float:
        return await _seconds(ctx, request, text)

    target = target_words(goal, narrator) / scale
    first = await draft(max(1, round(target)))
    took = await seconds(first.text)
    if abs(took / goal - 1) <= LENGTH_TOLERANCE:
        return first
    second = await draft(max(1, round(target * goal / took)))
    took2 = await seconds(second.text)
    return second if abs(took2 - goal) < abs(took - goal) else first


def _length_goal(requested: float, current: float, scale: float) -> float:
    """Seconds a revision aims at: "longer" fixes a short draft (back to the request) or lengthens one
    that fits; "shorter" likewise; a note without length words aims at the request."""
    if scale > 1:
        return max(requested, current * scale)
    if scale < 1:
        return min(requested, current * scale)
    return requested


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


class _Change(BaseModel):
    """What the approval shows about how a version came to be: the writer's summary, a word diff and
    the draft before (for front ends that draw their own diff)."""

    summary: str = ""
    diff: str = ""
    previous_script: str = ""


def _change(ctx: NodeContext, version: int) -> _Change:
    path = ctx.path(f"script.v{version}.change.json")
    if version < 2 or not path.is_file():
        return _Change()
    summary = _Change.model_validate_json(path.read_bytes()).summary
    previous = _draft(ctx, version - 1)
    return _Change(summary=summary, diff=word_diff(previous, _draft(ctx, version)), previous_script=previous)


def _draft(ctx: NodeContext, version: int) -> str:
    return ctx.path(f"script.v{version}.txt").read_text(encoding="utf-8").strip()


def _draft_update(version: int) -> JobState:
    return {"script_version": version, "script_file": f"script.v{version}.txt", "revision": {}}


def _save_draft(ctx: NodeContext, version: int, text: str) -> JobState:
    write_text_atomic(ctx.path(f"script.v{version}.txt"), clean_script(text) + "\n")
    return _draft_update(version)


def _by_writer(ctx: NodeContext, request: JobRequest, version: int) -> bool:
    """Whether the writer wrote this version (not the user's own script or replacement text)."""
    if version == 1 and request.script_text is not None:
        return False
    change = ctx.path(f"script.v{version}.change.json")
    return not (change.is_file() and _Note.model_validate_json(change.read_bytes()).replaced)


class _Note(BaseModel):
    note: str | None = None

    @property
    def replaced(self) -> bool:
        return self.note is None  # revise_script records a replacement with no note


def prompt_idea(prompt: str) -> StoryIdea:
    """A request with a prompt skips the idea stages: the prompt is the idea."""
    title = prompt if len(prompt) <= TITLE_CHARS else prompt[: TITLE_CHARS - 1].rsplit(" ", 1)[0] + "…"
    return StoryIdea(title=title, logline=prompt, hook=prompt, score=0)


@stage("write_script")
async def write_script(state: JobState, ctx: NodeContext) -> StageUpdate:
    request = ctx.request(state)
    version = state.get("script_version", 0) + 1
    if request.script_text is not None:
        return done("user", **_save_draft(ctx, version, request.script_text))
    if ctx.path(f"script.v{version}.txt").is_file():  # written before a crash: keep it
        return done(ctx.writer.provider, **_draft_update(version))
    ideas = [StoryIdea.model_validate(i) for i in state.get("ideas", [])]
    idea = StoryIdea.model_validate(state["idea"]) if "idea" in state else prompt_idea(request.prompt)
    if state.get("revision", {}).get("regenerate"):
        # a fresh draft: move on to the next idea (or, with the prompt as the only idea, the next angle
        # on it), so a deterministic writer also gives new text
        if len(ideas) > 1:
            idea = ideas[(version - 1) % len(ideas)]
        else:
            idea = idea.model_copy(update={"tags": [ANGLES[version % len(ANGLES)].name, *idea.tags]})

    async def draft(words: int) -> Revision:
        return Revision(text=await ctx.writer.script(request.prompt, idea, words), summary="")

    with ctx.metered("write_script"):
        written = await _sized(ctx, state, draft)
    notice = ctx.writer.notice(request.prompt)
    if notice:  # also shown with --yes, where no approval is
        ctx.emit(Event(job_id=ctx.job_id, kind="notice", message=notice))
    update = _save_draft(ctx, version, written.text)
    if notice:
        update["notices"] = [notice]
    return done(ctx.writer.provider, **update)


@stage("revise_script")
async def revise_script(state: JobState, ctx: NodeContext) -> StageUpdate:
    version = state.get("script_version", 0) + 1  # 1: a script given at the idea approval
    revision = state.get("revision", {})
    change = ctx.path(f"script.v{version}.change.json")
    if revision.get("text"):
        write_json_atomic(change, {"note": None, "summary": "Replaced with the reviewer's own text."})
        return done("user", **_save_draft(ctx, version, revision["text"]))
    if ctx.path(f"script.v{version}.txt").is_file():
        return done(ctx.writer.provider, **_draft_update(version))
    current = _draft(ctx, state["script_version"])
    note = revision.get("note", "")
    request = ctx.request(state)
    scale = length_scale(note)
    goal = _length_goal(request.duration, await _seconds(ctx, request, current), scale)
    with ctx.metered("revise_script"):
        revised = await _sized(ctx, state, lambda words: ctx.writer.revision(current, note, words), goal, scale)
    write_json_atomic(change, {"note": note, "summary": revised.summary})  # before the draft: it marks it done
    return done(ctx.writer.provider, **_save_draft(ctx, version, revised.text))


@stage("approve_script")
async def approve_script(
    state: JobState, ctx: NodeContext
) -> Command[Literal["voice", "revise_script", "write_script", "__end__"]]:
    version = state["script_version"]
    text = _draft(ctx, version)
    if not ctx.auto_approve:
        request = ctx.request(state)
        shown = ScriptApproval(
            version=version,
            script=text,
            words=len(text.split()),
            target_seconds=request.duration,
            spoken_seconds=round(await _seconds(ctx, request, text), 1),
            own_script=request.script_text is not None,
            writer_notice=(ctx.writer.notice(request.prompt) or "") if _by_writer(ctx, request, version) else "",
            **_change(ctx, version).model_dump(),
        )
        answer = Answer.model_validate(interrupt(shown))
        if answer.action == "cancel":
            return Command(update=done("user", outcome="cancelled"), goto="__end__")
        if answer.action == "revise":
            return Command(update=done("user", revision={"note": answer.note or ""}), goto="revise_script")
        if answer.action == "replace":
            return Command(update=done("user", revision={"text": answer.text or ""}), goto="revise_script")
        if answer.action == "regenerate":
            return Command(update=done("user", revision={"regenerate": True}), goto="write_script")
    write_text_atomic(ctx.path("script.txt"), text + "\n")
    return Command(update=done("auto" if ctx.auto_approve else "user"), goto="voice")
