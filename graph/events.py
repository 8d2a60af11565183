"""Progress events that JobService streams to front ends (the CLI's rich display, the bot)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel

EventKind = Literal["queued", "stage_started", "progress", "stage_finished", "waiting", "done", "failed",
                    "cancelled", "notice"]


class Event(BaseModel):
    job_id: str
    kind: EventKind
    stage: str | None = None
    percent: float | None = None
    message: str | None = None
    approval: dict[str, Any] | None = None
    artifacts: dict[str, Any] | None = None
