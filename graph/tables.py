"""The job tables, one definition for SQLite (the default) and PostgreSQL.

Column names and types are those the sqlite-utils tables of earlier versions had, so an existing
`jobs.sqlite` is adopted by the first migration as it is. JSON columns are text: the typed
models (`JobRequest`, `Approval`, `JobResult`) are validated when read, not by the database.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Float, Index, Integer, MetaData, Table, Text

metadata = MetaData()

jobs = Table(
    "jobs",
    metadata,
    Column("job_id", Text, primary_key=True),
    Column("created", Float),
    Column("updated", Float),
    Column("requester", Text),
    Column("channel", Text),
    Column("prompt", Text),
    Column("options", Text),  # the JobRequest, JSON
    Column("status", Text),
    Column("stage", Text),
    Column("waiting_for", Text),
    Column("interrupt_id", Text),
    Column("approval", Text),  # the pending Approval, JSON
    Column("error", Text),
    Column("artifacts", Text),  # the JobResult, JSON
    Column("runner_pid", Integer),
    Column("runner_host", Text),  # with runner_pid: who runs the job (migration 0002)
    Column("cancel_requested", Integer),
    Column("max_loop_lag_ms", Float),
    Column("wall_seconds", Float),
    Index("idx_jobs_created", "created"),
    Index("idx_jobs_requester_created", "requester", "created"),
)

stages = Table(
    "stages",
    metadata,
    Column("job_id", Text, primary_key=True),
    Column("name", Text, primary_key=True),
    Column("position", Integer),
    Column("status", Text),
    Column("runs", Integer),
    Column("seconds", Float),
    Column("provider", Text),
    Column("error", Text),
    Column("started", Float),
    Column("finished", Float),
)

usage = Table(
    "usage",
    metadata,
    Column("job_id", Text, primary_key=True),
    Column("stage", Text, primary_key=True),
    Column("provider", Text, primary_key=True),
    Column("unit", Text, primary_key=True),
    Column("amount", Integer),
)

voice_rates = Table(
    "voice_rates",
    metadata,
    Column("voice", Text, primary_key=True),
    Column("words_per_minute", Float),
    Column("updated", Float),
)

seen_sources = Table(
    "seen_sources",
    metadata,
    Column("key", Text, primary_key=True),
    Column("job_id", Text),
    Column("first_seen", Float),
)

events = Table(
    "events",
    metadata,
    Column("job_id", Text, primary_key=True),
    Column("seq", Integer, primary_key=True, autoincrement=False),
    Column("at", Float),
    Column("kind", Text),
    Column("body", Text),
)

# The bot's records (bot/records.py) on a shared database: where each job lives in Discord, and the
# approval messages it posted; every replica of the bot reads the same rows, so a delivery claimed by
# one is seen by the next (migration 0003). On SQLite they stay in the bot's own `bot.sqlite`, in tables
# of the same shape named `posts` and `approval_messages`. Discord ids are 64-bit.
bot_posts = Table(
    "bot_posts",
    metadata,
    Column("job_id", Text, primary_key=True),
    Column("guild_id", BigInteger),
    Column("channel_id", BigInteger),
    Column("status_message_id", BigInteger),
    Column("application_id", BigInteger),
    Column("token", Text),
    Column("token_issued", Float),
    Column("upload_limit", BigInteger),
    Column("auto_approve", Integer),
    Column("delivered_message_id", BigInteger),  # 0: claimed, being posted; NULL: not delivered
)

bot_prompts = Table(
    "bot_prompts",
    metadata,
    Column("message_id", BigInteger, primary_key=True, autoincrement=False),
    Column("job_id", Text),
    Column("interrupt_id", Text),
    Column("created", Float),
    Index("idx_bot_prompts_interrupt_id", "interrupt_id"),
)

# The service on a shared database (migration 0004), so that any API replica knows every token and
# webhook. On SQLite they stay in `service.sqlite`, in tables of the same shape named `tokens`, `hooks`,
# `deliveries` and `attempts`. The publication ledger's table (also 0004) is defined beside the ledger,
# in tools/publish/ledger.py, since tools/ imports nothing of graph/.
service_tokens = Table(
    "service_tokens",
    metadata,
    Column("name", Text, primary_key=True),
    Column("hash", Text),
    Column("webhook_secret", Text),
    Column("admin", Integer),
    Column("created", Float),
    Column("last_used", Float),
    Column("revoked", Float),
    Index("idx_service_tokens_hash", "hash", unique=True),
)

webhook_hooks = Table(
    "webhook_hooks",
    metadata,
    Column("job_id", Text, primary_key=True),
    Column("url", Text),
    Column("token", Text),
    Column("cursor", Integer),
    Column("closed", Integer),
)

webhook_deliveries = Table(
    "webhook_deliveries",
    metadata,
    Column("id", Text, primary_key=True),
    Column("job_id", Text),
    Column("type", Text),
    Column("body", Text),
    Column("state", Text),  # pending, delivered, gave_up
    Column("attempts", Integer),
    Column("next_at", Float),  # a sender claims a delivery by moving this past its attempt's deadline
    Index("idx_webhook_deliveries_state_next_at", "state", "next_at"),
)

webhook_attempts = Table(
    "webhook_attempts",
    metadata,
    Column("delivery", Text),
    Column("at", Float),
    Column("status", Integer),
    Column("error", Text),
    Column("seconds", Float),
)
