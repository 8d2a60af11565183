"""The publication ledger: one row per (job, site), written after every upload step.

One row per site, not per account: a video published to a site is never published there again, even
after the account was linked again (or moved between the environment and `accounts add`).

On one box, its own SQLite file (`DATA_DIR/publications.sqlite`, WAL, a busy timeout like the job
table), so a `kill -9` mid-upload leaves the session URI or publish id and the confirmed offset on
disk, and the next `storybot publish` resumes that very session; a row that is `done` is answered with
its link. With a shared database (STORYBOT_DATABASE_URL) the rows are its `publications` table
(migration 0004) and the publishing lock is a PostgreSQL advisory lock, so whichever machine publishes
a job next resumes what another began, and two machines never post it twice. tools/ imports nothing
of graph/, so the caller hands the shared database's engine in (graph.publish.ledger_of).
"""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import BigInteger, Column, Engine, Float, MetaData, Table, Text, func, select

from tools.errors import StorybotError
from tools.publish.base import Publication
from tools.sql import sqlite_engine, upsert

FILE = "publications.sqlite"
LOCKS = "publishing"  # one lock file per job being published (one box)

publications = Table(  # the columns sqlite-utils made from `Publication` in earlier versions
    "publications",
    MetaData(),
    Column("job_id", Text, primary_key=True),
    Column("platform", Text, primary_key=True),
    Column("account", Text),
    Column("state", Text),
    Column("privacy", Text),
    Column("session", Text),
    Column("remote_id", Text),
    Column("chunk_size", BigInteger),
    Column("total_bytes", BigInteger),
    Column("confirmed_bytes", BigInteger),
    Column("sent_bytes", BigInteger),
    Column("sha256", Text),
    Column("link", Text),
    Column("post_id", Text),
    Column("error", Text),
    Column("created", Float),
    Column("updated", Float),
)


class Busy(StorybotError):
    """Another storybot process is publishing this job right now."""


def _busy(job_id: str) -> Busy:
    return Busy(f"job {job_id} is being published by another storybot process; try again when it ends")


class Ledger:
    def __init__(self, data_dir: Path, engine: Engine | None = None) -> None:
        """The ledger in `DATA_DIR/publications.sqlite`, or, given a shared database's `engine`, in
        its `publications` table."""
        self.data_dir = data_dir
        self.shared = engine is not None
        self.engine = engine if engine is not None else sqlite_engine(data_dir / FILE)
        if engine is None:
            publications.metadata.create_all(self.engine, checkfirst=True)  # an existing file is used as it is

    def get(self, job_id: str, platform: str) -> Publication | None:
        query = select(publications).where(publications.c.job_id == job_id, publications.c.platform == platform)
        with self.engine.connect() as db:
            row = db.execute(query).mappings().first()
        return Publication.model_validate(dict(row)) if row else None

    def of_job(self, job_id: str) -> list[Publication]:
        query = select(publications).where(publications.c.job_id == job_id).order_by(publications.c.created)
        with self.engine.connect() as db:
            return [Publication.model_validate(dict(r)) for r in db.execute(query).mappings()]

    def save(self, record: Publication) -> None:
        """Upsert the record as it is now (one small row, committed before the next upload step)."""
        row = record.model_dump(mode="json")
        sql = upsert(self.engine, publications).values(row)
        keys = ["job_id", "platform"]
        replace = sql.on_conflict_do_update(
            index_elements=keys, set_={k: sql.excluded[k] for k in row if k not in keys}
        )
        with self.engine.begin() as db:
            db.execute(replace)

    def start(self, job_id: str, platform: str, account: str, total: int, sha256: str, privacy: str) -> Publication:
        """A fresh record for a first try, or for another try after a refusal."""
        now = time.time()
        record = Publication(
            job_id=job_id,
            platform=platform,
            account=account,
            total_bytes=total,
            sha256=sha256,
            privacy=privacy,
            created=now,
            updated=now,
        )
        self.save(record)
        return record

    @contextmanager
    def exclusive(self, job_id: str) -> Iterator[None]:
        """One publisher per job at a time (two would open two sessions and post twice). The lock
        dies with its holder, `kill -9` included, so a resume is never locked out by a dead process:
        on one box an flock, on a shared database a session advisory lock on a connection held for
        the whole publication (a machine that vanishes drops the connection, and the lock)."""
        if self.shared:
            with self._advisory(job_id):
                yield
            return
        folder = self.data_dir / LOCKS
        folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(folder / f"{job_id}.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise _busy(job_id) from None
            yield
        finally:
            os.close(fd)

    @contextmanager
    def _advisory(self, job_id: str) -> Iterator[None]:
        key = func.hashtextextended(f"storybot:publish:{job_id}", 0)
        with self.engine.connect() as db:
            taken = db.execute(select(func.pg_try_advisory_lock(key))).scalar()
            db.commit()  # the lock belongs to the session: no transaction is left open while uploading
            if not taken:
                raise _busy(job_id)
            try:
                yield
            finally:
                try:
                    db.execute(select(func.pg_advisory_unlock(key)))
                    db.commit()
                except Exception:  # closing the connection releases the lock: never pool it still held
                    db.invalidate()
