"""A job's queue in dispatch order; two indexes that others already cover are dropped.

- ix_item_job_queue (job_name, status, priority, next_attempt_at, seq, id): dispatch reads the next few due items
  of a job in index order up to its LIMIT (priority ones, then the others). Before, every pending item of the job was read and sorted each
  round: with 8,000 items queued that was a third of the daemon's CPU.
- ix_item_job_status (job_name, status) is a prefix of ix_item_job_queue; ix_attempt_status (status) is a prefix
  of ix_attempt_creating and ix_attempt_status_created. Each only cost writes.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-28
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        "ix_item_job_queue", "item", ["job_name", "status", "priority", "next_attempt_at", "seq", "id"]
    )
    op.drop_index("ix_item_job_status", table_name="item")
    op.drop_index("ix_attempt_status", table_name="attempt")


def downgrade() -> None:
    op.create_index("ix_attempt_status", "attempt", ["status"])
    op.create_index("ix_item_job_status", "item", ["job_name", "status"])
    op.drop_index("ix_item_job_queue", table_name="item")
