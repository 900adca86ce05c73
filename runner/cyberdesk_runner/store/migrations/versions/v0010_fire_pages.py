"""Issue 18: the pages of a big fire in index order (`show F`, `runs --fire F`, `results F`).

- ix_item_fire_seq (fire_id, seq, id): a fire's items in order. `show F`'s page of items and `results F`'s
  stream walk it and stop (or start printing) at once; before, a 100,000-item fire was sorted whole first.
- ix_attempt_fire_created (fire_id, created_at, id) replaces ix_attempt_fire (fire_id): the newest runs of a
  fire (`runs --fire F`, `show F`) are read up to the LIMIT, not all sorted. Its prefix answers every query by
  fire_id the old index did, so the attempt table keeps its number of indexes (writes cost the same).
- ix_event_fire_id (fire_id, id) replaces ix_event_fire (fire_id): the newest events of a fire on PostgreSQL
  (SQLite's index already ended with the rowid, the event id).

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-08
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_item_fire_seq", "item", ["fire_id", "seq", "id"])
    op.create_index("ix_attempt_fire_created", "attempt", ["fire_id", "created_at", "id"])
    op.drop_index("ix_attempt_fire", table_name="attempt")
    op.create_index("ix_event_fire_id", "event", ["fire_id", "id"])
    op.drop_index("ix_event_fire", table_name="event")


def downgrade() -> None:
    op.create_index("ix_event_fire", "event", ["fire_id"])
    op.drop_index("ix_event_fire_id", table_name="event")
    op.create_index("ix_attempt_fire", "attempt", ["fire_id"])
    op.drop_index("ix_attempt_fire_created", table_name="attempt")
    op.drop_index("ix_item_fire_seq", table_name="item")
