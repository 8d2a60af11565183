"""Job steps on a durable queue: what front ends hand to `storybot runner` when state is on PostgreSQL.

A step is one command to a job (start it, resume it, carry on after an answer). It is a procrastinate
job with the job id as its `lock`, so two steps of one job never run at once, on any machine; a
runner that dies mid-step stops sending heartbeats, and the step is retried elsewhere. What the step
does is decided from the job's record and checkpoint when it runs, so a retried step resumes from
the last finished stage rather than starting again.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel
from sqlalchemy import Connection, text

from graph.database import advisory_lock, libpq_url
from graph.state import Answer
from tools.settings import Settings

if TYPE_CHECKING:
    import procrastinate

TASK = "storybot.job_step"
QUEUE = "jobs"
HEARTBEAT_S = 2.0  # a runner's heartbeat; one silent for STALLED_AFTER_S is dead and its steps retried
STALLED_AFTER_S = 8.0
# The jobs ahead of a job's oldest waiting step, in the order runners take steps (procrastinate's
# fetch: priority, then id; a step retried for a dead runner keeps its id, so it is at the front
# again). A job with several waiting steps counts once; a step scheduled later is not in line yet.
PLACE = text("""
    WITH mine AS (
        SELECT priority, id FROM procrastinate_jobs
        WHERE lock = :job_id AND queue_name = :queue AND status = 'todo'
        ORDER BY priority DESC, id LIMIT 1
    )
    SELECT 1 + (
        SELECT count(DISTINCT ahead.lock) FROM procrastinate_jobs AS ahead
        WHERE ahead.queue_name = :queue AND ahead.status = 'todo' AND ahead.lock <> :job_id
          AND (ahead.scheduled_at IS NULL OR ahead.scheduled_at <= now())
          AND (ahead.priority > mine.priority OR (ahead.priority = mine.priority AND ahead.id < mine.id))
    ) FROM mine
""")


class JobStep(BaseModel):
    job_id: str
    action: Literal["start", "resume", "answer"]
    auto_approve: bool = False
    interrupt_id: str | None = None  # answer: the approval it answers
    answer: Answer | None = None


def queue_app(settings: Settings) -> procrastinate.App:
    import procrastinate

    connector = procrastinate.PsycopgConnector(
        conninfo=libpq_url(settings), min_size=1, max_size=4, kwargs={"connect_timeout": 10}
    )
    return procrastinate.App(connector=connector)


class StepQueue:
    """The producer's side: front ends defer steps; runners take them (storybot/runner_cmd.py)."""

    def __init__(self, app: procrastinate.App) -> None:
        self.app = app

    @classmethod
    @contextlib.asynccontextmanager
    async def open(cls, settings: Settings) -> AsyncIterator[StepQueue]:
        app = queue_app(settings)
        async with app.open_async():
            yield cls(app)

    async def put(self, step: JobStep) -> None:
        deferrer = self.app.configure_task(TASK, lock=step.job_id, queue=QUEUE)
        await deferrer.defer_async(step=step.model_dump(mode="json"))


def place_in_queue(db: Connection, job_id: str) -> int | None:
    """1 for the job whose step a free runner takes next; None when the job has no step waiting (a
    runner has it, or it waits for nobody). One query, as the bot asks every few seconds per job."""
    place: int | None = db.execute(PLACE, {"job_id": job_id, "queue": QUEUE}).scalar()
    return place


async def setup_queue(settings: Settings) -> bool:
    """The queue's tables, once, under an advisory lock; True when they were created now."""
    import psycopg

    app = queue_app(settings)
    async with (
        await psycopg.AsyncConnection.connect(libpq_url(settings), autocommit=True) as conn,
        advisory_lock(conn, "storybot:queue-setup"),
    ):
        found = await (await conn.execute("SELECT to_regclass('procrastinate_jobs')")).fetchone()
        if found and found[0]:
            return False
        async with app.open_async():
            await app.schema_manager.apply_schema_async()
        return True


async def queue_ready(settings: Settings) -> bool:
    import psycopg

    async with await psycopg.AsyncConnection.connect(libpq_url(settings), autocommit=True, connect_timeout=10) as conn:
        found = await (await conn.execute("SELECT to_regclass('procrastinate_jobs')")).fetchone()
    return bool(found and found[0])
