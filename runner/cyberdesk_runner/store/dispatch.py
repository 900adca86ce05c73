"""Dispatch: due items assigned to desktops as new attempts, and the claims on their create calls (`store.dispatch`).

An attempt is recorded (`creating`, with its idempotency key) before its create call is made, and claimed by
this store (`core.owner`) until its lease (`retry_create_at`) lapses: the claim is renewed while its call is
under way (only then), released at a clean stop, deferred after an unknown outcome, and taken over by any daemon
once it lapses (`attempts_to_settle`, same key, so never a second run). The create calls' answers are news
(`tracking`).

Locks: `assign` takes PostgreSQL's advisory lock (one dispatch decision at a time across daemons), then the due
items with SKIP LOCKED (in queue order), and inserts attempts; the partial unique index on an active attempt's
desktop is the last guard. `attempts_to_settle` locks attempts with SKIP LOCKED; the others update attempts only.
`assign_due` is that work inside another transaction: news that frees desktops fills them in its own transaction
(`tracking.record_news`), after its row locks; it only tries the advisory lock there (never waits for it), so a
dispatch decision that waits for those rows cannot deadlock with it. That refill reads only the desktops it freed
(`_choose_for_freed`), under the same lock and with the same SKIP LOCKED reads, and the same unique index guards it.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Callable, Collection, Mapping
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from cyberdesk_runner.store.core import Aggregate, StoreCore, chunks, new_id
from cyberdesk_runner.store.records import (
    Assignment,
    AssignRequest,
    AttemptRef,
    DispatchView,
    DueItem,
    Transition,
)
from cyberdesk_runner.store.tables import attempt_t, item_t

__all__ = ["Chooser", "Dispatch", "DispatchWindow", "assign_due"]

Chooser = Callable[[DispatchView], list[Assignment]]
#: How many of a job's due items are worth reading now: (job name, busy desktops, the job's active attempts) -> n.
DispatchWindow = Callable[[str, frozenset[str], int], int]

#: PostgreSQL's advisory lock that serialises dispatch decisions across daemons: one per store (schema), so that
#: stores sharing a database never wait for, or skip a refill because of, each other's decisions. (Daemons of an
#: older version used one key per database: while both run, the unique index on an active attempt's desktop is
#: the guard, and a clash fails one transaction, which is tried again, never a second run.)
_DISPATCH_LOCK = (sa.literal(0x6364_7275, sa.Integer), sa.func.hashtext(sa.func.current_schema()))  # "cdru"


class Dispatch(Aggregate):
    def assign(
        self,
        now: datetime,
        choose: Chooser,
        *,
        limit: int = 200,
        lease: timedelta,
        window: DispatchWindow | None = None,
    ) -> list[AttemptRef]:
        """Record new attempts for due items, as chosen by `choose`, before any create call is made.

        The attempt rows (with their idempotency keys) are committed here; the caller makes the create calls
        afterwards. The attempts are claimed by this store (`owner`) until now + `lease`; `renew_creating`
        extends the claim while the calls are slow. A crash in between leaves attempts in `creating`, which
        `attempts_to_settle` hands to any daemon once the claim lapses.

        Each job's due items are read from its queue in dispatch order (priority first, then due time), at most
        `limit` of them and at most what `window` says this job could start now (its free desktops, its
        concurrency left): a round reads the items it can place, not every item waiting.

        Across daemons: the advisory lock makes one dispatch decision at a time, so busy desktops and per-job
        counts read here include every other daemon's committed attempts; due items are taken with SKIP LOCKED
        (never waiting on an item another transaction holds); the partial unique index on the active
        attempt's desktop is the last guard. Each job gets its own window, so a job at its concurrency limit
        cannot hide another job's items; items pinned to a busy desktop are left out.
        """
        request = AssignRequest(now, choose, lease, limit, window)
        with self.core.write() as conn:
            refs = assign_due(self.core, conn, request, wait_for_lock=True)
        assert refs is not None  # waited for the lock
        return refs

    def attempts_to_settle(self, now: datetime, *, lease: timedelta, limit: int = 100) -> list[AttemptRef]:
        """Attempts whose create call has no recorded outcome and is due to be repeated with the same key.

        Due means: deferred after an unknown outcome and its retry time has come, or claimed by a daemon that
        stopped renewing the claim (it died). Taking them claims them for this store until now + `lease`, so no
        other daemon repeats the same call while this one is making it.
        """
        core = self.core
        due = (attempt_t.c.status == "creating", attempt_t.c.retry_create_at <= now)
        # Usually none: ask (every dispatch round does) before taking SQLite's one write lock.
        with core.read() as conn:
            if core.sql.a_create_to_settle.first(conn, {"b_now": now}) is None:
                return []
        with core.write() as conn:
            query = (
                sa.select(attempt_t, item_t.c.inputs, item_t.c.priority)
                .join(item_t, item_t.c.id == attempt_t.c.item_id)
                .where(*due)
                .order_by(attempt_t.c.retry_create_at, attempt_t.c.id)
                .limit(limit)
            )
            rows = conn.execute(core.lock(query, skip_locked=True, of=attempt_t)).all()
            if not rows:
                return []
            conn.execute(
                sa.update(attempt_t)
                .where(attempt_t.c.id.in_([r.id for r in rows]))
                .values(retry_create_at=now + lease, owner=core.owner, updated_at=now)
            )
            return [
                AttemptRef(
                    r.id,
                    r.item_id,
                    r.fire_id,
                    r.job_name,
                    r.number,
                    r.idempotency_key,
                    r.workflow_id,
                    r.machine_id,
                    r.machine_name,
                    r.inputs,
                    r.priority,
                    r.create_tries,
                )
                for r in rows
            ]

    def renew_creating(self, now: datetime, lease: timedelta, attempt_ids: Collection[str]) -> int:
        """Extend this store's claims on `attempt_ids`, the attempts whose create calls it is making now; returns
        how many.

        Call it more often than the lease lasts (every lease / 3): a claim that is not renewed lapses at
        `retry_create_at`, and then another daemon repeats the create call (same key, so no second run, but a
        wasted call and a race for the record). Only the calls under way, never every claim this store holds:
        one it holds without a call (the answer could not be recorded, or a commit whose acknowledgement was
        lost claimed attempts it never heard of) must lapse and be settled, not wait for the daemon's stop.
        """
        if not attempt_ids:
            return 0
        renewed = 0
        with self.core.write() as conn:
            for chunk in chunks(sorted(attempt_ids)):
                renewed += conn.execute(
                    sa.update(attempt_t)
                    .where(attempt_t.c.id.in_(chunk))
                    .where(attempt_t.c.status == "creating")
                    .where(attempt_t.c.owner == self.core.owner)
                    .values(retry_create_at=now + lease)
                ).rowcount
        return renewed

    def release_creating(self, now: datetime) -> int:
        """Hand back this store's claims at a clean stop: its unanswered create calls are due for any daemon now
        (same keys) instead of when the lease would have lapsed. Returns how many were released."""
        with self.core.write() as conn:
            released = int(
                conn.execute(
                    sa.update(attempt_t)
                    .where(attempt_t.c.status == "creating")
                    .where(attempt_t.c.owner == self.core.owner)
                    .values(retry_create_at=now, owner=None)
                ).rowcount
            )
            if released:
                self.core.work_due(conn)
            return released

    def defer_create(self, attempt_id: str, retry_at: datetime, error: str, now: datetime) -> None:
        """The create call's outcome is unknown (timeout, dropped connection, 5xx): repeat it later, same key.

        The claim is released (any daemon may repeat the call at `retry_at`), unless another daemon has taken
        the attempt over meanwhile: then its claim stands.
        """
        with self.core.write() as conn:
            row = conn.execute(
                sa.update(attempt_t)
                .where(attempt_t.c.id == attempt_id)
                .where(attempt_t.c.status == "creating")
                .where(sa.or_(attempt_t.c.owner == self.core.owner, attempt_t.c.owner.is_(None)))
                .values(
                    retry_create_at=retry_at,
                    create_tries=attempt_t.c.create_tries + 1,
                    owner=None,
                    updated_at=now,
                )
                .returning(attempt_t.c.job_name, attempt_t.c.fire_id, attempt_t.c.item_id)
            ).first()
            if row is not None:
                self.core.append_events(
                    conn,
                    now,
                    [
                        Transition(
                            "create_deferred",
                            row.job_name,
                            row.fire_id,
                            row.item_id,
                            attempt_id,
                            data={"error": error, "retry_at": retry_at.isoformat()},
                        )
                    ],
                )


def assign_due(
    core: StoreCore,
    conn: Connection,
    request: AssignRequest,
    *,
    wait_for_lock: bool,
    events: list[Transition] | None = None,
    freed: Mapping[str, str] | None = None,
) -> list[AttemptRef] | None:
    """`Dispatch.assign`'s work, in the caller's transaction. Without `wait_for_lock`, None (nothing read or
    written) when another transaction holds the dispatch lock (PostgreSQL): a caller that already holds row
    locks must never wait for it, as the holder may be waiting for those rows. Its `attempt_created` events go
    to the event log, or to `events` for a caller that writes its own (one insert per transaction).

    `freed` (desktop -> job of the attempt that just ended there): a refill by news, which reads only those
    desktops, per-job counts and as many due items as they can take, not the whole busy set (`_choose_for_freed`).
    """
    if core.is_postgres:
        if wait_for_lock:
            conn.execute(sa.select(sa.func.pg_advisory_xact_lock(*_DISPATCH_LOCK)))
        elif not conn.execute(sa.select(sa.func.pg_try_advisory_xact_lock(*_DISPATCH_LOCK))).scalar():
            return None
    assignments, due_rows = None, list[Any]()
    if freed is not None:
        assignments, due_rows = _choose_for_freed(core, conn, request, freed)
    if assignments is None:
        assignments, due_rows = _choose(core, conn, request)
    if not assignments:
        return []
    sql, now = core.sql, request.now
    by_id = {r.id: r for r in due_rows}
    refs: list[AttemptRef] = []
    transitions: list[Transition] = []
    attempt_rows: list[dict[str, Any]] = []
    retry_create_at = now + request.lease
    for a in assignments:
        item = by_id[a.item_id]
        attempt_id = new_id("att")
        key = str(uuid.uuid4())
        number = item.attempts + 1
        attempt_rows.append(
            {
                "id": attempt_id,
                "item_id": item.id,
                "fire_id": item.fire_id,
                "job_name": item.job_name,
                "number": number,
                "idempotency_key": key,
                "workflow_id": a.workflow_id,
                "machine_id": a.machine_id,
                "machine_name": a.machine_name,
                "status": "creating",
                "created_at": now,
                "updated_at": now,
                "deadline_at": a.deadline_at,
                "retry_create_at": retry_create_at,
                "create_tries": 0,
                "owner": core.owner,
                "cancel_requested": False,
            }
        )
        refs.append(
            AttemptRef(
                attempt_id,
                item.id,
                item.fire_id,
                item.job_name,
                number,
                key,
                a.workflow_id,
                a.machine_id,
                a.machine_name,
                item.inputs,
                item.priority,
                0,
            )
        )
        transitions.append(
            Transition(
                "attempt_created",
                item.job_name,
                fire_id=item.fire_id,
                item_id=item.id,
                attempt_id=attempt_id,
                data={"number": number, "machine": a.machine_name or a.machine_id},
            )
        )
    sql.insert_attempts.many(conn, attempt_rows)
    sql.item_running.many(conn, [{"b_id": r.item_id, "b_attempts": r.number} for r in refs])
    if events is None:
        core.append_events(conn, now, transitions)
    else:
        events += transitions
    return refs


def _due(core: StoreCore, conn: Connection, job_name: str, now: datetime, wanted: int) -> list[Any]:
    """A job's due items in queue order, at most `wanted`: the queue index holds priority ascending, so two
    ordered reads."""
    rows: list[Any] = []
    for priority in (True, False):
        if wanted <= 0:
            break
        read = core.sql.due_queue.rows(
            conn, {"b_job": job_name, "b_priority": priority, "b_now": now, "b_limit": wanted}
        )
        rows += read
        wanted -= len(read)
    return rows


def _view(
    due_rows: list[Any], busy: frozenset[str], active_by_job: Mapping[str, int], **kw: Any
) -> DispatchView:
    due_rows.sort(key=lambda r: (not r.priority, r.next_attempt_at, r.seq, r.id))
    due = [
        DueItem(
            r.id,
            r.fire_id,
            r.job_name,
            r.seq,
            r.inputs,
            r.machine_id,
            r.attempts,
            r.priority,
            r.next_attempt_at,
        )
        for r in due_rows
    ]
    return DispatchView(due=due, busy_desktops=busy, active_by_job=dict(active_by_job), **kw)


def _choose(core: StoreCore, conn: Connection, request: AssignRequest) -> tuple[list[Assignment], list[Any]]:
    """A dispatch decision over every active attempt (the busy desktops, per-job counts) and every job's queue."""
    sql, now, limit, window = core.sql, request.now, request.limit, request.window
    active = sql.active_attempts.rows(conn)
    busy = frozenset(r.machine_id for r in active)
    active_by_job: dict[str, int] = defaultdict(int)
    for row in active:
        active_by_job[row.job_name] += 1
    due_rows: list[Any] = []
    for job_name in sql.job_names.scalars(conn):
        wanted = limit if window is None else min(limit, window(job_name, busy, active_by_job[job_name]))
        due_rows += _due(core, conn, job_name, now, wanted)
    if not due_rows:
        return [], []
    return request.choose(_view(due_rows, busy, active_by_job)), due_rows


def _choose_for_freed(
    core: StoreCore, conn: Connection, request: AssignRequest, freed: Mapping[str, str]
) -> tuple[list[Assignment] | None, list[Any]]:
    """A refill of the desktops news just freed, at a cost in proportion to them: which of them are free (by the
    unique index on an active desktop), per-job counts (one GROUP BY, counted in SQL), and per job at most as
    many due items as there are free desktops. The chooser may place only there (`only_desktops`).

    None (decide over the full view instead) when the narrow view may miss work: the chooser placed elsewhere, or
    a job whose attempt ended here has due items and got none (its room, freed here, may be on another desktop).
    """
    sql, now, limit, window = core.sql, request.now, request.limit, request.window
    busy = frozenset(sql.active_on_desktops.scalars(conn, {"ids": sorted(freed)}))
    free = frozenset(freed) - busy
    if not free:
        return [], []
    active_by_job: dict[str, int] = defaultdict(int, {job: n for job, n in sql.active_per_job.rows(conn)})
    due_rows: list[Any] = []
    for job_name in sql.job_names.scalars(conn):
        wanted = min(limit, len(free))
        if (
            window is not None
        ):  # no busy desktop is read: the window counts the job's desktops, `free` caps it
            wanted = min(wanted, window(job_name, frozenset(), active_by_job[job_name]))
        due_rows += _due(core, conn, job_name, now, wanted)
    if not due_rows:
        return [], []
    assignments = request.choose(_view(due_rows, frozenset(), active_by_job, only_desktops=free))
    placed_jobs = {r.job_name for r in due_rows if r.id in {a.item_id for a in assignments}}
    waiting_jobs = {r.job_name for r in due_rows} - placed_jobs
    if any(a.machine_id not in free for a in assignments) or waiting_jobs & set(freed.values()):
        return None, []
    return assignments, due_rows
