"""Job records: who asked, what, where it is, how each stage went (graph/tables.py, SQLAlchemy Core).

Each row carries the typed request, pending approval and result the front ends read (`JobRecord`);
they are stored as JSON columns.

Checkpoints (LangGraph's saver) hold the graph state; these tables hold what people and front ends
ask about: status, stage timings, providers, errors, the pending approval, the event log. Writes are
single small rows, done inline on the event loop: well under a millisecond on SQLite and on a
PostgreSQL nearby (bench/scale.py measures it), which a thread hop per call would not beat.
"""

from __future__ import annotations

import functools
import json
import logging
import re
import secrets
import time
from collections.abc import Callable, Mapping
from typing import Any, Literal, ParamSpec, TypeVar

from pydantic import BaseModel, ValidationError, field_validator
from sqlalchemy import Connection, Engine, RowMapping, func, insert, select, text, update
from sqlalchemy.exc import OperationalError

from graph import tables as t
from graph.database import engine_for, lock_key
from graph.notify import CHANNEL
from graph.state import Approval, JobRequest, JobResult
from tools.errors import BadInput
from tools.settings import Settings
from tools.sql import upsert

JOB_ID_PATTERN = r"[0-9a-f]{12}"  # generated, never taken from user text: 12 hex digits


def new_job_id() -> str:
    return secrets.token_hex(6)


def valid_job_id(job_id: str) -> bool:
    return re.fullmatch(JOB_ID_PATTERN, job_id) is not None


JobStatusName = Literal["queued", "running", "waiting", "done", "failed", "cancelled"]
StageStatusName = Literal["pending", "running", "waiting", "done", "failed", "skipped"]
ACTIVE: tuple[JobStatusName, ...] = ("queued", "running", "waiting")  # a job that counts against its requester's limit
HOUR = 3600.0
log = logging.getLogger("storybot.store")
P = ParamSpec("P")
R = TypeVar("R")


class OverLimit(BaseModel):
    """Why a person may not start another job now (STORYBOT_MAX_ACTIVE_JOBS_PER_USER or
    STORYBOT_MAX_REQUESTS_PER_HOUR); each front end words it its own way."""

    limit: Literal["active", "hourly"]
    allowed: int
    active: list[str] = []  # hourly: empty
    recent: int = 0
    retry_after: float = 0.0  # seconds until the hourly limit lets one more through


class LimitReached(BadInput):
    """`JobService.start` within the limits found the person over one, in the same transaction as the
    insert it then did not do (two front ends asking at once cannot both pass)."""

    def __init__(self, over: OverLimit) -> None:
        self.over = over
        if over.limit == "active":
            why = f"{len(over.active)} jobs in progress ({', '.join(over.active)}); the limit is {over.allowed}"
        else:
            minutes = max(1, round(over.retry_after / 60))
            why = f"{over.recent} jobs asked for in the last hour (the limit is {over.allowed}); try in {minutes} min"
        super().__init__(f"over the per-user limit: {why}")


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
    runner_host: str | None = None
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


RESTART_WAIT_S = 15.0  # how long a statement cut by a database restart is tried again


def _through_restarts(method: Callable[P, R]) -> Callable[P, R]:
    """A PostgreSQL restart cuts the statement in flight (`terminating connection due to administrator
    command`) and refuses connections for a second or two; pool pre-ping only guards checkout. So a
    store call that meets it is run again on a fresh connection for up to RESTART_WAIT_S, instead of
    failing the stage it was called from. Its transaction was rolled back, so running it again is
    safe. SQLite's own busy timeout already waits for a locked file: it is not retried here."""

    @functools.wraps(method)
    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        deadline = time.monotonic() + RESTART_WAIT_S
        while True:
            try:
                return method(*args, **kwargs)
            except OperationalError as exc:
                store = args[0]
                if not (isinstance(store, JobStore) and store.postgres) or time.monotonic() > deadline:
                    raise
                log.warning("the database went away (%s); trying again", type(exc.orig).__name__)
                time.sleep(0.25)

    return run


class JobStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.postgres = engine.dialect.name == "postgresql"

    @classmethod
    def of(cls, settings: Settings) -> JobStore:
        """The store of the configured database (`STORYBOT_DATABASE_URL`, else `DATA_DIR/jobs.sqlite`)."""
        return cls(engine_for(settings))

    # jobs -----------------------------------------------------------------

    @_through_restarts
    def create(self, job_id: str, requester: str, channel: str | None, request: JobRequest, stages: list[str]) -> None:
        with self.engine.begin() as db:
            self._insert_job(db, job_id, requester, channel, request, stages)

    @staticmethod
    def _insert_job(
        db: Connection, job_id: str, requester: str, channel: str | None, request: JobRequest, stages: list[str]
    ) -> None:
        now = time.time()
        db.execute(
            insert(t.jobs).values(
                job_id=job_id,
                created=now,
                updated=now,
                requester=requester,
                channel=channel,
                prompt=request.prompt,
                options=request.model_dump_json(),
                status="queued",
                cancel_requested=0,
            )
        )
        db.execute(
            insert(t.stages),
            [
                {"job_id": job_id, "name": name, "position": i, "status": "pending", "runs": 0, "seconds": 0.0}
                for i, name in enumerate(stages)
            ],
        )

    @_through_restarts
    def create_within_limits(
        self,
        job_id: str,
        requester: str,
        channel: str | None,
        request: JobRequest,
        stages: list[str],
        max_active: int,
        max_per_hour: int,
    ) -> OverLimit | None:
        """`create`, unless the requester is over a limit (then that, and nothing is written): the count
        and the insert are one transaction, serialised per requester, so of two front ends (two bot
        replicas, the API and the bot) asking at once for someone with one slot left exactly one
        creates. PostgreSQL: a transaction-scoped advisory lock on the requester; SQLite: BEGIN
        IMMEDIATE (the database's one write lock, taken before the count)."""
        if self.postgres:
            with self.engine.begin() as db:
                db.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": lock_key(f"storybot:user:{requester}")})
                over = self._over(db, requester, max_active, max_per_hour)
                if over is None:
                    self._insert_job(db, job_id, requester, channel, request, stages)
                return over
        with self.engine.connect() as plain:
            # the driver's own transaction handling off, so that the transaction is ours: BEGIN IMMEDIATE
            db = plain.execution_options(isolation_level="AUTOCOMMIT")
            db.exec_driver_sql("BEGIN IMMEDIATE")
            try:
                over = self._over(db, requester, max_active, max_per_hour)
                if over is None:
                    self._insert_job(db, job_id, requester, channel, request, stages)
            except BaseException:
                db.exec_driver_sql("ROLLBACK")
                raise
            db.exec_driver_sql("COMMIT")
            return over

    @_through_restarts
    def over_limits(self, requester: str, max_active: int, max_per_hour: int) -> OverLimit | None:
        """The limit the requester is over now, if any (for a friendly refusal before starting)."""
        with self.engine.connect() as db:
            return self._over(db, requester, max_active, max_per_hour)

    @staticmethod
    def _over(db: Connection, requester: str, max_active: int, max_per_hour: int) -> OverLimit | None:
        mine = t.jobs.c.requester == requester
        active = list(
            db.execute(
                select(t.jobs.c.job_id).where(mine, t.jobs.c.status.in_(ACTIVE)).order_by(t.jobs.c.created.desc())
            ).scalars()
        )
        if len(active) >= max_active:
            return OverLimit(limit="active", allowed=max_active, active=active)
        now = time.time()
        recent = list(
            db.execute(
                select(t.jobs.c.created).where(mine, t.jobs.c.created > now - HOUR).order_by(t.jobs.c.created)
            ).scalars()
        )
        if len(recent) >= max_per_hour:
            return OverLimit(
                limit="hourly", allowed=max_per_hour, recent=len(recent), retry_after=recent[0] + HOUR - now
            )
        return None

    @_through_restarts
    def get(self, job_id: str) -> JobRecord | None:
        with self.engine.connect() as db:
            row = db.execute(select(t.jobs).where(t.jobs.c.job_id == job_id)).mappings().first()
        return self._job(row) if row else None

    @_through_restarts
    def update(self, job_id: str, **fields: Any) -> None:
        with self.engine.begin() as db:
            db.execute(update(t.jobs).where(t.jobs.c.job_id == job_id).values(self._columns(fields)))

    @staticmethod
    def _columns(fields: dict[str, Any]) -> dict[str, Any]:
        for name, column in _JSON_COLUMNS.items():
            if name in fields:
                value = fields.pop(name)
                fields[column] = value.model_dump_json() if isinstance(value, BaseModel) else None
        if "cancel_requested" in fields:
            fields["cancel_requested"] = int(fields["cancel_requested"])
        fields["updated"] = time.time()
        return fields

    @_through_restarts
    def claim(
        self,
        job_id: str,
        status: str,
        runner: tuple[str, int],
        *,
        interrupt_id: str | None = None,
        was: tuple[str | None, int | None] | None = None,
        to: Literal["running", "queued"] = "running",
    ) -> bool:
        """Atomically move a job from `status` to running by `runner` (host, pid), or to queued for the
        runners; False if someone was first. `was`: only if the (host, pid) recorded as its runner is
        still that one.

        The compare-and-set is what makes a double click (or two `answer` commands on two machines)
        approve once.
        """
        host, pid = runner
        sql = update(t.jobs).where(t.jobs.c.job_id == job_id, t.jobs.c.status == status)
        if interrupt_id is not None:
            sql = sql.where(t.jobs.c.interrupt_id == interrupt_id)
        if was is not None:
            old_host, old_pid = was
            sql = sql.where(
                t.jobs.c.runner_pid.is_(None) if old_pid is None else t.jobs.c.runner_pid == old_pid,
                t.jobs.c.runner_host.is_(None) if old_host is None else t.jobs.c.runner_host == old_host,
            )
        with self.engine.begin() as db:
            done = db.execute(sql.values(status=to, runner_pid=pid, runner_host=host, updated=time.time()))
        return done.rowcount == 1

    @_through_restarts
    def of_requester(self, requester: str, limit: int = 200) -> list[JobRecord]:
        sql = select(t.jobs).where(t.jobs.c.requester == requester).order_by(t.jobs.c.created.desc()).limit(limit)
        with self.engine.connect() as db:
            return [self._job(r) for r in db.execute(sql).mappings()]

    @_through_restarts
    def recent(self, limit: int = 50) -> list[JobRecord]:
        with self.engine.connect() as db:
            rows = db.execute(select(t.jobs).order_by(t.jobs.c.created.desc()).limit(limit)).mappings()
            return [self._job(r) for r in rows]

    @staticmethod
    def _job(row: RowMapping) -> JobRecord:
        data = dict(row)
        for name, column in _JSON_COLUMNS.items():
            stored = json.loads(data.pop(column) or "null")
            data[name] = stored or None  # "{}": no result yet, in rows from before results were typed
        data["cancel_requested"] = bool(data.get("cancel_requested"))
        return JobRecord.model_validate(data)

    # stages ---------------------------------------------------------------

    @_through_restarts
    def stage_list(self, job_id: str) -> list[StageRecord]:
        sql = select(t.stages).where(t.stages.c.job_id == job_id).order_by(t.stages.c.position)
        with self.engine.connect() as db:
            return [StageRecord.model_validate(dict(r)) for r in db.execute(sql).mappings()]

    @_through_restarts
    def stage(self, job_id: str, name: str) -> StageRecord:
        sql = select(t.stages).where(t.stages.c.job_id == job_id, t.stages.c.name == name)
        with self.engine.connect() as db:
            return StageRecord.model_validate(dict(db.execute(sql).mappings().one()))

    @_through_restarts
    def stage_started(self, job_id: str, name: str) -> None:
        now = time.time()
        with self.engine.begin() as db:
            db.execute(
                update(t.stages)
                .where(t.stages.c.job_id == job_id, t.stages.c.name == name)
                .values(runs=t.stages.c.runs + 1, status="running", started=now, error=None)
            )
            db.execute(
                update(t.jobs)
                .where(t.jobs.c.job_id == job_id)
                .values(self._columns({"stage": name, "status": "running"}))
            )

    @_through_restarts
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
        with self.engine.begin() as db:
            db.execute(update(t.stages).where(t.stages.c.job_id == job_id, t.stages.c.name == name).values(fields))

    # usage ----------------------------------------------------------------

    @_through_restarts
    def add_usage(self, job_id: str, stage: str, used: Mapping[tuple[str, str], int]) -> None:
        """Add what a stage run billed; re-runs add up, because each run was billed."""
        with self.engine.begin() as db:
            for (provider, unit), amount in used.items():
                sql = upsert(self.engine, t.usage).values(
                    job_id=job_id, stage=stage, provider=provider, unit=unit, amount=amount
                )
                db.execute(
                    sql.on_conflict_do_update(
                        index_elements=["job_id", "stage", "provider", "unit"],
                        set_={"amount": t.usage.c.amount + sql.excluded.amount},
                    )
                )

    @_through_restarts
    def usage_totals(self, job_id: str) -> dict[str, dict[str, int]]:
        """{provider: {unit: amount}} over the job's stages, e.g. {"elevenlabs": {"characters": 812}}."""
        totals: dict[str, dict[str, int]] = {}
        sql = (
            select(t.usage.c.provider, t.usage.c.unit, func.sum(t.usage.c.amount))
            .where(t.usage.c.job_id == job_id)
            .group_by(t.usage.c.provider, t.usage.c.unit)
            .order_by(t.usage.c.provider, t.usage.c.unit)
        )
        with self.engine.connect() as db:
            for provider, unit, amount in db.execute(sql):
                totals.setdefault(provider, {})[unit] = int(amount)
        return totals

    # events: every event a job emitted, numbered, so a client that reconnects misses nothing ------

    @_through_restarts
    def add_event(self, job_id: str, kind: str, body: str) -> int:
        """Append one event (its JSON); returns its number, 1 for a job's first event. Two writers of one
        job's log (its runner, a cancel from another machine) race on the number: the loser retries."""
        for _ in range(5):
            with self.engine.begin() as db:
                seq = int(
                    db.execute(
                        select(func.coalesce(func.max(t.events.c.seq), 0) + 1).where(t.events.c.job_id == job_id)
                    ).scalar_one()
                )
                row = {"job_id": job_id, "seq": seq, "at": time.time(), "kind": kind, "body": body}
                added = upsert(self.engine, t.events).values(row).on_conflict_do_nothing().returning(t.events.c.seq)
                if db.execute(added).first() is not None:
                    if self.postgres:  # followers on other machines wake at once (graph/notify.py)
                        db.execute(select(func.pg_notify(CHANNEL, job_id)))
                    return seq
        raise RuntimeError(f"job {job_id}'s event log: five writers in a row took the same number")

    @_through_restarts
    def last_event(self, job_id: str) -> int:
        """The number of the job's latest event (0 before its first)."""
        with self.engine.connect() as db:
            found = db.execute(select(func.max(t.events.c.seq)).where(t.events.c.job_id == job_id)).scalar()
        return int(found or 0)

    @_through_restarts
    def events_after(self, job_id: str, after: int, limit: int = 500) -> list[tuple[int, str]]:
        """(number, JSON) of the job's events numbered above `after`, oldest first."""
        sql = (
            select(t.events.c.seq, t.events.c.body)
            .where(t.events.c.job_id == job_id, t.events.c.seq > after)
            .order_by(t.events.c.seq)
            .limit(limit)
        )
        with self.engine.connect() as db:
            return [(int(seq), body) for seq, body in db.execute(sql)]

    # idea sources used before ---------------------------------------------

    @_through_restarts
    def seen_sources(self, keys: list[str]) -> set[str]:
        """Which of these source keys (links or normalised headlines) an earlier job already used."""
        found: set[str] = set()
        with self.engine.connect() as db:
            for start in range(0, len(keys), 500):  # SQLite caps bound parameters
                batch = keys[start : start + 500]
                found |= set(db.execute(select(t.seen_sources.c.key).where(t.seen_sources.c.key.in_(batch))).scalars())
        return found

    @_through_restarts
    def mark_sources_seen(self, job_id: str, keys: list[str]) -> None:
        if keys:
            now = time.time()
            with self.engine.begin() as db:
                rows = [{"key": k, "job_id": job_id, "first_seen": now} for k in dict.fromkeys(keys)]
                db.execute(upsert(self.engine, t.seen_sources).values(rows).on_conflict_do_nothing())

    # speaking rates measured on real narrations ---------------------------

    @_through_restarts
    def voice_rate(self, voice: str) -> float | None:
        """Words per minute last measured for this voice (e.g. "elevenlabs:<voice id>"), if any."""
        with self.engine.connect() as db:
            found = db.execute(select(t.voice_rates.c.words_per_minute).where(t.voice_rates.c.voice == voice)).scalar()
        return float(found) if found is not None else None

    @_through_restarts
    def set_voice_rate(self, voice: str, words_per_minute: float) -> None:
        sql = upsert(self.engine, t.voice_rates).values(
            voice=voice, words_per_minute=words_per_minute, updated=time.time()
        )
        with self.engine.begin() as db:
            db.execute(
                sql.on_conflict_do_update(
                    index_elements=["voice"],
                    set_={"words_per_minute": sql.excluded.words_per_minute, "updated": sql.excluded.updated},
                )
            )
