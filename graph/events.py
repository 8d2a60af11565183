"""Progress events that JobService streams to front ends (the CLI's rich display, the bot)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel

from graph.state import Approval, JobResult

EventKind = Literal[
    "queued", "stage_started", "progress", "stage_finished", "waiting", "done", "failed", "cancelled", "notice"
]


class Event(BaseModel):
    job_id: str
    id: int | None = None  # the event's number in its job's log (1, 2, ...), set when it is emitted
    kind: EventKind
    stage: str | None = None
    percent: float | None = None
    message: str | None = None
    approval: Approval | None = None  # waiting: what to show, and the answers it takes
    interrupt_id: str | None = None  # waiting: the id an answer must name
    result: JobResult | None = None  # done: artifacts, platform texts, credits
