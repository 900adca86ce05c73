"""Jobs after jobs: a fire records the upstream fire whose end made it, once per (upstream fire, job).

- fire.upstream_fire_id: the upstream fire of a fire with trigger `after`.
- ux_fire_upstream (upstream_fire_id, job_name) UNIQUE: exactly one downstream fire per upstream fire and job,
  whichever daemon records it (NULLs, the other fires, never conflict).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("fire") as batch:
        batch.add_column(sa.Column("upstream_fire_id", sa.String(length=40), nullable=True))
    op.create_index("ux_fire_upstream", "fire", ["upstream_fire_id", "job_name"], unique=True)


def downgrade() -> None:
    op.drop_index("ux_fire_upstream", table_name="fire")
    with op.batch_alter_table("fire") as batch:
        batch.drop_column("upstream_fire_id")
