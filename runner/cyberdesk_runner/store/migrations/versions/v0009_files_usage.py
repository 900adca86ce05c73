"""Issue 19: what runs cost, and files in and out.

- attempt.usage (JSON): the run's `usage_metadata` as sent; attempt.tokens, attempt.billed_seconds: the figures
  the runner sums from it (`store.usage`).
- step_run.usage (JSON): a step run's usage_metadata (a chain's attempt sums its steps').
- attempt_file: what each attempt attached to its run (path, size, sha256; never the bytes), first record wins.
- output_file: output attachments to download, one per (attempt, attachment, folder), claimed like result files.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-05
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _at(name: str) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=True)


def upgrade() -> None:
    with op.batch_alter_table("attempt") as batch:
        batch.add_column(sa.Column("usage", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("tokens", sa.BigInteger(), nullable=True))
        batch.add_column(sa.Column("billed_seconds", sa.Float(), nullable=True))
    with op.batch_alter_table("step_run") as batch:
        batch.add_column(sa.Column("usage", sa.JSON(), nullable=True))
    op.create_table(
        "attempt_file",
        sa.Column("attempt_id", sa.String(40), primary_key=True),
        sa.Column("position", sa.Integer(), primary_key=True),
        sa.Column("fire_id", sa.String(40), nullable=False),
        sa.Column("path", sa.String(), nullable=False),
        sa.Column("filename", sa.String(), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("target_path", sa.String(), nullable=True),
        sa.Column("cleanup", sa.Boolean(), nullable=False),
    )
    op.create_index("ix_attempt_file_fire", "attempt_file", ["fire_id"])
    op.create_table(
        "output_file",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True),
        sa.Column("attempt_id", sa.String(40), nullable=False),
        sa.Column("attachment_id", sa.String(64), nullable=False),
        sa.Column("fire_id", sa.String(40), nullable=False),
        sa.Column("item_id", sa.String(40), nullable=False),
        sa.Column("job_name", sa.String(100), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("filename", sa.String(), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=True),
        sa.Column("folder", sa.String(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("claimed_by", sa.String(40), nullable=True),
        _at("claim_until"),
        sa.Column("tries", sa.Integer(), nullable=False),
        sa.Column("relative_path", sa.String(), nullable=True),
        _at("done_at"),
        sa.Column("error", sa.String(), nullable=True),
    )
    op.create_index(
        "ux_output_file_attachment", "output_file", ["attempt_id", "attachment_id", "folder"], unique=True
    )
    op.create_index("ix_output_file_due", "output_file", ["status", "claim_until"])
    op.create_index("ix_output_file_fire", "output_file", ["fire_id"])


def downgrade() -> None:
    op.drop_table("output_file")
    op.drop_table("attempt_file")
    with op.batch_alter_table("step_run") as batch:
        batch.drop_column("usage")
    with op.batch_alter_table("attempt") as batch:
        batch.drop_column("billed_seconds")
        batch.drop_column("tokens")
        batch.drop_column("usage")
