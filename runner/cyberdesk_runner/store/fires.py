"""Fires: a job's slots and manual triggers, recorded once each with their items (`store.fires`).

Inserted (with items, skipped, or failed before it had any), requested for a daemon to plan (by chunks:
`store.plans`), failed; settled by `items.settle_fires` when their last item is final. A scheduled slot is
recorded at most once: fires are unique on their dedup key "<job>@<slot>", so a second insert of the same slot
(a restart, another daemon) is a no-op and creates no items.

A scheduler tick records all its jobs' slots with `record_slots`: one transaction (not one per fire), each
job's fires and watermark all or nothing.

Locks: `start` under `forbid` or `replace` locks the job's row first, then (for `replace`) cancels the fires
before it through `items.cancel_items` (attempts -> items -> fires, by id); `record_slots` takes its jobs in
name order, for each the job's row (under `forbid`), its fires, then its watermark (`jobs.move_last_slot`), and
never cancels (it takes no `replace` runs).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from cyberdesk_runner.store.core import Aggregate, StoreCore, new_id
from cyberdesk_runner.store.engine import describe_error, is_transient
from cyberdesk_runner.store.items import ask_cancels, cancel_items, insert_items, settle_fires
from cyberdesk_runner.store.jobs import move_last_slot
from cyberdesk_runner.store.records import (
    FireRequest,
    FireSummary,
    JobSlots,
    NewFire,
    NewItem,
    OverlapRule,
    RecordedSlots,
    SlotFire,
    StartedFire,
    Transition,
)
from cyberdesk_runner.store.tables import OPEN_ITEM_STATUSES, fire_t, item_t, job_t

__all__ = ["Fires", "copies_failed", "copy_digest", "fire_data", "fire_values", "retry_of"]


class Fires(Aggregate):
    def insert(self, fire: NewFire, items: Sequence[NewItem], now: datetime) -> str | None:
        """Record a fire and its items in one transaction; None when the fire's slot is already recorded.

        Scheduled and catch-up fires are unique on (job, scheduled time): a second insert of the same slot, by
        this daemon after a restart or by another daemon, is a no-op and creates no items.
        """
        return self._record_one(
            lambda conn, fire_id: _record_running(self.core, conn, fire_id, fire, items, now), now
        )

    def start(
        self,
        fire: NewFire,
        items: Sequence[NewItem],
        now: datetime,
        overlap: OverlapRule,
        *,
        requested: int | None = None,
    ) -> StartedFire | None:
        """Record a scheduled fire and its items (or, `requested`, the fire alone, its items planned by chunks),
        judging overlap in the same transaction; None when the slot is already recorded.

        Under `forbid` or `replace` the job's row is locked first, so daemons recording slots of one job take
        turns and each sees the fires the others started: two slots due at once never both start under
        `forbid`, and a `replace` fire cancels every fire before it, not only those committed when it looked. A
        fire replaced that has more than `CANCEL_AT_ONCE` open items, or is requested or still being planned, is
        asked to be cancelled (`items.ask_cancels`; any daemon cancels its items by chunks within a second).
        """
        core = self.core
        fire_id = new_id("fire")
        with core.write() as conn:
            in_flight: list[str] = []
            if overlap.mode != "allow":
                conn.execute(core.lock(sa.select(job_t.c.name).where(job_t.c.name == fire.job_name))).all()
                in_flight = _fires_in_flight(conn, fire.job_name)
            skipped = bool(in_flight) and overlap.mode == "forbid"
            if skipped:
                transitions = _record_skipped(core, conn, fire_id, fire, overlap.skip_reason(in_flight), now)
            elif requested is not None:
                transitions = _record_requested(core, conn, fire_id, fire, requested, now)
            else:
                transitions = _record_running(core, conn, fire_id, fire, items, now)
            if transitions is None:
                return None
            if in_flight and not skipped:  # replace
                transitions += _replace(core, conn, fire.job_name, in_flight, overlap.replace_reason, now)
            core.append_events(conn, now, transitions)
        return StartedFire(fire_id, skipped, transitions)

    def record_slots(self, jobs: Sequence[JobSlots], now: datetime) -> RecordedSlots:
        """Record the slots a scheduler tick decided for several jobs, and move their watermarks, in one
        transaction (a commit per fire was most of a tick's time).

        The rules are `start`'s, `record_skipped`'s and `insert_failed`'s: a slot already recorded (by another
        daemon, or before a restart) is left as it is, and a `forbid` job's row is locked before its running
        fires are judged against the fires in flight, which include those recorded just before in this call.
        Each job is all or nothing, fires and watermark: a job whose records fail (say, items the database
        refuses) is rolled back alone and named in `failed`, the others are committed.
        """
        for job in jobs:
            if job.overlap.mode == "replace" and any(_runs(slot) for slot in job.fires):
                raise ValueError(f"{job.job_name}: a replacing fire is recorded by start(), which cancels")
        ordered = sorted(jobs, key=lambda j: j.job_name)  # the order of jobs.sync: daemons take turns
        try:
            return self._record_slots(ordered, now, isolate=False)
        except Exception as exc:
            if is_transient(exc):
                raise
        # One job's records failed: again, each job under a savepoint of its own (not paid when all is well).
        return self._record_slots(ordered, now, isolate=True)

    def _record_slots(self, jobs: Sequence[JobSlots], now: datetime, *, isolate: bool) -> RecordedSlots:
        core = self.core
        transitions: list[Transition] = []
        failed: dict[str, str] = {}
        with core.write() as conn:
            for job in jobs:
                try:
                    with conn.begin_nested() if isolate else contextlib.nullcontext():
                        recorded = _record_job_slots(core, conn, job, now)
                except Exception as exc:
                    if not isolate or is_transient(exc):
                        raise
                    failed[job.job_name] = describe_error(exc)
                    continue
                transitions += recorded
            core.append_events(conn, now, transitions)
        return RecordedSlots(transitions, failed)

    def record_skipped(self, fire: NewFire, reason: str, now: datetime) -> str | None:
        """Record that a slot was not run, and why. None when the slot was already recorded."""
        return self._record_one(
            lambda conn, fire_id: _record_skipped(self.core, conn, fire_id, fire, reason, now), now
        )

    def insert_failed(self, fire: NewFire, error: str, now: datetime) -> str | None:
        """Record a scheduled slot that could not be planned (unresolved workflow, no desktop, unreadable items
        file) as a failed fire. None when the slot was already recorded."""
        return self._record_one(
            lambda conn, fire_id: _record_failed(self.core, conn, fire_id, fire, error, now), now
        )

    def insert_requested(self, fire: NewFire, expected: int, now: datetime) -> str | None:
        """Record a fire whose `expected` items are too many for one transaction: requested, a daemon plans them by
        chunks (`planning.plan_fire`). None when its slot (or its upstream fire's follow-up) is already recorded."""
        return self._record_one(
            lambda conn, fire_id: _record_requested(self.core, conn, fire_id, fire, expected, now), now
        )

    def _record_one(
        self, record: Callable[[Connection, str], list[Transition] | None], now: datetime
    ) -> str | None:
        """One fire recorded by `record(conn, fire_id)` in a transaction of its own, its events appended; its id,
        or None when `record` found its slot taken."""
        fire_id = new_id("fire")
        with self.core.write() as conn:
            transitions = record(conn, fire_id)
            if transitions is None:
                return None
            self.core.append_events(conn, now, transitions)
        return fire_id

    def request(self, fire: NewFire, now: datetime) -> str:
        """Record a fire whose items a daemon will plan (a manual trigger from the CLI)."""
        fire_id = new_id("fire")
        with self.core.write() as conn:
            conn.execute(
                sa.insert(fire_t).values(**fire_values(fire_id, fire, now, status="requested", items_total=0))
            )
            self.core.append_events(
                conn,
                now,
                [Transition("fire_requested", fire.job_name, fire_id=fire_id, data=fire_data(fire, 0))],
            )
            self.core.work_due(conn)
        return fire_id

    def requested(self, limit: int = 20, *, now: datetime | None = None) -> list[FireRequest]:
        """Fires waiting to be planned, oldest first; with `now`, also fires whose plan stopped midway (its
        planner's claim lapsed: `store.plans`), to be continued."""
        sql = self.core.sql
        with self.core.read() as conn:
            # Every dispatch round asks (a few times a second under load): a prepared statement, not Core's.
            if now is None:
                rows = sql.fires_requested.rows(conn, {"b_limit": limit})
            else:
                rows = sql.fires_requested_or_stalled.rows(conn, {"b_limit": limit, "b_now": now})
            return [
                FireRequest(
                    r.id,
                    r.job_name,
                    r.trigger,
                    r.input_overrides,
                    resumed=r.status == "running",
                    copies_failed=r.status == "running" and copies_failed(r.plan_digest),
                    upstream_fire_id=r.upstream_fire_id,
                )
                for r in rows
            ]

    def fail(self, fire_id: str, error: str, now: datetime) -> None:
        """A fire that could not be planned (unknown workflow, no desktop matches, unreadable items file).

        Only a fire still `requested` fails: another daemon may have planned (or a user cancelled) it meanwhile.
        """
        with self.core.write() as conn:
            row = conn.execute(
                sa.update(fire_t)
                .where(fire_t.c.id == fire_id)
                .where(fire_t.c.status == "requested")
                .values(status="failed", error=error, finished_at=now)
                .returning(fire_t.c.job_name)
            ).first()
            if row is None:
                return
            self.core.append_events(
                conn, now, [Transition("fire_failed", row.job_name, fire_id=fire_id, data={"error": error})]
            )

    def in_flight(self, job_name: str) -> list[str]:
        """Ids of the job's fires that still have items pending or running."""
        with self.core.read() as conn:
            return _fires_in_flight(conn, job_name)

    def of_job(self, name: str, *, limit: int | None = None) -> list[FireSummary]:
        """The job's fires, oldest first (by slot, then by creation); with `limit`, the newest `limit` of them."""
        order = (fire_t.c.scheduled_for.desc().nulls_last(), fire_t.c.created_at.desc(), fire_t.c.id.desc())
        query = sa.select(fire_t).where(fire_t.c.job_name == name).order_by(*order)
        if limit is not None:
            query = query.limit(limit)
        with self.core.read() as conn:
            return [_fire_summary(r) for r in reversed(conn.execute(query).all())]

    def last_by_job(self) -> dict[str, FireSummary]:
        """Each job's most recent fire: the last created, and of fires created together the latest slot."""
        # One index probe per job (ix_fire_job_created), not a ranking of every fire in the store.
        f = fire_t.alias("f")
        newest = (
            sa.select(f.c.id)
            .where(f.c.job_name == job_t.c.name)
            .order_by(f.c.created_at.desc(), f.c.scheduled_for.desc().nulls_last(), f.c.id.desc())
            .limit(1)
            .correlate(job_t)
            .scalar_subquery()
        )
        with self.core.read() as conn:
            rows = conn.execute(sa.select(fire_t).join(job_t, fire_t.c.id == newest)).all()
        return {r.job_name: _fire_summary(r) for r in rows}


def fire_values(
    fire_id: str, fire: NewFire, now: datetime, *, status: str, items_total: int
) -> dict[str, Any]:
    """A fire row's values; a scheduled slot's dedup key is "<job>@<slot>", a fire after an upstream fire's
    "<job>@after:<upstream fire>" (one per upstream fire and job), any other fire's its own id."""
    scheduled = fire.trigger in ("scheduled", "catchup") and fire.scheduled_for is not None
    dedup_key = (
        f"{fire.job_name}@{fire.scheduled_for.isoformat()}"
        if scheduled and fire.scheduled_for
        else f"{fire.job_name}@after:{fire.upstream_fire_id}"
        if fire.upstream_fire_id
        else fire_id
    )
    return {
        "id": fire_id,
        "job_name": fire.job_name,
        "trigger": fire.trigger,
        "dedup_key": dedup_key,
        "scheduled_for": fire.scheduled_for,
        "created_at": now,
        "status": status,
        "retry_of": fire.retry_of,
        "upstream_fire_id": fire.upstream_fire_id,
        "input_overrides": dict(fire.input_overrides) if fire.input_overrides else None,
        "definition_hash": fire.definition_hash,
        "planned_at": now if status == "running" else None,
        "items_total": items_total,
    }


def retry_of(old: Any, *, priority: bool) -> NewFire:
    """A retry of the fire `old` (its row): the same job, definition and overrides."""
    return NewFire(
        old.job_name,
        "retry",
        None,
        definition_hash=old.definition_hash,
        input_overrides=old.input_overrides,
        retry_of=old.id,
        priority=priority,
    )


#: What a retry fire's plan digest starts with: its items are copies of the failed items of the fire it retries.
_COPY_PREFIX = "failed-items-of:"


def copy_digest(retried_fire_id: str) -> str:
    """The plan digest of a retry fire whose items are copied from `retried_fire_id`'s failed items."""
    return f"{_COPY_PREFIX}{retried_fire_id}"


def copies_failed(digest: str | None) -> bool:
    """Whether a plan with this digest copies failed items (a retry), rather than reading the job's items."""
    return digest is not None and digest.startswith(_COPY_PREFIX)


def fire_data(fire: NewFire, items: int) -> dict[str, Any]:
    """What a fire's events say of it."""
    data: dict[str, Any] = {"trigger": fire.trigger, "items": items}
    if fire.scheduled_for is not None:
        data["scheduled_for"] = fire.scheduled_for.isoformat()
    if fire.retry_of:
        data["retry_of"] = fire.retry_of
    if fire.upstream_fire_id:
        data["upstream_fire"] = fire.upstream_fire_id
    return data


#: `_insert_fire_row`'s statement, per dialect (PostgreSQL or not).
_INSERT_FIRE: dict[bool, Any] = {}


def _insert_fire_row(core: StoreCore, conn: Connection, values: dict[str, Any]) -> bool:
    """Insert a fire unless its dedup key (the slot) is taken; True when this call inserted it.

    RETURNING says whether the row went in: `rowcount` of INSERT .. ON CONFLICT DO NOTHING is -1 through
    psycopg, which read as "inserted" gave a second daemon's fire of the same slot its own items.
    """
    statement = _INSERT_FIRE.get(core.is_postgres)
    if statement is None:
        # Built once per dialect, the values bound at execution: building the statement with `.values()` and
        # computing its cache key cost as much as running it (about half of a scheduler tick's time).
        statement = core.insert_or_nothing(fire_t, ["dedup_key"]).returning(fire_t.c.id)
        _INSERT_FIRE[core.is_postgres] = statement
    return conn.execute(statement, values).first() is not None


def _record_running(
    core: StoreCore, conn: Connection, fire_id: str, fire: NewFire, items: Sequence[NewItem], now: datetime
) -> list[Transition] | None:
    """Insert a fire with its items (finished at once without any); None when its slot is taken. The caller
    appends the events."""
    values = fire_values(fire_id, fire, now, status="running", items_total=len(items))
    if not _insert_fire_row(core, conn, values):
        return None
    insert_items(core, conn, fire_id, fire, items, now)
    transitions = [
        Transition("fire_started", fire.job_name, fire_id=fire_id, data=fire_data(fire, len(items)))
    ]
    if not items:
        transitions += settle_fires(core, conn, [fire_id], now)
    return transitions


def _record_requested(
    core: StoreCore, conn: Connection, fire_id: str, fire: NewFire, expected: int, now: datetime
) -> list[Transition] | None:
    """Insert a fire whose items a daemon plans by chunks; None when its slot is taken. The caller appends the
    events."""
    if not _insert_fire_row(
        core, conn, fire_values(fire_id, fire, now, status="requested", items_total=expected)
    ):
        return None
    core.work_due(conn)  # a daemon plans it
    return [Transition("fire_requested", fire.job_name, fire_id=fire_id, data=fire_data(fire, expected))]


#: A fire replaced (overlap: replace) with at most this many open items has them cancelled in the replacing
#: fire's transaction; more are cancelled by chunks (`store.control.cancel_chunk`), as `cancel F` does.
CANCEL_AT_ONCE = 4_000


def _replace(
    core: StoreCore, conn: Connection, job_name: str, fire_ids: Sequence[str], reason: str, now: datetime
) -> list[Transition]:
    """Cancel the fires a `replace` fire replaces: a few open items at once, else (or a fire requested or being
    planned) asked, for chunks. Attempts and items are locked before the fires (the one order)."""
    rows = conn.execute(sa.select(fire_t).where(fire_t.c.id.in_(list(fire_ids))).order_by(fire_t.c.id)).all()
    asked = [
        r.id
        for r in rows
        if r.status == "requested" or r.planned_at is None or _open_items(conn, r.id) > CANCEL_AT_ONCE
    ]
    at_once = [i for i in fire_ids if i not in asked]
    transitions: list[Transition] = []
    if at_once:
        chosen = [item_t.c.job_name == job_name, item_t.c.fire_id.in_(at_once)]
        transitions += cancel_items(core, conn, chosen, reason, now, only_pending=False)
    if asked:
        locked = conn.execute(
            core.lock(sa.select(fire_t).where(fire_t.c.id.in_(asked)).order_by(fire_t.c.id))
        )
        transitions += ask_cancels(conn, locked.all(), reason, now, lease_until=now)
    return transitions


def _open_items(conn: Connection, fire_id: str) -> int:
    """How many of the fire's items are pending or running (by the index on fire and status)."""
    query = sa.select(sa.func.count()).where(
        item_t.c.fire_id == fire_id, item_t.c.status.in_(OPEN_ITEM_STATUSES)
    )
    return int(conn.execute(query).scalar_one())


def _record_skipped(
    core: StoreCore, conn: Connection, fire_id: str, fire: NewFire, reason: str, now: datetime
) -> list[Transition] | None:
    """Insert a skipped fire; None when its slot is taken. The caller appends the events."""
    return _record_without_items(core, conn, fire_id, fire, now, "skipped", reason)


def _record_failed(
    core: StoreCore, conn: Connection, fire_id: str, fire: NewFire, error: str, now: datetime
) -> list[Transition] | None:
    """Insert a fire that failed before it had items; None when its slot is taken. The caller appends the
    events."""
    return _record_without_items(core, conn, fire_id, fire, now, "failed", error)


def _record_without_items(
    core: StoreCore,
    conn: Connection,
    fire_id: str,
    fire: NewFire,
    now: datetime,
    status: Literal["skipped", "failed"],
    why: str,
) -> list[Transition] | None:
    """Insert a fire ended before it had items, `why` being the skip reason or the error."""
    column, key = ("skip_reason", "reason") if status == "skipped" else ("error", "error")
    values = fire_values(fire_id, fire, now, status=status, items_total=0)
    values.update({column: why, "finished_at": now})
    if not _insert_fire_row(core, conn, values):
        return None
    data = fire_data(fire, 0) | {key: why}
    return [Transition(f"fire_{status}", fire.job_name, fire_id=fire_id, data=data)]


def _record_job_slots(core: StoreCore, conn: Connection, job: JobSlots, now: datetime) -> list[Transition]:
    """One job's part of `record_slots`: its fires in slot order, then its watermark. The caller appends the
    events."""
    name, overlap = job.job_name, job.overlap
    forbid = overlap.mode == "forbid"
    if forbid and any(_runs(slot) for slot in job.fires):
        # As in `start`: another daemon recording a slot of this job waits here, and then sees our fires.
        conn.execute(core.lock(sa.select(job_t.c.name).where(job_t.c.name == name))).all()
    transitions: list[Transition] = []
    for slot in job.fires:
        fire_id = new_id("fire")
        if slot.error is not None:
            recorded = _record_failed(core, conn, fire_id, slot.fire, slot.error, now)
        elif slot.skip_reason is not None:
            recorded = _record_skipped(core, conn, fire_id, slot.fire, slot.skip_reason, now)
        elif in_flight := (_fires_in_flight(conn, name) if forbid else []):
            recorded = _record_skipped(core, conn, fire_id, slot.fire, overlap.skip_reason(in_flight), now)
        elif slot.requested is not None:
            recorded = _record_requested(core, conn, fire_id, slot.fire, slot.requested, now)
        else:
            recorded = _record_running(core, conn, fire_id, slot.fire, slot.items, now)
        transitions += recorded or []
    if job.last_slot_at is not None:
        move_last_slot(conn, name, job.last_slot_at)
    return transitions


def _runs(slot: SlotFire) -> bool:
    return slot.skip_reason is None and slot.error is None


def _fires_in_flight(conn: Connection, job_name: str) -> list[str]:
    rows = conn.execute(
        sa.select(fire_t.c.id)
        .where(fire_t.c.job_name == job_name)
        .where(fire_t.c.status.in_(("requested", "running")))
        .order_by(fire_t.c.created_at, fire_t.c.id)
    )
    return [r.id for r in rows]


def _fire_summary(row: Any) -> FireSummary:
    return FireSummary(
        row.id,
        row.job_name,
        row.trigger,
        row.status,
        row.scheduled_for,
        row.created_at,
        row.finished_at,
        row.skip_reason,
        row.error,
        row.items_total,
    )
