"""What every node gets besides the state: the job's folder, services and progress reporting,
and the `stage` wrapper that records runs, seconds, provider and status for each node.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import signal
import time
import typing
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar, Unpack

from langgraph.errors import GraphInterrupt
from langgraph.runtime import Runtime
from langgraph.types import Command
from pydantic import BaseModel

from graph.events import Event
from graph.leases import Lease
from graph.state import JobRequest, JobState
from graph.store import JobStore, StageStatusName
from graph.stored import synced
from tools.errors import ProviderGaveUp, StorybotError
from tools.files import write_json_atomic
from tools.gpu import GpuClient
from tools.llm import StoryIdea, Writer
from tools.llm.usage import metered
from tools.media.outputs import VoiceMeta
from tools.models import Word
from tools.net.redact import one_line
from tools.settings import Settings

T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)


class JobCancelled(StorybotError):
    """Raised between stages when someone cancelled a running job."""


class StageTimedOut(ProviderGaveUp):
    """A stage ran past STORYBOT_STAGE_TIMEOUT: not retried (it would take as long again)."""


@dataclass
class NodeContext:
    job_id: str
    job_dir: Path
    settings: Settings
    store: JobStore
    writer: Writer
    auto_approve: bool
    emit: Callable[[Event], None]
    cpu: asyncio.Semaphore  # bounds CPU-heavy work across all jobs of the process
    gpu: GpuClient | None = None  # set when a GPU model is configured (tools.gpu)
    lease: Lease | None = None  # the job's lock, checked before each stage (graph/leases.py)

    def path(self, name: str) -> Path:
        return self.job_dir / name

    def request(self, state: JobState) -> JobRequest:
        return JobRequest.model_validate(state["request"])

    def voice(self, state: JobState) -> VoiceMeta:
        """The narration the voice stage made (validated: an older checkpoint holds it as plain data)."""
        return VoiceMeta.model_validate(state["voice"])

    def title(self, state: JobState) -> str:
        """The picked idea's title, else the prompt."""
        idea = state.get("idea")
        return (StoryIdea.model_validate(idea).title if idea else "") or self.request(state).prompt

    def script(self) -> str:
        """The approved script (`script.txt`)."""
        return self.path("script.txt").read_text(encoding="utf-8").strip()

    def words(self) -> list[Word]:
        """The voice's word timings (`words.json`)."""
        return [Word.model_validate(w) for w in json.loads(self.path("words.json").read_text(encoding="utf-8"))]

    def progress(self, stage: str, percent: float, message: str | None = None) -> None:
        self.emit(Event(job_id=self.job_id, kind="progress", stage=stage, percent=round(percent, 1), message=message))

    @contextmanager
    def metered(self, stage: str) -> Iterator[None]:
        """Record what providers bill inside the block (tokens, characters) as this job's usage,
        also when the stage fails: the provider billed it either way."""
        with metered() as used:
            try:
                yield
            finally:
                if used:
                    self.store.add_usage(self.job_id, stage, used)

    async def in_thread(self, fn: Callable[..., T], *args: Any) -> T:
        """CPU-bound Python (Pillow, numpy) off the event loop, within the process-wide bound."""
        async with self.cpu:
            return await asyncio.to_thread(fn, *args)


class StageUpdate(JobState, total=False):
    """A node's state update, with the provider that did the work (the `stage` wrapper records it)."""

    _provider: str


def done(provider: str, **update: Unpack[JobState]) -> StageUpdate:
    """A node's state update that also records which provider did the work."""
    return StageUpdate(**update, _provider=provider)


NodeFn = Callable[[JobState, NodeContext], Awaitable[StageUpdate | Command[Any]]]
# What add_node receives; typed loosely because StateGraph's overloads do not accept wrapped callables.
GraphNode = Callable[..., Any]


def _crash_point(stage: str, when: str) -> None:
    """Fault injection for the durability tests: STORYBOT_CRASH_AT=voice:end kills the process (SIGKILL)."""
    if os.environ.get("STORYBOT_CRASH_AT") == f"{stage}:{when}":
        os.kill(os.getpid(), signal.SIGKILL)


def _span(seconds: float) -> str:
    return f"{seconds / 60:g} min" if seconds >= 60 else f"{seconds:g} s"


def stage(name: str) -> Callable[[NodeFn], GraphNode]:
    """Wrap a node: refuse to start a cancelled job, count the run, time it, record the outcome."""

    def wrap(fn: NodeFn) -> GraphNode:
        async def node(state: JobState, runtime: Runtime[NodeContext]) -> StageUpdate | Command[Any]:
            ctx = runtime.context
            record = ctx.store.get(ctx.job_id)
            if record is not None and record.cancel_requested:
                raise JobCancelled("the job was cancelled")
            if ctx.lease is not None:
                await ctx.lease.check()
            ctx.store.stage_started(ctx.job_id, name)
            ctx.emit(Event(job_id=ctx.job_id, kind="stage_started", stage=name))
            _crash_point(name, "start")
            started = time.perf_counter()
            limit = ctx.settings.stage_timeout
            deadline = asyncio.timeout(limit)
            try:
                try:
                    async with deadline:
                        result = await synced(fn, state, ctx)  # the job folder mirrored (graph/stored.py)
                except TimeoutError:
                    if not deadline.expired():  # a timeout of the stage's own, not ours
                        raise
                    raise StageTimedOut(
                        f"{name} ran past its {_span(limit)} limit (STORYBOT_STAGE_TIMEOUT); finished work is kept "
                        "and the job can be resumed"
                    ) from None
            except GraphInterrupt:
                ctx.store.stage_ended(ctx.job_id, name, "waiting")
                raise
            except BaseException as exc:
                ctx.store.stage_ended(ctx.job_id, name, "failed", error=one_line(exc, ctx.settings))
                raise
            _crash_point(name, "end")
            update = result.update if isinstance(result, Command) else result
            provider = None
            if isinstance(update, dict) and "_provider" in update:
                provider = update.pop("_provider")
                update["providers"] = {name: provider}
            status: StageStatusName = "skipped" if provider == "skipped" else "done"
            seconds = time.perf_counter() - started
            ctx.store.stage_ended(ctx.job_id, name, status, seconds, provider)
            ctx.emit(Event(job_id=ctx.job_id, kind="stage_finished", stage=name, percent=100.0, message=provider))
            return result

        # no functools.wraps: LangGraph reads the signature to inject `runtime`, and would see `ctx`
        node.__name__ = node.__qualname__ = fn.__name__
        node.__doc__ = fn.__doc__
        # but an approval's routes, `-> Command[Literal[...]]`, are read from the return type: keep it
        node.__annotations__ = {**node.__annotations__, "return": typing.get_type_hints(fn)["return"]}
        return node

    return wrap


# reuse of finished work ------------------------------------------------------


def fingerprint(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:24]


def file_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:24]


class _Manifest(BaseModel):
    key: str
    value: Any = None  # the stage's typed result, as JSON; validated by `recall`


def reusable(manifest: Path, key: str, *outputs: Path) -> bool:
    """Whether `manifest` says these outputs exist and were made from the same inputs."""
    if not manifest.is_file() or not all(p.is_file() for p in outputs):
        return False
    try:
        return _Manifest.model_validate_json(manifest.read_bytes()).key == key
    except ValueError:
        return False


def recall(manifest: Path, key: str, model: type[M], *outputs: Path) -> M | None:
    """The result remembered with these outputs, when they were made from the same inputs (a
    manifest of an older shape, or a damaged one, is no result: the work is done again)."""
    if not reusable(manifest, key, *outputs):
        return None
    try:
        return model.model_validate(_Manifest.model_validate_json(manifest.read_bytes()).value)
    except ValueError:
        return None


def remember(manifest: Path, key: str, value: BaseModel | None = None) -> None:
    write_json_atomic(manifest, {"key": key, "value": value.model_dump(mode="json") if value else None})
