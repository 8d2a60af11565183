"""Where the service keeps its API tokens and webhook deliveries (SQLAlchemy Core).

On one box (the default) in `DATA_DIR/service.sqlite`, with the table names and columns of earlier
versions (`tokens`, `hooks`, `deliveries`, `attempts`), so a file made by them is used as it is. With a
shared database (STORYBOT_DATABASE_URL) in its `service_tokens` and `webhook_*` tables (graph/tables.py,
migration 0004), so that every API replica knows every token and one delivery is sent by one of them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Engine, MetaData, Table

from graph.api import service_tokens, webhook_attempts, webhook_deliveries, webhook_hooks
from tools.sql import sqlite_engine


@dataclass(frozen=True)
class ServiceDb:
    engine: Engine
    tokens: Table
    hooks: Table
    deliveries: Table
    attempts: Table


def shared(engine: Engine) -> ServiceDb:
    """The tables of a shared database, made by `storybot db upgrade`."""
    return ServiceDb(engine, service_tokens, webhook_hooks, webhook_deliveries, webhook_attempts)


def sqlite_file(data_dir: Path) -> ServiceDb:
    """`service.sqlite`, made readable by its owner only (it holds the webhook secrets) before anything
    is written to it, with any table it lacks."""
    path = data_dir / "service.sqlite"
    data_dir.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
    engine = sqlite_engine(path)
    metadata = MetaData()
    tables = [
        table.to_metadata(metadata, name=name)
        for table, name in [
            (service_tokens, "tokens"),
            (webhook_hooks, "hooks"),
            (webhook_deliveries, "deliveries"),
            (webhook_attempts, "attempts"),
        ]
    ]
    metadata.create_all(engine, checkfirst=True)
    return ServiceDb(engine, *tables)
