"""The publication ledger: one row per (job, site), written after every upload step.

One row per site, not per account: a video published to a site is never published there again, even
after the account was linked again (or moved between the environment and `accounts add`).

Its own SQLite file (`DATA_DIR/publications.sqlite`, WAL, a busy timeout like the job table), so a
`kill -9` mid-upload leaves the session URI or publish id and the confirmed offset on disk, and the
next `storybot publish` resumes that very session; a row that is `done` is answered with its link.
"""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import sqlite_utils

from tools.errors import StorybotError
from tools.publish.base import Publication

FILE = "publications.sqlite"
LOCKS = "publishing"  # one lock file per job being published


class Busy(StorybotError):
    """Another storybot process is publishing this job right now."""


@contextmanager
def exclusive(data_dir: Path, job_id: str) -> Iterator[None]:
    """One publishing process per job at a time (two would open two sessions and post twice). An
    flock: the kernel releases it when the holder dies, kill -9 included, so a resume is never
    locked out by a dead process."""
    folder = data_dir / LOCKS
    folder.mkdir(parents=True, exist_ok=True)
    fd = os.open(folder / f"{job_id}.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise Busy(f"job {job_id} is being published by another storybot process; try again when it ends") from None
        yield
    finally:
        os.close(fd)


BUSY_TIMEOUT_MS = 30_000


class Ledger:
    def __init__(self, data_dir: Path) -> None:
        data_dir.mkdir(parents=True, exist_ok=True)
        self.db = sqlite_utils.Database(data_dir / FILE)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        self.table = self.db.table("publications")
        if not self.table.exists():
            columns: dict[str, type] = {}
            for name, field in Publication.model_fields.items():
                kind = field.annotation
                columns[name] = int if kind in (int, int | None) else float if kind is float else str
            self.table.create(columns, pk=("job_id", "platform"), if_not_exists=True)

    def get(self, job_id: str, platform: str) -> Publication | None:
        rows = list(self.table.rows_where("job_id = ? and platform = ?", [job_id, platform], limit=1))
        return Publication.model_validate(rows[0]) if rows else None

    def of_job(self, job_id: str) -> list[Publication]:
        return [
            Publication.model_validate(r) for r in self.table.rows_where("job_id = ?", [job_id], order_by="created")
        ]

    def save(self, record: Publication) -> None:
        """Upsert the record as it is now (one small row; synchronous, so it is on disk before the next step)."""
        with self.db.conn:
            self.table.upsert(record.model_dump(mode="json"), pk=("job_id", "platform"))

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
