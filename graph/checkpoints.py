"""LangGraph's checkpoint saver for the configured database: a SQLite file by default, or PostgreSQL
through a connection pool (a bare connection would not survive a database restart)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer
from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

from graph.database import UPGRADE, SchemaTooOld, advisory_lock, is_postgres, libpq_url
from graph.state import CHECKPOINT_MODELS
from tools.settings import Settings

if TYPE_CHECKING:  # psycopg is the scale extra's, imported only when PostgreSQL is configured
    from psycopg import AsyncConnection
    from psycopg_pool import AsyncConnectionPool

    Pool = AsyncConnectionPool[AsyncConnection[dict[str, Any]]]


def _serde() -> JsonPlusSerializer:
    """Only our state's own models are revived from checkpoints (graph.state.CHECKPOINT_MODELS)."""
    return JsonPlusSerializer(allowed_msgpack_modules=[(t.__module__, t.__name__) for t in CHECKPOINT_MODELS])


@contextlib.asynccontextmanager
async def open_saver(settings: Settings, pool_size: int = 10) -> AsyncIterator[BaseCheckpointSaver[str]]:
    """One saver per process and database (several SQLite writers give "database is locked")."""
    if not is_postgres(settings):
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        async with AsyncSqliteSaver.from_conn_string(str(settings.data_dir / "checkpoints.sqlite")) as saver:
            saver.serde = _serde()
            yield saver
        return
    from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver

    async with _pool(settings, pool_size) as pool:
        postgres = AsyncPostgresSaver(pool, serde=_serde())
        async with pool.connection() as conn:
            exists = await (await conn.execute("SELECT to_regclass('checkpoint_migrations') AS t")).fetchone()
            found = await (await conn.execute(_VERSION)).fetchone() if exists and exists["t"] else None
        if found is None or found["v"] is None or found["v"] < len(postgres.MIGRATIONS) - 1:
            raise SchemaTooOld(f"the checkpoint tables are not set up for this storybot: run `{UPGRADE}` once")
        yield postgres


_VERSION = "SELECT max(v) AS v FROM checkpoint_migrations"


@contextlib.asynccontextmanager
async def _pool(settings: Settings, size: int) -> AsyncIterator[Pool]:
    from psycopg.rows import dict_row
    from psycopg_pool import AsyncConnectionPool

    pool: Pool = AsyncConnectionPool(
        libpq_url(settings),
        min_size=1,
        max_size=size,
        kwargs={"autocommit": True, "prepare_threshold": 0, "row_factory": dict_row, "connect_timeout": 10},
        check=AsyncConnectionPool.check_connection,  # a connection the database dropped is replaced
        open=False,
        timeout=30,
    )
    await pool.open(wait=True, timeout=30)
    try:
        yield pool
    finally:
        await pool.close()


async def setup_checkpoints(settings: Settings) -> None:
    """The checkpointer's own migrations, once, under an advisory lock (its `setup()` has none)."""
    from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver

    async with (
        _pool(settings, 2) as pool,
        pool.connection() as conn,
        advisory_lock(conn, "storybot:checkpoint-setup"),
    ):
        await AsyncPostgresSaver(pool).setup()
