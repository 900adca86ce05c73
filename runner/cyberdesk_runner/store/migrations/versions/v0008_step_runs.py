"""Multi-step jobs: one row per step run of an attempt (a Cyberdesk chain), moved by news about its run.

- step_run: attempt id, step index, alias, workflow, run id (UNIQUE), status, times, output and error.
- ux_step_run_attempt_index (attempt_id, step_index) UNIQUE: a chain's answer is recorded once per attempt.
- ix_step_run_status: the open step runs (polls, cancels of the steps left after a failed one).

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-05
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _at(name: str, nullable: bool = False) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "step_run",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("attempt_id", sa.String(40), nullable=False),
        sa.Column("step_index", sa.Integer(), nullable=False),
        sa.Column("alias", sa.String(64), nullable=True),
        sa.Column("workflow_id", sa.String(36), nullable=False),
        sa.Column("workflow", sa.String(), nullable=False),
        sa.Column("run_id", sa.String(36), nullable=False, unique=True),
        sa.Column("status", sa.String(16), nullable=False),
        _at("created_at"),
        _at("updated_at"),
        _at("started_at", nullable=True),
        _at("ended_at", nullable=True),
        sa.Column("error", sa.JSON(), nullable=True),
        sa.Column("output", sa.JSON(), nullable=True),
    )
    op.create_index("ux_step_run_attempt_index", "step_run", ["attempt_id", "step_index"], unique=True)
    op.create_index("ix_step_run_status", "step_run", ["status"])


def downgrade() -> None:
    op.drop_index("ix_step_run_status", table_name="step_run")
    op.drop_index("ux_step_run_attempt_index", table_name="step_run")
    op.drop_table("step_run")
