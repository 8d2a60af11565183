"""The job tables as sqlite-utils made them before migrations: created only where they are missing,
so an existing `jobs.sqlite` is adopted unchanged."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None


def upgrade() -> None:
    op.create_table(
        "jobs",
        sa.Column("job_id", sa.Text, primary_key=True),
        sa.Column("created", sa.Float),
        sa.Column("updated", sa.Float),
        sa.Column("requester", sa.Text),
        sa.Column("channel", sa.Text),
        sa.Column("prompt", sa.Text),
        sa.Column("options", sa.Text),
        sa.Column("status", sa.Text),
        sa.Column("stage", sa.Text),
        sa.Column("waiting_for", sa.Text),
        sa.Column("interrupt_id", sa.Text),
        sa.Column("approval", sa.Text),
        sa.Column("error", sa.Text),
        sa.Column("artifacts", sa.Text),
        sa.Column("runner_pid", sa.Integer),
        sa.Column("cancel_requested", sa.Integer),
        sa.Column("max_loop_lag_ms", sa.Float),
        sa.Column("wall_seconds", sa.Float),
        if_not_exists=True,
    )
    op.create_index("idx_jobs_created", "jobs", ["created"], if_not_exists=True)
    op.create_index("idx_jobs_requester_created", "jobs", ["requester", "created"], if_not_exists=True)
    op.create_table(
        "stages",
        sa.Column("job_id", sa.Text, primary_key=True),
        sa.Column("name", sa.Text, primary_key=True),
        sa.Column("position", sa.Integer),
        sa.Column("status", sa.Text),
        sa.Column("runs", sa.Integer),
        sa.Column("seconds", sa.Float),
        sa.Column("provider", sa.Text),
        sa.Column("error", sa.Text),
        sa.Column("started", sa.Float),
        sa.Column("finished", sa.Float),
        if_not_exists=True,
    )
    op.create_table(
        "usage",
        sa.Column("job_id", sa.Text, primary_key=True),
        sa.Column("stage", sa.Text, primary_key=True),
        sa.Column("provider", sa.Text, primary_key=True),
        sa.Column("unit", sa.Text, primary_key=True),
        sa.Column("amount", sa.Integer),
        if_not_exists=True,
    )
    op.create_table(
        "voice_rates",
        sa.Column("voice", sa.Text, primary_key=True),
        sa.Column("words_per_minute", sa.Float),
        sa.Column("updated", sa.Float),
        if_not_exists=True,
    )
    op.create_table(
        "seen_sources",
        sa.Column("key", sa.Text, primary_key=True),
        sa.Column("job_id", sa.Text),
        sa.Column("first_seen", sa.Float),
        if_not_exists=True,
    )
    op.create_table(
        "events",
        sa.Column("job_id", sa.Text, primary_key=True),
        sa.Column("seq", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("at", sa.Float),
        sa.Column("kind", sa.Text),
        sa.Column("body", sa.Text),
        if_not_exists=True,
    )
