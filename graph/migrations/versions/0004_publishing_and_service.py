"""The publication ledger, the service's tokens and its webhooks in the job database, so that on
PostgreSQL every machine sees one ledger (an upload is resumed, never repeated, wherever it began)
and every API replica the same tokens and deliveries."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"


def upgrade() -> None:
    op.create_table(
        "publications",
        sa.Column("job_id", sa.Text, primary_key=True),
        sa.Column("platform", sa.Text, primary_key=True),
        sa.Column("account", sa.Text),
        sa.Column("state", sa.Text),
        sa.Column("privacy", sa.Text),
        sa.Column("session", sa.Text),
        sa.Column("remote_id", sa.Text),
        sa.Column("chunk_size", sa.BigInteger),
        sa.Column("total_bytes", sa.BigInteger),
        sa.Column("confirmed_bytes", sa.BigInteger),
        sa.Column("sent_bytes", sa.BigInteger),
        sa.Column("sha256", sa.Text),
        sa.Column("link", sa.Text),
        sa.Column("post_id", sa.Text),
        sa.Column("error", sa.Text),
        sa.Column("created", sa.Float),
        sa.Column("updated", sa.Float),
    )
    op.create_table(
        "service_tokens",
        sa.Column("name", sa.Text, primary_key=True),
        sa.Column("hash", sa.Text),
        sa.Column("webhook_secret", sa.Text),
        sa.Column("admin", sa.Integer),
        sa.Column("created", sa.Float),
        sa.Column("last_used", sa.Float),
        sa.Column("revoked", sa.Float),
    )
    op.create_index("idx_service_tokens_hash", "service_tokens", ["hash"], unique=True)
    op.create_table(
        "webhook_hooks",
        sa.Column("job_id", sa.Text, primary_key=True),
        sa.Column("url", sa.Text),
        sa.Column("token", sa.Text),
        sa.Column("cursor", sa.Integer),
        sa.Column("closed", sa.Integer),
    )
    op.create_table(
        "webhook_deliveries",
        sa.Column("id", sa.Text, primary_key=True),
        sa.Column("job_id", sa.Text),
        sa.Column("type", sa.Text),
        sa.Column("body", sa.Text),
        sa.Column("state", sa.Text),
        sa.Column("attempts", sa.Integer),
        sa.Column("next_at", sa.Float),
    )
    op.create_index("idx_webhook_deliveries_state_next_at", "webhook_deliveries", ["state", "next_at"])
    op.create_table(
        "webhook_attempts",
        sa.Column("delivery", sa.Text),
        sa.Column("at", sa.Float),
        sa.Column("status", sa.Integer),
        sa.Column("error", sa.Text),
        sa.Column("seconds", sa.Float),
    )
