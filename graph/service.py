"""JobService: the one API the front ends (CLI, Discord bot, HTTP service) use to run and steer jobs.

On one box (SQLite, the default) jobs run as asyncio tasks in this process, many at once. With
state on PostgreSQL the front ends hand each command to a job (start, resume, carry on after an
answer) to the queue of job steps (graph/steps.py), and `storybot runner` processes on any machine
run them under the job's lock (graph/leases.py); events reach every front end through the job's
event log. Every step is checkpointed, so a job killed with its process continues from its last
finished stage. Answers to approvals are keyed by interrupt id and claimed atomically in the job
table, so a double click, a stale button or a second machine answering changes nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
import weakref
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from functools import partial
from typing import Any, Literal, Protocol

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.types import Command
from pydantic import BaseModel

from graph.builder import build_graph
from graph.checkpoints import open_saver
from graph.context import JobCancelled, NodeContext
from graph.database import UPGRADE, SchemaTooOld, is_postgres
from graph.events import Event
from graph.leases import Lease, held_elsewhere
from graph.nodes.script import pace
from graph.notify import listen
from graph.state import (
    APPROVAL,
    IDEA_STAGES,
    STAGES,
    Answer,
    JobRequest,
    JobResult,
    JobState,
)
from graph.steps import JobStep, StepQueue, place_in_queue, queue_ready
from graph.store import ACTIVE, JobRecord, JobStore, LimitReached, OverLimit, StageRecord, new_job_id, valid_job_id
from tools.errors import BadInput
from tools.files import pid_alive, sweep_stale
from tools.gpu import GpuClient, make_client, models_of
from tools.llm import Writer, WriterChoice
from tools.net.redact import one_line, redact
from tools.settings import Settings
from tools.text import clean_replacement

log = logging.getLogger("storybot.graph")
END_EVENTS = ("waiting", "done", "failed", "cancelled")  # a job's run in this process stopped
FINAL_EVENTS = ("done", "failed", "cancelled")  # the job itself ended


INTERRUPTED = "interrupted: the process running it stopped"
RUNNER = (socket.gethostname(), os.getpid())  # who runs a job: this process, on this machine


def runner_alive(record: JobRecord) -> bool:
    """Whether the process recorded as running the job may still be: a pid is checked on its own
    machine; one on another machine counts as alive (its lock, not a pid, says more there)."""
    if record.runner_pid is None:
        return False
    if record.runner_host not in (None, RUNNER[0]):
        return True
    return pid_alive(record.runner_pid)


def interrupted(job_id: str) -> str:
    """The error of a job its process stopped (a shutdown, SIGTERM, Ctrl-C): it can be resumed."""
    return f"{INTERRUPTED}; `storybot resume {job_id}` continues from the last finished stage"


def was_interrupted(record: JobRecord) -> bool:
    return record.status == "failed" and (record.error or "").startswith(INTERRUPTED)


class Requester(BaseModel):
    """Who is acting: `id` is stable per person ("discord:1234", "cli:alice")."""

    id: str
    name: str = ""
    approver: bool = False


class NotAllowed(BadInput):
    """Someone other than the requester (or an approver) tried to steer a job."""


class StaleAnswer(BadInput):
    """The approval this answer was for is no longer pending."""


class Subscription:
    """One front end's view of a job's events; iterate it, or close it if it is not needed after all."""

    def __init__(self, queues: list[asyncio.Queue[Event]]) -> None:
        self._queues = queues
        self._queue: asyncio.Queue[Event] = asyncio.Queue()
        queues.append(self._queue)
        self._ended = False

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> Event:
        if self._ended:
            raise StopAsyncIteration
        event = await self._queue.get()
        if event.kind in END_EVENTS:
            self.close()
        return event

    def close(self) -> None:
        if not self._ended:
            self._ended = True
            self._queues.remove(self._queue)


class Events(Protocol):
    """A front end's view of one job's events, in this process or from its log."""

    def __aiter__(self) -> Events: ...

    async def __anext__(self) -> Event: ...

    def close(self) -> None: ...


class LogSubscription:
    """`Subscription`'s shape over the job's event log, for jobs run by another process (a runner)."""

    def __init__(self, service: JobService, job_id: str, after: int) -> None:
        self._events = service.follow(job_id, after=after)

    def __aiter__(self) -> LogSubscription:
        return self

    async def __anext__(self) -> Event:
        event = await anext(self._events)
        if event.kind in END_EVENTS:
            await self._events.aclose()
        return event

    def close(self) -> None:
        """Nothing to let go of: the log is read only while iterated."""


class JobStatus(BaseModel):
    job: JobRecord
    stages: list[StageRecord]
    usage: dict[str, dict[str, int]] = {}  # provider -> unit -> amount (tokens, characters, images)


class LoopLag:
    """Largest event-loop delay seen while jobs run: how late a 10 ms sleep wakes up."""

    def __init__(self) -> None:
        self.max_ms = 0.0
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._watch())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _watch(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            before = loop.time()
            await asyncio.sleep(0.01)
            self.max_ms = max(self.max_ms, (loop.time() - before - 0.01) * 1000)


class JobService:
    def __init__(
        self,
        settings: Settings,
        saver: BaseCheckpointSaver[str],
        steps: StepQueue | None = None,
        handover: StepQueue | None = None,
    ) -> None:
        self.settings = settings
        self.steps = steps  # None: jobs run in this process; else runners take their steps
        self.handover = handover  # a runner's: where the jobs it stops running go back to
        self._handed: dict[str, JobStep] = {}  # jobs stopped by close(), to hand back
        self._running: dict[str, JobStep] = {}  # the step each running job's task runs
        self.jobs_dir = settings.data_dir / "jobs"
        self.store = JobStore.of(settings)
        self.graph = build_graph(saver)
        self.writers = WriterChoice(settings)  # asked for each job step: a local server may come or go
        self.cpu = asyncio.Semaphore(settings.media_concurrency)
        self.lag = LoopLag()
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._subscribers: dict[str, list[asyncio.Queue[Event]]] = {}
        # per job being followed: set when its log grows (dropped with its last follower)
        self._logged: weakref.WeakValueDictionary[str, asyncio.Event] = weakref.WeakValueDictionary()
        self.listeners: list[Callable[[Event], None]] = []  # every job's events (webhooks)
        self._slots = asyncio.Semaphore(settings.render_slots)
        self._queue: list[str] = []  # jobs waiting for a render slot, first in first out
        self._closing = False  # set by close(): a job stopped now was interrupted, not cancelled
        self._listener: asyncio.Task[None] | None = None  # PostgreSQL: wakes followers (graph/notify.py)

    @classmethod
    @contextlib.asynccontextmanager
    async def open(cls, settings: Settings, runner: bool = False) -> AsyncIterator[JobService]:
        """The service over the configured database (graph.database): its tables and its checkpoints.
        On PostgreSQL a front end hands job steps to the runners; `runner=True` is a runner itself."""
        async with open_saver(settings) as saver, contextlib.AsyncExitStack() as stack:
            steps = None
            if is_postgres(settings):
                if not await queue_ready(settings):
                    raise SchemaTooOld(f"the job queue is not set up: run `{UPGRADE}` once")
                steps = await stack.enter_async_context(StepQueue.open(settings))
            service = cls(settings, saver, None, steps) if runner else cls(settings, saver, steps)
            try:
                yield service
            finally:
                await service.close()

    async def warm(self) -> None:
        """Load the default voice and measure its pace once, in the background of a long-lived front end
        (the bot): otherwise the first script of the process waits seconds for a model to load."""
        started = time.perf_counter()
        try:
            _, _, rate = await pace(self.settings, self.store, JobRequest(prompt="A short story, told well."))
        except Exception as exc:  # a broken voice is reported when a job uses it, with its own message
            log.warning("could not warm the default voice: %s", one_line(exc, self.settings, 300))
            return
        log.info(
            "ready to write: the default voice is paced at %.0f words a minute (%.1f s to load)",
            rate,
            time.perf_counter() - started,
        )

    async def close(self) -> None:
        """Stop this process's jobs: each is recorded as interrupted (failed, resumable from its last
        finished stage), not cancelled, since nobody asked to cancel it; a runner instead hands each
        back to the queue, where another runner resumes it (a rolling restart loses nothing)."""
        self._closing = True
        for task in list(self._tasks.values()):
            task.cancel()
        for task in list(self._tasks.values()):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self.handover is not None:
            for step in self._handed.values():
                await self.handover.put(step)
            self._handed.clear()
        await self.lag.stop()
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listener
            self._listener = None
        if (gpu := self.__dict__.pop("gpu", None)) is not None:
            await gpu.close()
        await self.writers.close()

    # queries ------------------------------------------------------------

    def get(self, job_id: str) -> JobRecord:
        record = self.store.get(job_id) if valid_job_id(job_id) else None
        if record is None:
            raise BadInput(f"unknown job id: {job_id!r}")
        return record

    def status(self, job_id: str) -> JobStatus:
        return JobStatus(
            job=self.get(job_id), stages=self.store.stage_list(job_id), usage=self.store.usage_totals(job_id)
        )

    def jobs(self, limit: int = 50) -> list[JobRecord]:
        return [r for r in self.store.recent(limit)]

    # events -------------------------------------------------------------

    def events(self, job_id: str, after: int | None = None) -> Events:
        """Progress of one job until it stops (waiting, done, failed or cancelled).

        Subscribes at once, before the caller starts or answers the job, so no event is missed;
        `close()` it when the answer that was to follow is refused. Jobs run by runners are read from
        their log, from event `after` on (default: from now; 0 for a job just started).
        """
        if self.steps is not None:
            return LogSubscription(self, job_id, self.store.last_event(job_id) if after is None else after)
        return Subscription(self._subscribers.setdefault(job_id, []))

    def _emit(self, event: Event) -> None:
        """Every event the front ends get passes here: its text is redacted once, for all of them,
        and it is numbered in the job's log (what `follow` replays)."""
        if event.message:
            event = event.model_copy(update={"message": redact(event.message, self.settings)})
        seq = self.store.add_event(event.job_id, event.kind, event.model_dump_json(exclude={"id"}))
        event = event.model_copy(update={"id": seq})
        for queue in self._subscribers.get(event.job_id, []):
            queue.put_nowait(event)
        if (grown := self._logged.get(event.job_id)) is not None:
            grown.set()
        for listener in self.listeners:
            listener(event)

    async def follow(self, job_id: str, after: int = 0, poll: float = 1.0) -> AsyncGenerator[Event]:
        """The job's events numbered above `after`, from its log, then as they come, until it is done,
        failed or cancelled. A job run by another process is seen by polling its log every `poll` s."""
        self.get(job_id)
        if is_postgres(self.settings) and self._listener is None:
            self._listener = asyncio.create_task(listen(self.settings, self._grown))
        grown = self._logged.setdefault(job_id, asyncio.Event())
        while True:
            grown.clear()
            for seq, body in self.store.events_after(job_id, after):
                event = Event.model_validate_json(body).model_copy(update={"id": seq})
                after = seq
                yield event
                if event.kind in FINAL_EVENTS:
                    return
            if self.get(job_id).status in FINAL_EVENTS and not self.store.events_after(job_id, after, 1):
                return  # ended before its events were logged (a job older than the log)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(grown.wait(), poll)

    def _grown(self, job_id: str) -> None:
        if (grown := self._logged.get(job_id)) is not None:
            grown.set()

    def queue_position(self, job_id: str) -> int | None:
        """1 for the next job to run: with runners, the job's place in the shared queue of steps (what
        a job waiting there hears no event about); else its place in this process's wait for a render
        slot. None when the job is not waiting."""
        if self.steps is not None:
            with self.store.engine.connect() as db:
                return place_in_queue(db, job_id)
        return self._queue.index(job_id) + 1 if job_id in self._queue else None

    def jobs_of(self, requester: str, limit: int = 200) -> list[JobRecord]:
        """A person's recent jobs, newest first (for per-user limits and `/jobs`)."""
        return [r for r in self.store.of_requester(requester, limit)]

    def over_limit(self, requester: Requester) -> OverLimit | None:
        """The per-user limit the person is over now, for a friendly refusal before `start`; the check
        that counts is `start(..., within_limits=True)`, in the insert's own transaction."""
        limits = self.settings.max_active_jobs_per_user, self.settings.max_requests_per_hour
        return self.store.over_limits(requester.id, *limits)

    # commands -----------------------------------------------------------

    async def start(
        self,
        request: JobRequest,
        requester: Requester,
        channel: str | None = None,
        auto_approve: bool = False,
        within_limits: bool = False,
    ) -> str:
        """Create a job and start running it; returns the job id (generated, never from user text).
        `within_limits`: LimitReached, and no job, when the person is over a per-user limit, checked in
        the insert's transaction (so two front ends asking at once cannot both pass)."""
        job_id = new_job_id()
        if within_limits:
            limits = self.settings.max_active_jobs_per_user, self.settings.max_requests_per_hour
            over = self.store.create_within_limits(job_id, requester.id, channel, request, STAGES, *limits)
            if over is not None:
                raise LimitReached(over)
        else:
            self.store.create(job_id, requester.id, channel, request, STAGES)
        (self.jobs_dir / job_id).mkdir(parents=True)
        if not request.idea_stages:
            why = "user script" if request.script_text is not None else "the prompt is the idea"
            for name in IDEA_STAGES:
                self.store.stage_ended(job_id, name, "skipped", provider=why)
        await self._launch(JobStep(job_id=job_id, action="start", auto_approve=auto_approve))
        return job_id

    async def resume(self, job_id: str, requester: Requester, auto_approve: bool = False) -> None:
        """Continue a job that stopped: killed, failed, or waiting (with --yes: approve and go on)."""
        record = self._check_allowed(job_id, requester)
        if record.status in ("done", "cancelled"):
            raise BadInput(f"job {job_id} is already {record.status}")
        if record.status == "waiting":
            if auto_approve and record.interrupt_id:
                await self.answer(job_id, requester, Answer(action="approve"), record.interrupt_id, auto_approve=True)
            else:
                self._emit_waiting(record)
            return
        if not await self._claim(job_id, record):
            where = record.runner_host or "this machine"
            raise BadInput(f"job {job_id} is running in another process (pid {record.runner_pid} on {where})")
        await self._launch(JobStep(job_id=job_id, action="resume", auto_approve=auto_approve))

    async def answer(
        self,
        job_id: str,
        requester: Requester,
        answer: Answer,
        interrupt_id: str | None = None,
        auto_approve: bool = False,
    ) -> None:
        """Answer the pending approval; refuse stale or foreign answers without changing anything."""
        record = self._check_allowed(job_id, requester)
        if record.status != "waiting" or not record.interrupt_id:
            raise self.not_waiting(record)
        if interrupt_id is not None and interrupt_id != record.interrupt_id:
            raise StaleAnswer("that approval is no longer pending: answer the current one")
        if record.approval is None:
            raise StaleAnswer(f"job {job_id} is not waiting for an approval")
        if answer.action == "replace":
            answer = answer.model_copy(update={"text": clean_replacement(answer.text or "")})
        record.approval.check(answer)
        pending = record.interrupt_id
        if job_id in self._tasks:  # the run that asked is still ending (an answer right on its `waiting` event)
            await self.wait(job_id)
        claimed = self.store.claim(job_id, "waiting", RUNNER, interrupt_id=pending, to=self._claimed_status)
        if not claimed:
            raise StaleAnswer("that approval was already answered")
        step = JobStep(job_id=job_id, action="answer", auto_approve=auto_approve, interrupt_id=pending, answer=answer)
        await self._launch(step)

    def not_waiting(self, record: JobRecord) -> StaleAnswer:
        """Why an answer to a job that is not waiting is refused: above all, that someone else (another
        click, another machine) answered first and the job went on."""
        asked = any(st.name.startswith("approve_") and st.runs for st in self.store.stage_list(record.job_id))
        if asked and record.status in ACTIVE:
            return StaleAnswer(f"that approval was already answered (job {record.job_id} is {record.status})")
        return StaleAnswer(f"job {record.job_id} is not waiting for an approval (it is {record.status})")

    async def cancel(self, job_id: str, requester: Requester) -> None:
        record = self._check_allowed(job_id, requester)
        if record.status in ("done", "cancelled"):
            raise BadInput(f"job {job_id} is already {record.status}")
        if record.status == "waiting" and record.interrupt_id:
            await self.answer(job_id, requester, Answer(action="cancel"), record.interrupt_id)
            return
        task = self._tasks.get(job_id)
        if task is not None:
            task.cancel()
            return
        if record.status == "running" and await self._runner_alive(record):
            self.store.update(job_id, cancel_requested=True)  # the runner stops before its next stage
            return
        self._finish(job_id, "cancelled")  # a runner taking its queued step later finds it cancelled

    async def wait(self, job_id: str) -> JobRecord:
        """Until the job's task in this process stops; then its record."""
        task = self._tasks.get(job_id)
        if task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.shield(task)
        return self.get(job_id)

    # running ------------------------------------------------------------

    def _check_allowed(self, job_id: str, requester: Requester) -> JobRecord:
        record = self.get(job_id)
        if requester.id != record.requester and not requester.approver:
            raise NotAllowed("only the person who asked for this video, or an approver, can do that")
        return record

    @property
    def _claimed_status(self) -> Literal["running", "queued"]:
        """What a claimed job becomes: running here, or queued for a runner."""
        return "queued" if self.steps is not None else "running"

    async def _runner_alive(self, record: JobRecord) -> bool:
        """On PostgreSQL a runner is alive exactly while it holds the job's lock; on SQLite, its pid."""
        if is_postgres(self.settings):
            return await held_elsewhere(self.settings, record.job_id)
        return runner_alive(record)

    async def _claim(self, job_id: str, record: JobRecord) -> bool:
        """Take over a job that no live process is running."""
        was = (record.runner_host, record.runner_pid)
        if record.status == "running" and was != RUNNER and await self._runner_alive(record):
            return False
        was = (record.runner_host, record.runner_pid)
        return self.store.claim(job_id, record.status, RUNNER, was=was, to=self._claimed_status)

    async def _launch(self, step: JobStep) -> None:
        """Run the step here, or hand it to the runners."""
        if self.steps is not None:
            await self.steps.put(step)
            return
        self._start(step, Lease(self.settings, step.job_id))

    async def run_step(self, step: JobStep) -> None:
        """A runner's side of `_launch`: take the job's lock and run the step to its end. A step whose
        job was cancelled, answered or finished meanwhile, or which a live runner holds, is dropped."""
        record = self.store.get(step.job_id)
        if record is None or record.status not in ("queued", "running"):
            return
        lease = Lease(self.settings, step.job_id)
        if not await lease.take():
            return
        was = (record.runner_host, record.runner_pid)
        if not self.store.claim(step.job_id, record.status, RUNNER, was=was):
            await lease.release()
            return
        await asyncio.wait({self._start(step, lease)})  # its end, whatever it was; cancelling us leaves it be

    def _start(self, step: JobStep, lease: Lease) -> asyncio.Task[None]:
        job_id = step.job_id
        running = self._tasks.get(job_id)
        if running is not None and not running.done():  # a done one has not run its callback yet
            raise BadInput(f"job {job_id} is already running")
        if (self.jobs_dir / job_id).is_dir():  # half-written files of a run that was killed
            sweep_stale(self.jobs_dir / job_id)
        (self.jobs_dir / job_id).mkdir(parents=True, exist_ok=True)  # a runner's scratch copy of the folder
        self.store.update(job_id, status="running", runner_host=RUNNER[0], runner_pid=RUNNER[1], error=None)
        self.lag.start()
        task = asyncio.create_task(self._run(step, lease))
        self._tasks[job_id] = task
        self._running[job_id] = step
        task.add_done_callback(partial(self._ended, job_id))
        return task

    def _ended(self, job_id: str, task: asyncio.Task[None]) -> None:
        if self._tasks.get(job_id) is task:
            self._tasks.pop(job_id)
            if not self._closing:
                self._running.pop(job_id, None)
        if task.cancelled() and self.get(job_id).status == "running":  # cancelled before it started to run
            if self._closing:
                self._interrupted(job_id)
            else:
                self._finish(job_id, "cancelled")

    def _context(self, job_id: str, auto_approve: bool, lease: Lease, writer: Writer) -> NodeContext:
        # one GPU client per service, made on first use, so every job shares the warm workers
        if "gpu" not in self.__dict__:
            self.gpu: GpuClient | None = make_client(self.settings) if models_of(self.settings) else None
        return NodeContext(
            job_id=job_id,
            job_dir=self.jobs_dir / job_id,
            settings=self.settings,
            store=self.store,
            writer=writer,
            auto_approve=auto_approve,
            emit=self._emit,
            cpu=self.cpu,
            gpu=self.gpu,
            lease=lease,
        )

    async def _payload(self, step: JobStep, config: RunnableConfig) -> JobState | Command[Any] | None:
        """What the graph is invoked with, from its checkpoint: a step retried after its runner died
        carries on from the last finished stage (None) instead of starting or answering again."""
        snapshot = await self.graph.aget_state(config)
        pending = {interrupt.id for interrupt in snapshot.interrupts}
        if step.action == "answer" and step.answer is not None and step.interrupt_id in pending:
            return Command(resume={step.interrupt_id: step.answer.model_dump()})
        if step.action == "start" and not snapshot.values:
            return {"job_id": step.job_id, "request": self.get(step.job_id).request}
        return None

    async def _run(self, step: JobStep, lease: Lease) -> None:
        job_id = step.job_id
        config: RunnableConfig = {"configurable": {"thread_id": job_id}}
        started = time.perf_counter()
        try:
            async with self._render_slot(job_id):
                # durability="sync": a step's checkpoint is on disk before the next step starts, so a
                # kill -9 never loses a finished stage
                await self.graph.ainvoke(
                    await self._payload(step, config),
                    config,
                    context=self._context(job_id, step.auto_approve, lease, await self.writers.current()),
                    durability="sync",
                )
        except asyncio.CancelledError:
            if self._closing:
                self._interrupted(job_id)
            else:
                self._finish(job_id, "cancelled")
            raise
        except JobCancelled:
            self._finish(job_id, "cancelled")
            return
        except Exception as exc:
            self._finish(job_id, "failed", error=one_line(exc, self.settings))
            return
        finally:
            await lease.release()
            self.store.update(
                job_id, max_loop_lag_ms=round(self.lag.max_ms, 1), wall_seconds=round(time.perf_counter() - started, 3)
            )
        snapshot = await self.graph.aget_state(config)
        if snapshot.interrupts:
            pending = snapshot.interrupts[0]
            approval = APPROVAL.validate_python(pending.value)
            self.store.update(
                job_id,
                status="waiting",
                waiting_for=approval.approval,
                interrupt_id=pending.id,
                approval=approval,
                runner_pid=None,
                runner_host=None,
            )
            self._emit_waiting(self.get(job_id))
            return
        values = snapshot.values  # the JobState, typed loosely by LangGraph
        outcome: Literal["done", "cancelled"] = values.get("outcome", "done")
        if outcome == "done":
            self.store.update(job_id, result=JobResult.model_validate(values["result"]))
        self._finish(job_id, outcome)

    @contextlib.asynccontextmanager
    async def _render_slot(self, job_id: str) -> AsyncIterator[None]:
        """At most `render_slots` jobs run at once; the others wait in order and hear their position."""
        self._queue.append(job_id)
        try:
            if self._slots.locked():
                self._announce_queue()
            await self._slots.acquire()
        finally:
            self._queue.remove(job_id)
        self._announce_queue()
        try:
            yield
        finally:
            self._slots.release()

    def _announce_queue(self) -> None:
        for position, waiting in enumerate(self._queue, 1):
            self._emit(
                Event(
                    job_id=waiting,
                    kind="queued",
                    percent=None,
                    message=f"waiting for a render slot: position {position}",
                )
            )

    def _interrupted(self, job_id: str) -> None:
        """A job this process stopped running because it is shutting down."""
        step = self._running.pop(job_id, None)
        if self.handover is None or step is None:
            self._finish(job_id, "failed", error=interrupted(job_id))
            return
        self.store.update(job_id, status="queued", runner_pid=None, runner_host=None)
        self._handed[job_id] = step
        self._emit(Event(job_id=job_id, kind="notice", message="its runner is stopping: another one carries on"))

    def _emit_waiting(self, record: JobRecord) -> None:
        self._emit(
            Event(
                job_id=record.job_id,
                kind="waiting",
                stage=record.waiting_for,
                approval=record.approval,
                interrupt_id=record.interrupt_id,
            )
        )

    def _finish(self, job_id: str, status: Literal["done", "failed", "cancelled"], error: str | None = None) -> None:
        """Record how the job ended; stages that never ran are marked skipped when it is done."""
        self.store.update(
            job_id,
            status=status,
            error=error,
            waiting_for=None,
            interrupt_id=None,
            approval=None,
            runner_pid=None,
            runner_host=None,
            cancel_requested=False,
        )
        if status == "done":
            for st in self.store.stage_list(job_id):
                if st.status == "pending":
                    self.store.stage_ended(job_id, st.name, "skipped")
        result = self.get(job_id).result if status == "done" else None
        self._emit(Event(job_id=job_id, kind=status, message=error, result=result))
