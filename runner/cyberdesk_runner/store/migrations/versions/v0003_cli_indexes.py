"""Indexes for the CLI's listings of runs by status and by desktop.

- ix_attempt_status_created: `runs --status S` reads the newest attempts of a status in index order (up to its
  LIMIT) instead of sorting every attempt of that status (a million-attempt store has ~100,000 failed ones).
- ix_attempt_machine_created, ix_attempt_machine_name_created: `runs --machine M` (a desktop id or name) the
  same way; without them a desktop with few or no attempts meant a scan of the whole table.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_INDEXES = {
    "ix_attempt_status_created": ["status", "created_at"],
    "ix_attempt_machine_created": ["machine_id", "created_at"],
    "ix_attempt_machine_name_created": ["machine_name", "created_at"],
}


def upgrade() -> None:
    for name, columns in _INDEXES.items():
        op.create_index(name, "attempt", columns)


def downgrade() -> None:
    for name in _INDEXES:
        op.drop_index(name, table_name="attempt")
