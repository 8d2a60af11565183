"""Job records kept with sqlite-utils: who asked, what, where it is, how each stage went.

Each row carries the typed request, pending approval and result the front ends read (`JobRecord`);
they are stored as JSON columns.

Checkpoints (LangGraph's AsyncSqliteSaver) hold the graph state; this table holds what people
and front ends ask about: status, stage timings, providers, errors, the pending approval.
Writes are single small rows, so they are done inline on the event loop.
"""

from __future__ import annotations

import json
import re
import secrets
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import sqlite_utils
from pydantic import BaseModel, ValidationError, field_validator

from graph.state import Approval, JobRequest, JobResult
from tools.errors import BadInput

BUSY_TIMEOUT_MS = 30_000
JOB_ID_PATTERN = r"[0-9a-f]{12}"  # generated, never taken from user text: 12 hex digits


def new_job_id() -> str:
    return secrets.token_hex(6)


def valid_job_id(job_id: str) -> bool:
    return re.fullmatch(JOB_ID_PATTERN, job_id) is not None


JobStatusName = Literal["queued", "running", "waiting", "done", "failed", "cancelled"]
StageStatusName = Literal["pending", "running", "waiting", "done", "failed", "skipped"]


class StageRecord(BaseModel):
    name: str
    status: StageStatusName = "pending"
    runs: int = 0
    seconds: float = 0.0
    provider: str | None = None
    error: str | None = None


class JobRecord(BaseModel):
    job_id: str
    created: float
    updated: float
    requester: str
    channel: str | None
    prompt: str
    request: JobRequest
    status: JobStatusName
    stage: str | None = None
    waiting_for: str | None = None
    interrupt_id: str | None = None
    approval: Approval | None = None  # what the job is waiting for, and the answers it takes
    error: str | None = None
    result: JobResult | None = None  # once done: artifacts, platform texts, credits
    runner_pid: int | None = None
    cancel_requested: bool = False
    max_loop_lag_ms: float | None = None
    wall_seconds: float | None = None

    @field_validator("request", mode="before")
    @classmethod
    def _older_request(cls, value: Any) -> Any:
        """A row written before requests were stored whole (no script text) is read as it is."""
        if isinstance(value, dict):
            try:
                return JobRequest.model_validate(value)
            except (ValidationError, BadInput):
                return JobRequest.model_construct(**{k: v for k, v in value.items() if k in JobRequest.model_fields})
        return value


# JSON columns: the record's field -> the column that keeps it (names kept from before they were typed)
_JSON_COLUMNS = {"request": "options", "approval": "approval", "result": "artifacts"}


class JobStore:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite_utils.Database(path)
        self.db.execute("PRAGMA journal_mode=WAL")
        # another process holding the write lock (a long backup, a stuck tool) is waited for with
        # SQLite's own backoff, then the error is one line (storybot.cli), never a dead job at 5 s
        self.db.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        # WAL + NORMAL survives a killed process (not a power cut) without an fsync per write,
        # which would stall the event loop for milliseconds at every stage change
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.jobs = self.db.table("jobs")
        self.stages = self.db.table("stages")
        self.usage = self.db.table("usage")
        if not self.jobs.exists():
            self.jobs.create(
                {
                    "job_id": str,
                    "created": float,
                    "updated": float,
                    "requester": str,
                    "channel": str,
                    "prompt": str,
                    "options": str,
                    "status": str,
                    "stage": str,
                    "waiting_for": str,
                    "interrupt_id": str,
                    "approval": str,
                    "error": str,
                    "artifacts": str,
                    "runner_pid": int,
                    "cancel_requested": int,
                    "max_loop_lag_ms": float,
                    "wall_seconds": float,
                },
                pk="job_id",
                if_not_exists=True,
            )
            self.jobs.create_index(["created"], if_not_exists=True)
        self.jobs.create_index(["requester", "created"], if_not_exists=True)  # per-user limits and /jobs
        if not self.stages.exists():
            self.stages.create(
                {
                    "job_id": str,
                    "name": str,
                    "position": int,
                    "status": str,
                    "runs": int,
                    "seconds": float,
                    "provider": str,
                    "error": str,
                    "started": float,
                    "finished": float,
                },
                pk=("job_id", "name"),
                if_not_exists=True,
            )
        self.rates = self.db.table("voice_rates")
        if not self.rates.exists():
            self.rates.create(
                {"voice": str, "words_per_minute": float, "updated": float}, pk="voice", if_not_exists=True
            )
        self.seen = self.db.table("seen_sources")
        if not self.seen.exists():
            self.seen.create({"key": str, "job_id": str, "first_seen": float}, pk="key", if_not_exists=True)
        if not self.usage.exists():
            self.usage.create(
                {"job_id": str, "stage": str, "provider": str, "unit": str, "amount": int},
                pk=("job_id", "stage", "provider", "unit"),
                if_not_exists=True,
            )
        self.events = self.db.table("events")
        if not self.events.exists():
            self.events.create(
                {"job_id": str, "seq": int, "at": float, "kind": str, "body": str},
                pk=("job_id", "seq"),
                if_not_exists=True,
            )

    # jobs -----------------------------------------------------------------

    def create(self, job_id: str, requester: str, channel: str | None, request: JobRequest, stages: list[str]) -> None:
        now = time.time()
        with self.db.conn:
            self.jobs.insert(
                {
                    "job_id": job_id,
                    "created": now,
                    "updated": now,
                    "requester": requester,
                    "channel": channel,
                    "prompt": request.prompt,
                    "options": request.model_dump_json(),
                    "status": "queued",
                    "artifacts": None,
                    "cancel_requested": 0,
                }
            )
            self.stages.insert_all(
                [
                    {"job_id": job_id, "name": name, "position": i, "status": "pending", "runs": 0, "seconds": 0.0}
                    for i, name in enumerate(stages)
                ]
            )

    def get(self, job_id: str) -> JobRecord | None:
        rows = list(self.jobs.rows_where("job_id = ?", [job_id]))
        return self._job(rows[0]) if rows else None

    def update(self, job_id: str, **fields: Any) -> None:
        for name, column in _JSON_COLUMNS.items():
            if name in fields:
                value = fields.pop(name)
                fields[column] = value.model_dump_json() if isinstance(value, BaseModel) else None
        if "cancel_requested" in fields:
            fields["cancel_requested"] = int(fields["cancel_requested"])
        fields["updated"] = time.time()
        self.jobs.update(job_id, fields)

    def claim(
        self, job_id: str, status: str, pid: int, *, interrupt_id: str | None = None, runner_pid: int | None = None
    ) -> bool:
        """Atomically move a job from `status` to running in this process; False if someone was first.

        The compare-and-set is what makes a double click (or two `answer` commands) approve once.
        """
        sql = "UPDATE jobs SET status = 'running', runner_pid = ?, updated = ? WHERE job_id = ? AND status = ?"
        args: list[Any] = [pid, time.time(), job_id, status]
        if interrupt_id is not None:
            sql += " AND interrupt_id = ?"
            args.append(interrupt_id)
        if runner_pid is not None:
            sql += " AND runner_pid = ?"
            args.append(runner_pid)
        with self.db.conn:
            cursor = self.db.execute(sql, args)
        return cursor.rowcount == 1

    def of_requester(self, requester: str, limit: int = 200) -> list[JobRecord]:
        rows = self.jobs.rows_where("requester = ?", [requester], order_by="created desc", limit=limit)
        return [self._job(r) for r in rows]

    def recent(self, limit: int = 50) -> list[JobRecord]:
        return [self._job(r) for r in self.jobs.rows_where(order_by="created desc", limit=limit)]

    @staticmethod
    def _job(row: dict[str, Any]) -> JobRecord:  # a sqlite-utils row, validated into the record
        data = dict(row)
        for name, column in _JSON_COLUMNS.items():
            stored = json.loads(data.pop(column) or "null")
            data[name] = stored or None  # "{}": no result yet, in rows from before results were typed
        data["cancel_requested"] = bool(data.get("cancel_requested"))
        return JobRecord.model_validate(data)

    # stages ---------------------------------------------------------------

    def stage_list(self, job_id: str) -> list[StageRecord]:
        rows = self.stages.rows_where("job_id = ?", [job_id], order_by="position")
        return [StageRecord(**{k: r[k] for k in StageRecord.model_fields}) for r in rows]

    def stage(self, job_id: str, name: str) -> StageRecord:
        row = self.stages.get((job_id, name))
        return StageRecord(**{k: row[k] for k in StageRecord.model_fields})

    def stage_started(self, job_id: str, name: str) -> None:
        with self.db.conn:
            self.db.execute(
                "UPDATE stages SET runs = runs + 1, status = 'running', started = ?, error = NULL "
                "WHERE job_id = ? AND name = ?",
                [time.time(), job_id, name],
            )
            self.update(job_id, stage=name, status="running")

    def stage_ended(
        self,
        job_id: str,
        name: str,
        status: StageStatusName,
        seconds: float | None = None,
        provider: str | None = None,
        error: str | None = None,
    ) -> None:
        fields: dict[str, object] = {"status": status, "finished": time.time(), "error": error}
        if seconds is not None:
            fields["seconds"] = round(seconds, 3)
        if provider is not None:
            fields["provider"] = provider
        self.stages.update((job_id, name), fields)

    # usage ----------------------------------------------------------------

    def add_usage(self, job_id: str, stage: str, used: Mapping[tuple[str, str], int]) -> None:
        """Add what a stage run billed; re-runs add up, because each run was billed."""
        with self.db.conn:
            for (provider, unit), amount in used.items():
                self.db.execute(
                    "INSERT INTO usage (job_id, stage, provider, unit, amount) VALUES (?, ?, ?, ?, ?) "
                    "ON CONFLICT (job_id, stage, provider, unit) DO UPDATE SET amount = amount + excluded.amount",
                    [job_id, stage, provider, unit, amount],
                )

    def usage_totals(self, job_id: str) -> dict[str, dict[str, int]]:
        """{provider: {unit: amount}} over the job's stages, e.g. {"elevenlabs": {"characters": 812}}."""
        totals: dict[str, dict[str, int]] = {}
        rows = self.db.execute(
            "SELECT provider, unit, SUM(amount) FROM usage WHERE job_id = ? "
            "GROUP BY provider, unit ORDER BY provider, unit",
            [job_id],
        ).fetchall()
        for provider, unit, amount in rows:
            totals.setdefault(provider, {})[unit] = int(amount)
        return totals

    # events: every event a job emitted, numbered, so a client that reconnects misses nothing ------

    def add_event(self, job_id: str, kind: str, body: str) -> int:
        """Append one event (its JSON); returns its number, 1 for a job's first event."""
        with self.db.conn:
            cursor = self.db.execute(
                "INSERT INTO events (job_id, seq, at, kind, body) "
                "SELECT ?, COALESCE(MAX(seq), 0) + 1, ?, ?, ? FROM events WHERE job_id = ? RETURNING seq",
                [job_id, time.time(), kind, body, job_id],
            )
            return int(cursor.fetchone()[0])

    def last_event(self, job_id: str) -> int:
        """The number of the job's latest event (0 before its first)."""
        row = self.db.execute("SELECT MAX(seq) FROM events WHERE job_id = ?", [job_id]).fetchone()
        return int(row[0] or 0)

    def events_after(self, job_id: str, after: int, limit: int = 500) -> list[tuple[int, str]]:
        """(number, JSON) of the job's events numbered above `after`, oldest first."""
        rows = self.db.execute(
            "SELECT seq, body FROM events WHERE job_id = ? AND seq > ? ORDER BY seq LIMIT ?", [job_id, after, limit]
        ).fetchall()
        return [(int(seq), body) for seq, body in rows]

    # idea sources used before ---------------------------------------------

    def seen_sources(self, keys: list[str]) -> set[str]:
        """Which of these source keys (links or normalised headlines) an earlier job already used."""
        found: set[str] = set()
        for start in range(0, len(keys), 500):  # SQLite caps bound parameters
            batch = keys[start : start + 500]
            marks = ",".join("?" * len(batch))
            found |= {
                row[0]
                for row in self.db.execute(f"SELECT key FROM seen_sources WHERE key IN ({marks})", batch).fetchall()
            }
        return found

    def mark_sources_seen(self, job_id: str, keys: list[str]) -> None:
        now = time.time()
        with self.db.conn:
            self.seen.insert_all([{"key": k, "job_id": job_id, "first_seen": now} for k in keys], ignore=True)

    # speaking rates measured on real narrations ---------------------------

    def voice_rate(self, voice: str) -> float | None:
        """Words per minute last measured for this voice (e.g. "elevenlabs:<voice id>"), if any."""
        rows = list(self.rates.rows_where("voice = ?", [voice]))
        return float(rows[0]["words_per_minute"]) if rows else None

    def set_voice_rate(self, voice: str, words_per_minute: float) -> None:
        with self.db.conn:
            self.rates.upsert(
                {"voice": voice, "words_per_minute": words_per_minute, "updated": time.time()}, pk="voice"
            )
