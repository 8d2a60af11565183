"""The bot's records in the job database, so that every replica of the bot (one holds the gateway at a
time) sees the same posts and deliveries: on PostgreSQL the bot keeps them here (bot/records.py)."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"


def upgrade() -> None:
    op.create_table(
        "bot_posts",
        sa.Column("job_id", sa.Text, primary_key=True),
        sa.Column("guild_id", sa.BigInteger),
        sa.Column("channel_id", sa.BigInteger),
        sa.Column("status_message_id", sa.BigInteger),
        sa.Column("application_id", sa.BigInteger),
        sa.Column("token", sa.Text),
        sa.Column("token_issued", sa.Float),
        sa.Column("upload_limit", sa.BigInteger),
        sa.Column("auto_approve", sa.Integer),
        sa.Column("delivered_message_id", sa.BigInteger),
    )
    op.create_table(
        "bot_prompts",
        sa.Column("message_id", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("job_id", sa.Text),
        sa.Column("interrupt_id", sa.Text),
        sa.Column("created", sa.Float),
    )
    op.create_index("idx_bot_prompts_interrupt_id", "bot_prompts", ["interrupt_id"])
