"""Who runs a job is a host and a pid, not a pid alone: runners live on several machines."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"


def upgrade() -> None:
    op.add_column("jobs", sa.Column("runner_host", sa.Text))
