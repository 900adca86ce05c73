"""Files in and out of runs (`store.files`): what an attempt sent, and the output attachments to download.

Files in: the store keeps what each attempt attached (path, size, sha256), never the bytes. The record is made
before the first create call and is first-writer-wins (`record_inputs`): a create call repeated with the same
idempotency key (a crash, a timeout) reads the recorded paths and must find the same bytes.

Files out: one `output_file` row per (attempt, attachment, folder) (unique), recorded when a run of a job with
`results:` ends with output attachments (`note_outputs`), or asked for by `results --download`. Downloads are
claimed like the outbox's result files: `claim_downloads` takes due rows with SKIP LOCKED and holds them for a
lease, so two daemons do not download one attachment at once, and a daemon that dies mid-download leaves a claim
that lapses and is taken again. The lease is not renewed: a download that outlasts it may be claimed by a second
daemon while the first still runs. That is safe because each claimant writes its own uniquely named staging file
and renames it into place whole (`files.outputs`), and `download_done` settles the row once, by whichever
claimant finishes first (a conditional UPDATE on `status = 'pending'`); a done row is never downloaded again.
`download_failed` only touches the row while it is still the caller's claim, so a slow claimant's failure never
clears the claim of the daemon that took the row over.

Locks: output_file rows only (SKIP LOCKED when claiming); attempt_file rows are insert-or-nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import attrs
import sqlalchemy as sa
from sqlmodel import Field

from cyberdesk_runner.store.core import Aggregate
from cyberdesk_runner.store.tables import attempt_t, item_t, step_run_t
from cyberdesk_runner.store.types import TableModel, UTCDateTime

__all__ = ["Files", "InputFile", "OutputFile", "attempt_file_t", "output_file_t"]

#: Tries of one attachment's download before it is marked failed.
MAX_DOWNLOAD_TRIES = 5


class AttemptFileRow(TableModel, table=True):
    """A file an attempt attached to its run: which file, and what its bytes were when first recorded."""

    __tablename__ = "attempt_file"
    __table_args__ = (sa.Index("ix_attempt_file_fire", "fire_id"),)

    attempt_id: str = Field(primary_key=True, max_length=40)
    position: int = Field(primary_key=True)
    fire_id: str = Field(max_length=40)
    path: str
    filename: str
    size: int = Field(sa_column=sa.Column(sa.BigInteger, nullable=False))
    sha256: str = Field(max_length=64)
    target_path: str | None = None
    cleanup: bool = False


class OutputFileRow(TableModel, table=True):
    """An output attachment of one of our runs, to download once next to the fire's result file."""

    __tablename__ = "output_file"
    __table_args__ = (
        # Once per attachment and destination folder (a result file's, or one `results --download` names).
        sa.Index("ux_output_file_attachment", "attempt_id", "attachment_id", "folder", unique=True),
        sa.Index("ix_output_file_due", "status", "claim_until"),
        sa.Index("ix_output_file_fire", "fire_id"),
    )

    id: int | None = Field(
        default=None,
        sa_column=sa.Column(sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True),
    )
    attempt_id: str = Field(max_length=40)
    attachment_id: str = Field(max_length=64)
    fire_id: str = Field(max_length=40)
    item_id: str = Field(max_length=40)
    job_name: str = Field(max_length=100)
    seq: int
    filename: str
    size: int | None = Field(default=None, sa_column=sa.Column(sa.BigInteger))
    #: The folder the files go in (the result file's stem, or a `results --download` folder), absolute.
    folder: str
    #: pending | done | failed (gave up after MAX_DOWNLOAD_TRIES)
    status: str = Field(max_length=16)
    claimed_by: str | None = Field(default=None, max_length=40)
    claim_until: datetime | None = Field(default=None, sa_type=UTCDateTime)
    tries: int = 0
    #: Relative to `folder`'s parent: `<stem>/<seq>-<item>/[<step>/]<filename>`, as the results table shows it;
    #: recorded when noted (NULL in rows noted by a runner before steps had folders: computed from the row).
    relative_path: str | None = None
    done_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    error: str | None = None


attempt_file_t = AttemptFileRow.__table__  # type: ignore[attr-defined]
output_file_t = OutputFileRow.__table__  # type: ignore[attr-defined]


@attrs.frozen
class InputFile:
    """One file attached to a run, as recorded: where it was read, and what its bytes were."""

    position: int
    path: str
    filename: str
    size: int
    sha256: str
    target_path: str | None = None
    cleanup: bool = False


@attrs.frozen
class OutputFile:
    """An output attachment to download (or downloaded)."""

    id: int
    attempt_id: str
    attachment_id: str
    fire_id: str
    item_id: str
    seq: int
    filename: str
    size: int | None
    folder: str
    tries: int
    status: str = "pending"
    relative_path: str | None = None


@attrs.frozen
class FinalRun:
    """A run of an item's final attempt: the attempt's own, or one step run of a multi-step attempt."""

    attempt_id: str
    item_id: str
    seq: int
    run_id: str
    #: The step's folder name (its alias, else its number from 1); None for a single-run attempt.
    step: str | None = None


@attrs.frozen
class NewOutputFile:
    attempt_id: str
    attachment_id: str
    fire_id: str
    item_id: str
    job_name: str
    seq: int
    filename: str
    size: int | None
    folder: str
    #: Where it goes, relative to `folder`'s parent (a multi-step attempt's files go under a per-step folder).
    relative_path: str | None = None


def _output(row: Any) -> OutputFile:
    return OutputFile(
        row.id,
        row.attempt_id,
        row.attachment_id,
        row.fire_id,
        row.item_id,
        row.seq,
        row.filename,
        row.size,
        row.folder,
        row.tries,
        row.status,
        row.relative_path,
    )


class Files(Aggregate):
    # -- files in --------------------------------------------------------------------------------------

    def record_inputs(self, attempt_id: str, fire_id: str, files: Sequence[InputFile]) -> list[InputFile]:
        """Record what `attempt_id` attaches, unless recorded before; returns the record (the first one wins)."""
        with self.core.write() as conn:
            if files:
                conn.execute(
                    self.core.insert_or_nothing(attempt_file_t, ["attempt_id", "position"]),
                    [{"attempt_id": attempt_id, "fire_id": fire_id, **attrs.asdict(f)} for f in files],
                )
            return self._inputs(conn, attempt_id)

    def recorded_inputs(self, attempt_id: str) -> list[InputFile]:
        """What `attempt_id` attached (empty when it attached nothing, or has not been recorded yet)."""
        with self.core.read() as conn:
            return self._inputs(conn, attempt_id)

    def _inputs(self, conn: Any, attempt_id: str) -> list[InputFile]:
        rows = conn.execute(
            sa.select(attempt_file_t)
            .where(attempt_file_t.c.attempt_id == attempt_id)
            .order_by(attempt_file_t.c.position)
        ).all()
        return [
            InputFile(r.position, r.path, r.filename, r.size, r.sha256, r.target_path, r.cleanup)
            for r in rows
        ]

    # -- files out -------------------------------------------------------------------------------------

    def note_outputs(self, files: Sequence[NewOutputFile]) -> int:
        """Record attachments to download (with the path each goes to); one row per (attempt, attachment,
        folder) whoever notes it. Returns how many were new."""
        if not files:
            return 0
        with self.core.write() as conn:
            inserted = conn.execute(
                self.core.insert_or_nothing(
                    output_file_t, ["attempt_id", "attachment_id", "folder"]
                ).returning(output_file_t.c.id),
                [{**attrs.asdict(f), "status": "pending", "tries": 0} for f in files],
            ).all()
        return len(inserted)

    def claim_downloads(
        self, now: datetime, hold: timedelta, *, limit: int = 20, folder: str | None = None
    ) -> list[OutputFile]:
        """Pending downloads not claimed by a live holder (only those bound for `folder`, when given), claimed
        by this store until now + `hold`."""
        due = sa.and_(
            output_file_t.c.status == "pending",
            sa.or_(output_file_t.c.claim_until.is_(None), output_file_t.c.claim_until <= now),
            output_file_t.c.folder == folder if folder is not None else sa.true(),
        )
        with self.core.read() as conn:
            if conn.execute(sa.select(output_file_t.c.id).where(due).limit(1)).first() is None:
                return []
        with self.core.write() as conn:
            query = sa.select(output_file_t).where(due).order_by(output_file_t.c.id).limit(limit)
            rows = conn.execute(self.core.lock(query, skip_locked=True)).all()
            if rows:
                conn.execute(
                    sa.update(output_file_t)
                    .where(output_file_t.c.id.in_([r.id for r in rows]))
                    .values(
                        claimed_by=self.core.owner, claim_until=now + hold, tries=output_file_t.c.tries + 1
                    )
                )
            return [_output(r) for r in rows]

    def download_done(self, file_id: int, relative_path: str, size: int, now: datetime) -> bool:
        """Mark a download done, whoever holds its claim now (the file is whole in place: the first claimant to
        finish settles it); False when it was settled already."""
        with self.core.write() as conn:
            return bool(
                conn.execute(
                    sa.update(output_file_t)
                    .where(output_file_t.c.id == file_id, output_file_t.c.status == "pending")
                    .values(
                        status="done",
                        relative_path=relative_path,
                        size=size,
                        done_at=now,
                        claimed_by=None,
                        claim_until=None,
                        error=None,
                    )
                ).rowcount
            )

    def download_failed(self, file_id: int, error: str, retry_at: datetime) -> None:
        """A download that failed: tried again at `retry_at`, or given up after MAX_DOWNLOAD_TRIES. A no-op when
        the claim is no longer this store's (another daemon took the row over and is downloading it)."""
        with self.core.write() as conn:
            conn.execute(
                sa.update(output_file_t)
                .where(output_file_t.c.id == file_id, output_file_t.c.status == "pending")
                .where(output_file_t.c.claimed_by == self.core.owner)
                .values(
                    status=sa.case((output_file_t.c.tries >= MAX_DOWNLOAD_TRIES, "failed"), else_="pending"),
                    claimed_by=None,
                    claim_until=retry_at,
                    error=error,
                )
            )

    def final_runs_of_fire(self, fire_id: str) -> list[FinalRun]:
        """The runs of each item's final attempt (items with no run are left out), in item order: the attempt's
        run, or every step run of a multi-step attempt, in step order."""
        final = sa.and_(attempt_t.c.item_id == item_t.c.id, attempt_t.c.number == item_t.c.attempts)
        with self.core.read() as conn:
            rows = conn.execute(
                sa.select(
                    attempt_t.c.id,
                    item_t.c.id.label("item_id"),
                    item_t.c.seq,
                    sa.func.coalesce(step_run_t.c.run_id, attempt_t.c.run_id).label("run_id"),
                    step_run_t.c.step_index,
                    step_run_t.c.alias,
                )
                .select_from(
                    item_t.join(attempt_t, final).outerjoin(
                        step_run_t, step_run_t.c.attempt_id == attempt_t.c.id
                    )
                )
                .where(item_t.c.fire_id == fire_id, attempt_t.c.run_id.is_not(None))
                .order_by(item_t.c.seq, item_t.c.id, step_run_t.c.step_index)
            ).all()
        return [
            FinalRun(
                r.id,
                r.item_id,
                r.seq,
                r.run_id,
                None if r.step_index is None else (r.alias or str(r.step_index + 1)),
            )
            for r in rows
        ]

    def outputs_of_fire(self, fire_id: str) -> list[OutputFile]:
        """The fire's output attachments in item order (any status)."""
        with self.core.read() as conn:
            rows = conn.execute(
                sa.select(output_file_t)
                .where(output_file_t.c.fire_id == fire_id)
                .order_by(output_file_t.c.seq, output_file_t.c.id)
            ).all()
        return [_output(r) for r in rows]
