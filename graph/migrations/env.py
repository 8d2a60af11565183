"""Alembic's entry point: storybot always hands it an open connection (graph.database.upgrade)."""

from __future__ import annotations

from alembic import context

from graph.tables import metadata

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
