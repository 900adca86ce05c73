"""Issue 18: a big fire's items are planned in chunks, one transaction each, resumable after a crash.

- fire.planned_by, fire.plan_lease_until: the daemon planning a fire and until when its claim holds (a lapsed
  claim is taken over and the plan continued); fire.plan_digest: what the plan reads (items file, desktops,
  overrides), so a continued plan is the same plan. `planned_at` stays NULL until every item is in.
- ux_item_fire_seq (fire_id, seq), unique: an item's place in its fire, so no item is recorded twice whoever
  plans. It replaces ix_item_fire_seq (fire_id, seq, id) of 0010 for the ordered pages of a fire (seq being
  unique within a fire, the order is the same), so the item table keeps its number of indexes.
- Fires past `requested` get a `planned_at` if an older version left it empty: NULL now means "being planned".

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-12
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("fire") as batch:
        batch.add_column(sa.Column("planned_by", sa.String(64), nullable=True))
        batch.add_column(sa.Column("plan_lease_until", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("plan_digest", sa.String(64), nullable=True))
    op.execute("UPDATE fire SET planned_at = created_at WHERE planned_at IS NULL AND status <> 'requested'")
    op.create_index("ux_item_fire_seq", "item", ["fire_id", "seq"], unique=True)
    op.drop_index("ix_item_fire_seq", table_name="item")


def downgrade() -> None:
    op.create_index("ix_item_fire_seq", "item", ["fire_id", "seq", "id"])
    op.drop_index("ux_item_fire_seq", table_name="item")
    with op.batch_alter_table("fire") as batch:
        batch.drop_column("plan_digest")
        batch.drop_column("plan_lease_until")
        batch.drop_column("planned_by")
