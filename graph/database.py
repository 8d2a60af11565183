"""Where state lives: SQLite files under the data folder (the default), or PostgreSQL.

One URL (`STORYBOT_DATABASE_URL`) names it. The job tables go through SQLAlchemy Core, the same
code on both; their schema is Alembic's (graph/migrations). On SQLite a process upgrades the file
itself (one box, nothing to co-ordinate); on PostgreSQL `storybot db upgrade` does it once, under
an advisory lock, and everything else refuses an older schema with one line naming that command.
"""

from __future__ import annotations

import asyncio
import fcntl
import functools
import hashlib
import logging
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, inspect, text
from sqlalchemy.engine import make_url

from tools.errors import BadInput
from tools.settings import Settings
from tools.sql import sqlite_engine

LOCK_POLL_S = 0.2  # how often `storybot db upgrade` tries a setup lock another one holds
# Alembic's INFO lines ("Context impl SQLiteImpl", "Running upgrade") would reach every command's stderr
logging.getLogger("alembic").setLevel(logging.WARNING)
UPGRADE = "storybot db upgrade"


class SchemaTooOld(BadInput):
    """The database was made by an older storybot: `storybot db upgrade` first."""


def is_postgres(settings: Settings) -> bool:
    return settings.database_url is not None


def url_of(settings: Settings) -> str:
    """SQLAlchemy's URL: psycopg 3 for PostgreSQL, the standard library's sqlite3 otherwise."""
    if settings.database_url is None:
        return f"sqlite:///{settings.data_dir / 'jobs.sqlite'}"
    raw = settings.database_url.get_secret_value()
    url = make_url(raw)
    if url.get_backend_name() != "postgresql":
        raise BadInput(f"STORYBOT_DATABASE_URL must be a postgresql:// URL, not {url.drivername}://")
    return url.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)


def libpq_url(settings: Settings) -> str:
    """The plain `postgresql://` form psycopg's own pool (the checkpointer) takes."""
    return make_url(url_of(settings)).set(drivername="postgresql").render_as_string(hide_password=False)


def engine_for(settings: Settings) -> Engine:
    """One engine (and pool) per database per process, its schema checked once (SQLite: upgraded)."""
    url = url_of(settings)
    engine = _engine(url)
    if url not in _ready:
        if engine.dialect.name == "sqlite":
            upgrade(engine)
        else:
            check(engine)
        _ready.add(url)
    return engine


_ready: set[str] = set()


@functools.cache
def _engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        return sqlite_engine(Path(make_url(url).database or ""))
    try:
        import psycopg  # noqa: F401  (the scale extra)
    except ImportError as exc:
        raise BadInput("a PostgreSQL database needs the scale extra: pip install 'storybot[scale]'") from exc
    # pre-ping: a pooled connection that died with a database restart is replaced, not handed out
    return create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=10, connect_args={"connect_timeout": 10})


MIGRATIONS = Path(__file__).parent / "migrations"
HEAD = "0004"  # the newest migration; tests/test_database.py checks it against Alembic's own reading


def current(connection: Connection) -> str | None:
    """The schema revision the database is at (None: not set up). Read directly, so a command that
    finds its database current never imports Alembic (a quarter second on every command)."""
    if not inspect(connection).has_table("alembic_version"):
        return None
    return connection.execute(text("SELECT version_num FROM alembic_version")).scalar()


def check(engine: Engine) -> None:
    with engine.connect() as connection:
        found = current(connection)
    if found != HEAD:
        had = f"at schema {found}" if found else "not set up"
        raise SchemaTooOld(f"the database is {had}, this storybot needs {HEAD}: run `{UPGRADE}` once")


def lock_key(name: str) -> int:
    """A stable signed 64-bit key for a PostgreSQL advisory lock named `name`."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)


@contextmanager
def _exclusive(engine: Engine, connection: Connection) -> Iterator[None]:
    """One upgrade at a time: an advisory lock on PostgreSQL, a file lock beside the SQLite file."""
    if engine.dialect.name == "postgresql":
        key = {"k": lock_key("storybot:migrations")}
        # tried, not waited for inside one long statement: a statement waiting holds a snapshot, and
        # the checkpointer's CREATE INDEX CONCURRENTLY in the other upgrade would wait for it in turn
        while not connection.execute(text("SELECT pg_try_advisory_lock(:k)"), key).scalar():
            connection.rollback()
            time.sleep(LOCK_POLL_S)
        try:
            yield
        finally:
            connection.execute(text("SELECT pg_advisory_unlock(:k)"), key)
        return
    with open(f"{engine.url.database}.lock", "a") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        yield


@asynccontextmanager
async def advisory_lock(conn: Any, name: str) -> AsyncIterator[None]:
    """Hold the session advisory lock `name` on an autocommit psycopg connection, trying every
    LOCK_POLL_S rather than waiting in one statement (see `_exclusive`)."""
    from psycopg.rows import tuple_row  # the pool's connections make dicts

    key = lock_key(name)
    while True:
        async with conn.cursor(row_factory=tuple_row) as cursor:
            taken = await (await cursor.execute("SELECT pg_try_advisory_lock(%s)", (key,))).fetchone()
        if taken and taken[0]:
            break
        await asyncio.sleep(LOCK_POLL_S)
    try:
        yield
    finally:
        await conn.execute("SELECT pg_advisory_unlock(%s)", (key,))


def upgrade(engine: Engine) -> tuple[str | None, str]:
    """Bring the job tables to the newest schema; returns (before, after)."""
    with engine.connect() as connection, _exclusive(engine, connection):
        before = current(connection)
        if before != HEAD:
            from alembic import command
            from alembic.config import Config

            config = Config()
            config.set_main_option("script_location", str(MIGRATIONS))
            config.attributes["connection"] = connection
            command.upgrade(config, "head")
            connection.commit()
    return before, HEAD


def upgrade_database(settings: Settings) -> tuple[str | None, str]:
    """`storybot db upgrade`'s first step: the job tables of the configured database."""
    url = url_of(settings)
    done = upgrade(_engine(url))
    _ready.add(url)
    return done
