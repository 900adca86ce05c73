"""The initial schema: jobs, fires, items, attempts, events, daemons and leases.

This is exactly what `SQLModel.metadata.create_all` made before the store had migrations, so such stores are
stamped with this revision and upgraded from here.

Revision ID: 0001
Revises:
Create Date: 2026-11-28
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ACTIVE = sa.text("status IN ('creating','scheduling','running','running_checks')")


def _at(name: str, nullable: bool = False) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "job",
        sa.Column("name", sa.String(100), primary_key=True),
        sa.Column("definition_hash", sa.String(64), nullable=False),
        sa.Column("definition", sa.JSON(), nullable=False),
        sa.Column("source_path", sa.String(), nullable=False),
        sa.Column("workflow_id", sa.String(36), nullable=True),
        sa.Column("paused", sa.Boolean(), nullable=False),
        _at("paused_at", nullable=True),
        _at("loaded_at"),
        _at("removed_at", nullable=True),
        _at("last_slot_at", nullable=True),
    )
    op.create_table(
        "fire",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("job_name", sa.String(100), nullable=False),
        sa.Column("trigger", sa.String(16), nullable=False),
        sa.Column("dedup_key", sa.String(200), nullable=False, unique=True),
        _at("scheduled_for", nullable=True),
        _at("created_at"),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("skip_reason", sa.String(), nullable=True),
        sa.Column("retry_of", sa.String(40), nullable=True),
        sa.Column("input_overrides", sa.JSON(), nullable=True),
        sa.Column("definition_hash", sa.String(64), nullable=True),
        _at("planned_at", nullable=True),
        _at("finished_at", nullable=True),
        sa.Column("error", sa.String(), nullable=True),
        sa.Column("items_total", sa.Integer(), nullable=False),
    )
    op.create_index("ix_fire_created", "fire", ["created_at"])
    op.create_index("ix_fire_job_created", "fire", ["job_name", "created_at"])
    op.create_index("ix_fire_status", "fire", ["status"])
    op.create_table(
        "item",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("fire_id", sa.String(40), nullable=False),
        sa.Column("job_name", sa.String(100), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("inputs", sa.JSON(), nullable=False),
        sa.Column("machine_id", sa.String(36), nullable=True),
        sa.Column("machine_name", sa.String(), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("priority", sa.Boolean(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        _at("next_attempt_at"),
        _at("created_at"),
        _at("finished_at", nullable=True),
        sa.Column("last_error", sa.String(), nullable=True),
        sa.Column("cancel_requested", sa.Boolean(), nullable=False),
    )
    op.create_index("ix_item_due", "item", ["status", "next_attempt_at"])
    op.create_index("ix_item_job_status", "item", ["job_name", "status"])
    op.create_index("ix_item_fire", "item", ["fire_id"])
    op.create_table(
        "attempt",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("item_id", sa.String(40), nullable=False),
        sa.Column("fire_id", sa.String(40), nullable=False),
        sa.Column("job_name", sa.String(100), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("idempotency_key", sa.String(64), nullable=False, unique=True),
        sa.Column("run_id", sa.String(36), nullable=True, unique=True),
        sa.Column("workflow_id", sa.String(36), nullable=False),
        sa.Column("machine_id", sa.String(36), nullable=False),
        sa.Column("machine_name", sa.String(), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        _at("created_at"),
        _at("updated_at"),
        _at("started_at", nullable=True),
        _at("ended_at", nullable=True),
        _at("deadline_at"),
        _at("retry_create_at", nullable=True),
        sa.Column("create_tries", sa.Integer(), nullable=False),
        sa.Column("cancel_requested", sa.Boolean(), nullable=False),
        sa.Column("error", sa.JSON(), nullable=True),
        sa.Column("output", sa.JSON(), nullable=True),
    )
    op.create_index("ix_attempt_job_created", "attempt", ["job_name", "created_at"])
    op.create_index("ix_attempt_fire", "attempt", ["fire_id"])
    op.create_index("ix_attempt_item", "attempt", ["item_id"])
    op.create_index("ix_attempt_created", "attempt", ["created_at"])
    op.create_index("ix_attempt_status", "attempt", ["status"])
    # Never two of our runs on one desktop at once, enforced by the database across daemons.
    op.create_index(
        "ux_attempt_active_desktop",
        "attempt",
        ["machine_id"],
        unique=True,
        sqlite_where=_ACTIVE,
        postgresql_where=_ACTIVE,
    )
    op.create_table(
        "event",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        _at("at"),
        sa.Column("kind", sa.String(40), nullable=False),
        sa.Column("job_name", sa.String(100), nullable=True),
        sa.Column("fire_id", sa.String(40), nullable=True),
        sa.Column("item_id", sa.String(40), nullable=True),
        sa.Column("attempt_id", sa.String(40), nullable=True),
        sa.Column("run_id", sa.String(36), nullable=True),
        sa.Column("data", sa.JSON(), nullable=True),
    )
    op.create_index("ix_event_attempt", "event", ["attempt_id"])
    op.create_index("ix_event_item", "event", ["item_id"])
    op.create_index("ix_event_fire", "event", ["fire_id"])
    op.create_index("ix_event_at", "event", ["at"])
    op.create_table(
        "daemon",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("host", sa.String(), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        _at("started_at"),
        _at("heartbeat_at"),
        _at("stopped_at", nullable=True),
        sa.Column("health", sa.JSON(), nullable=True),
    )
    op.create_table(
        "lease",
        sa.Column("name", sa.String(60), primary_key=True),
        sa.Column("holder", sa.String(40), nullable=False),
        _at("expires_at"),
    )


def downgrade() -> None:
    for table in ("lease", "daemon", "event", "attempt", "item", "fire", "job"):
        op.drop_table(table)
