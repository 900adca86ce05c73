"""The outbox: alerts to send (`alert`) and result files to write (`result_file`), one row per cause.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-05
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _at(name: str, nullable: bool = False) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "alert",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("destination", sa.String(100), nullable=False),
        sa.Column("type", sa.String(40), nullable=False),
        sa.Column("job_name", sa.String(100), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        _at("created_at"),
        _at("next_try_at"),
        sa.Column("tries", sa.Integer(), nullable=False),
        _at("sent_at", nullable=True),
        sa.Column("last_error", sa.String(), nullable=True),
    )
    op.create_index("ix_alert_due", "alert", ["status", "next_try_at"])
    op.create_index("ix_alert_destination_sent", "alert", ["destination", "sent_at"])
    op.create_table(
        "result_file",
        sa.Column("fire_id", sa.String(40), primary_key=True),
        sa.Column("job_name", sa.String(100), nullable=False),
        sa.Column("format", sa.String(8), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        _at("created_at"),
        sa.Column("path", sa.String(), nullable=True),
        _at("written_at", nullable=True),
        sa.Column("error", sa.String(), nullable=True),
    )
    op.create_index("ix_result_file_status", "result_file", ["status"])


def downgrade() -> None:
    op.drop_table("result_file")
    op.drop_table("alert")
