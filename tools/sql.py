"""What every storybot table store shares: a local SQLite file opened the one way (WAL: readers never
wait for the writer; synchronous NORMAL: a killed process loses nothing committed, without an fsync per
write; a busy timeout: another process's write is waited for with SQLite's own backoff, not an error),
and an INSERT that takes ON CONFLICT clauses on SQLite and PostgreSQL alike."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import Engine, Table, create_engine, event
from sqlalchemy.dialects import postgresql, sqlite

BUSY_TIMEOUT_S = 30.0


def sqlite_engine(path: Path) -> Engine:
    path.parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(f"sqlite:///{path}", connect_args={"timeout": BUSY_TIMEOUT_S})
    event.listen(engine, "connect", _pragmas)
    return engine


def upsert(engine: Engine, table: Table) -> postgresql.Insert | sqlite.Insert:
    """An INSERT into `table` in the engine's dialect, so `on_conflict_do_update`/`_do_nothing` work on both."""
    return (postgresql.insert if engine.dialect.name == "postgresql" else sqlite.insert)(table)


def _pragmas(connection: Any, _record: object) -> None:
    cursor = connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()
