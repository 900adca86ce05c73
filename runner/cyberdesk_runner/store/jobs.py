"""Jobs: their definitions as loaded from the files, paused flags, and the schedule's last slots (`store.jobs`).

Locks: job rows only, several of them in name order (`sync`, `set_last_slots`), so daemons starting together
take turns instead of deadlocking. `fires.start` also locks its job's row (before any fire) to judge overlap;
`fires.record_slots` takes a tick's jobs in name order, each job's row (overlap lock, then `move_last_slot`)
before the next job's.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from cyberdesk_runner.store.core import Aggregate
from cyberdesk_runner.store.records import JobDefinition, JobMark, JobState, Transition
from cyberdesk_runner.store.tables import job_t

__all__ = ["Jobs", "move_last_slot"]

_B_SLOT = sa.bindparam("b_slot", type_=job_t.c.last_slot_at.type)
#: A job's watermark moved to b_slot, only forward (built once: see statements.py on building statements).
_MOVE_LAST_SLOT = (
    sa.update(job_t)
    .where(job_t.c.name == sa.bindparam("b_name"))
    .where(sa.or_(job_t.c.last_slot_at.is_(None), job_t.c.last_slot_at < _B_SLOT))
    .values(last_slot_at=_B_SLOT)
)


class Jobs(Aggregate):
    def sync(self, jobs: Sequence[JobDefinition], now: datetime) -> list[Transition]:
        """Record the jobs as loaded from their files; jobs no longer present are marked removed.

        Paused flags and schedule bookkeeping are kept: they belong to the store, not to the files.
        """
        core = self.core
        changes: list[Transition] = []
        with core.write() as conn:
            # Daemons starting together sync the same jobs: lock the rows in name order (the order of
            # `set_last_slots` too) and insert-or-nothing, so neither deadlocks nor a duplicate key fails one.
            existing = {r.name: r for r in conn.execute(core.lock(sa.select(job_t).order_by(job_t.c.name)))}
            for job in sorted(jobs, key=lambda j: j.name):
                row = existing.get(job.name)
                values = {
                    "definition_hash": job.definition_hash,
                    "definition": dict(job.definition),
                    "source_path": job.source_path,
                    "loaded_at": now,
                    "removed_at": None,
                }
                if row is None:
                    added = conn.execute(
                        core.insert_or_nothing(job_t, ["name"])
                        .values(name=job.name, paused=False, **values)
                        .returning(job_t.c.name)
                    ).first()
                    if added is not None:
                        changes.append(Transition("job_added", job.name, data={"path": job.source_path}))
                elif row.removed_at is not None:
                    # A job that comes back starts afresh: the slots of its absence are not caught up.
                    conn.execute(
                        sa.update(job_t).where(job_t.c.name == job.name).values(**values, last_slot_at=None)
                    )
                    changes.append(Transition("job_added", job.name, data={"path": job.source_path}))
                elif row.definition_hash != job.definition_hash:
                    conn.execute(sa.update(job_t).where(job_t.c.name == job.name).values(**values))
                    changes.append(Transition("job_changed", job.name, data={"path": job.source_path}))
            present = {j.name for j in jobs}
            for name, row in existing.items():
                if name not in present and row.removed_at is None:
                    conn.execute(sa.update(job_t).where(job_t.c.name == name).values(removed_at=now))
                    changes.append(Transition("job_removed", name))
            core.append_events(conn, now, changes)
        return changes

    def set_workflow(self, name: str, workflow_id: str) -> None:
        with self.core.write() as conn:
            conn.execute(sa.update(job_t).where(job_t.c.name == name).values(workflow_id=workflow_id))

    def set_paused(self, name: str, paused: bool, now: datetime) -> bool:
        """Pause or resume a job. Returns False when no such job is known."""
        with self.core.write() as conn:
            result = conn.execute(
                sa.update(job_t)
                .where(job_t.c.name == name)
                .values(paused=paused, paused_at=now if paused else None)
            )
            if result.rowcount == 0:
                return False
            self.core.append_events(conn, now, [Transition("job_paused" if paused else "job_resumed", name)])
            return True

    def all(self, *, include_removed: bool = False) -> list[JobState]:
        query = sa.select(job_t).order_by(job_t.c.name)
        if not include_removed:
            query = query.where(job_t.c.removed_at.is_(None))
        with self.core.read() as conn:
            return [_job_state(r) for r in conn.execute(query)]

    def marks(self) -> dict[str, JobMark]:
        """Each present job's paused flag and watermark, by name: what a scheduler tick reads every second."""
        query = sa.select(job_t.c.name, job_t.c.paused, job_t.c.last_slot_at).where(
            job_t.c.removed_at.is_(None)
        )
        with self.core.read() as conn:
            return {r.name: JobMark(r.paused, r.last_slot_at) for r in conn.execute(query)}

    def get(self, name: str) -> JobState | None:
        with self.core.read() as conn:
            row = conn.execute(sa.select(job_t).where(job_t.c.name == name)).first()
        return _job_state(row) if row else None

    def set_last_slot(self, name: str, slot: datetime) -> None:
        with self.core.write() as conn:
            move_last_slot(conn, name, slot)

    def set_last_slots(self, marks: Mapping[str, datetime]) -> None:
        """`set_last_slot` for several jobs in one transaction; each job's mark only moves forward."""
        if not marks:
            return
        with self.core.write() as conn:
            for name, slot in sorted(marks.items()):  # name order, as in sync: no deadlock between them
                move_last_slot(conn, name, slot)


def move_last_slot(conn: Connection, name: str, slot: datetime) -> None:
    """Move a job's watermark forward to `slot` (never back), in the caller's transaction."""
    conn.execute(_MOVE_LAST_SLOT, {"b_name": name, "b_slot": slot})


def _job_state(row: Any) -> JobState:
    return JobState(
        row.name,
        row.definition_hash,
        row.definition,
        row.source_path,
        row.workflow_id,
        row.paused,
        row.removed_at is not None,
        row.last_slot_at,
    )
