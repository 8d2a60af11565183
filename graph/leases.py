"""Who may run a job: on PostgreSQL, the runner holding the job's advisory lock.

LangGraph's checkpointer does not stop two processes running one thread (both "succeed" and the
history splits), so a runner takes `pg_try_advisory_lock` on the job id, on a connection of its own,
for as long as it runs the job, and checks it before every stage. A runner killed with `kill -9`
loses its connection and with it the lock, at once: another runner can take the job over. A
database restart also drops the lock; the holder then takes it again if nobody else did, and goes
on, or stops the run. On SQLite (one box) the lease is the process's own: nothing to take.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Any, Literal

from graph.database import is_postgres, libpq_url, lock_key
from tools.errors import StorybotError
from tools.settings import Settings

if TYPE_CHECKING:
    from psycopg import AsyncConnection

log = logging.getLogger("storybot.lease")
RECONNECT_FOR = 60.0  # seconds a holder keeps trying to take its lock back after the database went away


class LeaseLost(StorybotError):
    """Another runner took the job while this one could not reach the database: this run stops."""


class HeldLock:
    """A PostgreSQL session advisory lock held on a connection of its own, for as long as the holder
    lives (the job lock here, the Discord gateway lock in bot/leader.py)."""

    def __init__(self, settings: Settings, name: str) -> None:
        self.settings = settings
        self.key = lock_key(name)
        self._conn: AsyncConnection[Any] | None = None

    async def take(self) -> bool:
        """Take it now; False when someone else holds it."""
        import psycopg

        conn = await psycopg.AsyncConnection.connect(libpq_url(self.settings), autocommit=True, connect_timeout=10)
        try:
            row = await (await conn.execute("SELECT pg_try_advisory_lock(%s)", (self.key,))).fetchone()
        except BaseException:
            await conn.close()
            raise
        if not (row and row[0]):
            await conn.close()
            return False
        self._conn = conn
        return True

    async def alive(self, answer_within: float = 10.0) -> bool:
        """Whether the connection holding it still answers (a database restart drops it, and the lock)."""
        import psycopg

        if self._conn is None:
            return False
        try:
            await asyncio.wait_for(self._conn.execute("SELECT 1"), answer_within)
            return True
        except (psycopg.OperationalError, TimeoutError):
            return False

    async def take_back(self) -> Literal["taken back", "taken over", "unreachable"]:
        """After the connection dropped: take the lock again if nobody else did, trying the database
        for RECONNECT_FOR seconds."""
        import psycopg

        await self.release()
        deadline = time.monotonic() + RECONNECT_FOR
        while True:
            try:
                return "taken back" if await self.take() else "taken over"
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    return "unreachable"
                await asyncio.sleep(1)

    async def release(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                await conn.close()  # closing the session releases its advisory locks
            except Exception as exc:  # a connection the database already dropped
                log.debug("closing a lock's connection: %s", exc)


class Lease:
    """The right to run one job (a no-op on SQLite)."""

    def __init__(self, settings: Settings, job_id: str) -> None:
        self.job_id = job_id
        self._lock = HeldLock(settings, f"storybot:job:{job_id}") if is_postgres(settings) else None

    async def take(self) -> bool:
        """Take the job's lock now; False when another runner holds it."""
        return self._lock is None or await self._lock.take()

    async def check(self) -> None:
        """Before a stage: still ours? After a database restart, take it back or raise LeaseLost."""
        if self._lock is None or await self._lock.alive():
            return
        log.warning("job %s: the database connection holding its lock dropped; taking it back", self.job_id)
        outcome = await self._lock.take_back()
        if outcome == "taken over":
            raise LeaseLost(f"job {self.job_id} was taken over by another runner while the database was away")
        if outcome == "unreachable":
            raise LeaseLost(f"job {self.job_id}: the database stayed unreachable; its run stops")
        log.warning("job %s: lock taken back, the run goes on", self.job_id)

    async def release(self) -> None:
        if self._lock is not None:
            await self._lock.release()


async def held_elsewhere(settings: Settings, job_id: str) -> bool:
    """Whether some runner holds the job's lock now (PostgreSQL only: a runner on another machine is
    alive exactly while it holds it)."""
    probe = Lease(settings, job_id)
    if await probe.take():
        await probe.release()
        return False
    return True
