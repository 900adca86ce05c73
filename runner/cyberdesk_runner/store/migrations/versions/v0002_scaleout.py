"""Several daemons on one store: who holds a create call, history retention, a 64-bit event id.

- attempt.owner: the store (daemon) whose create call is in progress for an attempt in `creating`; only it
  renews the claim (`retry_create_at`), so a dead daemon's claims lapse and are taken over.
- ix_fire_finished: retention deletes finished fires oldest first.
- ix_item_fire_status replaces ix_item_fire: whether a fire still has open items is one index probe, so
  settling a fire after each finished run no longer counts all its items.
- ix_attempt_creating: the settle query (creating attempts whose claim lapsed) without scanning every attempt.
- event.id BIGINT on PostgreSQL: a busy store appends billions of events over its life, and retention deletes
  rows but never gives ids back. SQLite's INTEGER PRIMARY KEY is 64-bit already.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("attempt") as batch:
        batch.add_column(sa.Column("owner", sa.String(40), nullable=True))
    op.create_index("ix_attempt_creating", "attempt", ["status", "retry_create_at"])
    op.create_index("ix_fire_finished", "fire", ["status", "finished_at"])
    op.create_index("ix_item_fire_status", "item", ["fire_id", "status"])
    op.drop_index("ix_item_fire", table_name="item")
    if op.get_bind().dialect.name == "postgresql":
        op.alter_column(
            "event", "id", type_=sa.BigInteger(), existing_type=sa.Integer(), existing_nullable=False
        )
        op.execute("ALTER SEQUENCE event_id_seq AS bigint")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER SEQUENCE event_id_seq AS integer")
        op.alter_column(
            "event", "id", type_=sa.Integer(), existing_type=sa.BigInteger(), existing_nullable=False
        )
    op.create_index("ix_item_fire", "item", ["fire_id"])
    op.drop_index("ix_item_fire_status", table_name="item")
    op.drop_index("ix_fire_finished", table_name="fire")
    op.drop_index("ix_attempt_creating", table_name="attempt")
    with op.batch_alter_table("attempt") as batch:
        batch.drop_column("owner")
