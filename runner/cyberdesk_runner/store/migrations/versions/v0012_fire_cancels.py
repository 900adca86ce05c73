"""Issue 18: a big fire is cancelled by chunks, one transaction each, finished by any daemon after a crash.

- fire.cancel_reason: a cancel of the whole fire was asked, and why (the reason its items are cancelled with);
  dispatch takes no item of such a fire any more.
- fire.cancel_lease_until: until when the process cancelling the fire's items holds that work (renewed each
  chunk; once it lapses any daemon finishes the cancel); NULL once every open item is cancelled or flagged.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-13
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("fire") as batch:
        batch.add_column(sa.Column("cancel_reason", sa.String(), nullable=True))
        batch.add_column(sa.Column("cancel_lease_until", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("fire") as batch:
        batch.drop_column("cancel_lease_until")
        batch.drop_column("cancel_reason")
