"""Plans: a requested fire's items recorded by chunks, one transaction each (`store.plans`).

A fire of 100,000 items is not one transaction of 100,000 inserts (seconds long, and the whole fire held in
memory): `claim_plan` marks the fire `running` with `planned_at` NULL and this store as its planner until
`plan_lease_until`; `plan_chunk` adds a chunk of items (dispatched at once) and renews the claim;
`finish_plan` sets `planned_at` and `items_total` and emits `fire_started`. Until then the fire is never settled
(`items.settle_fires` skips it), however many of its items have ended.

Exactly once: every chunk checks, with the fire's row locked, that this store still holds the claim, and items
are unique on (fire, seq). A planner that dies leaves the fire `running` with part of its items; once its claim
lapses any daemon's `claim_plan` takes it over and continues after the last recorded item (`next_seq`), and the
digest recorded at the first claim says whether the items file, desktops and overrides are still those of the
plan (if not, `abandon_chunk` cancels its pending items by chunks and `abandon_plan` ends it). Stopping a plan (a cancel, a removed job) sets `planned_at` first, in a
transaction of its own, so no chunk goes in after it.

A retry of a fire's failed items is a plan too (`start_retry`, `copy_failed`, `finish_plan`): the retry fire is
`running` with `planned_at` NULL while its items are copied by chunks from the failed items of the fire it
retries, each copy keeping the seq of the item it copies, so the next chunk starts after the last copy
(`next_seq`) whoever continues it, and no failed item is copied twice into one retry (unique (fire, seq)). Its
digest says so (`copy_digest`): a daemon continues it by copying, not from the job's items file.

A clean stop (a daemon's, or the CLI's on a signal) ends between chunks and gives the claim back
(`release_plan`): whoever comes next continues at once instead of waiting for the claim to lapse.

Locks: each method locks the fire's row; `abandon_plan` locks the fire's pending items (by id) first, then the
fire (the one order: item -> fire). `copy_failed` reads the retried fire's failed items without locks (a failed
item is final). `items.settle_fires` never locks a fire still being planned.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from cyberdesk_runner.store.core import Aggregate, StoreCore, new_id
from cyberdesk_runner.store.fires import copies_failed, copy_digest, fire_data, fire_values, retry_of
from cyberdesk_runner.store.items import cancel_items, end_plan, fire_window, insert_items, settle_fires
from cyberdesk_runner.store.records import (
    AbandonChunk,
    CopiedChunk,
    NewFire,
    NewItem,
    PlanClaim,
    RetryStart,
    Transition,
)
from cyberdesk_runner.store.tables import fire_t, item_t

__all__ = ["COPY_LEASE", "PLAN_LEASE", "Plans", "stop_planning"]

#: How long a planner's claim holds without a chunk; a planner that died is taken over after it.
PLAN_LEASE = timedelta(seconds=60)
#: The same for a retry's copy of failed items: store work only (no items file to read), chunks well under 1 s.
COPY_LEASE = timedelta(seconds=15)


class _PlanTakenOver(Exception):
    """The plan changed hands during the transaction: roll it back."""


class Plans(Aggregate):
    def claim_plan(
        self,
        fire_id: str,
        now: datetime,
        *,
        expected: int,
        digest: str | None,
        lease: timedelta = PLAN_LEASE,
    ) -> PlanClaim | None:
        """Start planning a requested fire (`expected` items), or take over a plan whose claim lapsed (or is this
        store's own). None when the fire is planned, cancelled, or another daemon holds its plan."""
        core = self.core
        with core.write() as conn:
            row = conn.execute(core.lock(sa.select(fire_t).where(fire_t.c.id == fire_id))).first()
            if row is None:
                return None
            claim = {"planned_by": core.owner, "plan_lease_until": now + lease}
            if row.status == "requested":
                values = {"status": "running", "items_total": expected, "plan_digest": digest, **claim}
                conn.execute(sa.update(fire_t).where(fire_t.c.id == fire_id).values(**values))
                return PlanClaim(fire_id, row.job_name, 0, digest)
            return _claim(core, conn, row, now, lease)

    def plan_chunk(
        self,
        fire_id: str,
        first_seq: int,
        items: Sequence[NewItem],
        now: datetime,
        *,
        priority: bool = False,
        lease: timedelta = PLAN_LEASE,
    ) -> bool:
        """Record items `first_seq`.. of a fire this store plans, and renew the claim. False when the plan is no
        longer ours (taken over after our claim lapsed, or stopped): nothing was recorded."""
        core = self.core
        with core.write() as conn:
            row = _own_plan(core, conn, fire_id)
            if row is None:
                return False
            conn.execute(sa.update(fire_t).where(fire_t.c.id == fire_id).values(plan_lease_until=now + lease))
            fire = NewFire(row.job_name, row.trigger, row.scheduled_for, priority=priority)
            insert_items(core, conn, fire_id, fire, items, now, first_seq=first_seq)
            return True

    def finish_plan(self, fire_id: str, now: datetime) -> list[Transition] | None:
        """Every item is in: the fire is planned (and settled at once if its items have all ended). None when
        the plan is no longer ours."""
        core = self.core
        with core.write() as conn:
            row = _own_plan(core, conn, fire_id)
            if row is None:
                return None
            total = end_plan(conn, fire_id, now)
            transitions = [Transition("fire_started", row.job_name, fire_id=fire_id, data={"items": total})]
            transitions += settle_fires(core, conn, [fire_id], now)
            core.append_events(conn, now, transitions)
            return transitions

    def abandon_chunk(
        self,
        fire_id: str,
        error: str,
        after_seq: int,
        now: datetime,
        *,
        limit: int,
        lease: timedelta = PLAN_LEASE,
    ) -> AbandonChunk | None:
        """Before `abandon_plan`, by chunks: cancel the pending items among the next `limit` items (seq after
        `after_seq`) of a plan this store holds, and renew its claim. None when the plan is no longer ours.

        Items are read in seq order (`items.fire_window`), then cancelled by id where still pending under their
        locks: a chunk done twice (this store's plan taken over
        by another daemon, which abandons it again) cancels nothing twice."""
        core = self.core
        try:
            with core.write() as conn:
                if conn.execute(_plan_of(core.owner, fire_id)).first() is None:
                    return None
                window = fire_window(conn, fire_id, after_seq, limit)
                pending = [r.id for r in window if r.status == "pending"]
                # The one order: the pending items (by id), then the fire.
                transitions = (
                    cancel_items(core, conn, [item_t.c.id.in_(pending)], error, now, only_pending=True)
                    if pending
                    else []
                )
                if _own_plan(core, conn, fire_id) is None:
                    raise _PlanTakenOver
                conn.execute(
                    sa.update(fire_t).where(fire_t.c.id == fire_id).values(plan_lease_until=now + lease)
                )
                core.append_events(conn, now, transitions)
                last = window[-1].seq if window else after_seq
                return AbandonChunk(transitions, last, done=len(window) < limit)
        except _PlanTakenOver:
            return None

    def abandon_plan(self, fire_id: str, error: str, now: datetime) -> list[Transition]:
        """A plan this store holds that cannot go on (its items file no longer reads, or changed since the plan
        began): its pending items are cancelled (most of them by `abandon_chunk` before), and the fire ends with
        `error` (failed when it has no item)."""
        core = self.core
        try:
            with core.write() as conn:
                if conn.execute(_plan_of(core.owner, fire_id)).first() is None:
                    return []
                # The one order: the pending items (by id), then the fire.
                transitions = cancel_items(
                    core, conn, [item_t.c.fire_id == fire_id], error, now, only_pending=True
                )
                if _own_plan(core, conn, fire_id) is None:
                    raise _PlanTakenOver
                total = end_plan(conn, fire_id, now)
                ended = {"error": error} | ({"status": "failed", "finished_at": now} if total == 0 else {})
                row = conn.execute(
                    sa.update(fire_t)
                    .where(fire_t.c.id == fire_id)
                    .values(**ended)
                    .returning(fire_t.c.job_name)
                ).one()
                if total == 0:
                    transitions.append(
                        Transition("fire_failed", row.job_name, fire_id=fire_id, data={"error": error})
                    )
                transitions += settle_fires(core, conn, [fire_id], now)
                core.append_events(conn, now, transitions)
                return transitions
        except _PlanTakenOver:
            return []

    def release_plan(self, fire_id: str, now: datetime) -> bool:
        """Give back this store's claim on a plan it stops midway (a clean stop): its claim lapses at once, so
        another daemon (or this one restarted, or the CLI run again) continues it without waiting. False when
        the plan was not this store's."""
        with self.core.write() as conn:
            released = conn.execute(
                sa.update(fire_t)
                .where(
                    fire_t.c.id == fire_id,
                    fire_t.c.status == "running",
                    fire_t.c.planned_at.is_(None),
                    fire_t.c.planned_by == self.core.owner,
                )
                .values(planned_by=None, plan_lease_until=now)
                .returning(fire_t.c.id)
            ).first()
            if released is not None:
                self.core.work_due(conn)  # wake the other daemons: the plan is theirs to continue
            return released is not None

    def start_retry(self, fire_id: str, now: datetime, *, lease: timedelta = COPY_LEASE) -> RetryStart | None:
        """Retry every failed item of a fire as a new fire (trigger "retry", `retry_of` the fire), claimed by this
        store to copy its items by chunks (`copy_failed`, then `finish_plan`). None when it has no failed item.

        A fire has one retry of all its failed items in flight at a time (retries of single items aside): while
        one is requested or running (its items not all ended), it is the answer (`created` False), not a second
        one running the same items again; one whose copy
        stopped midway (its copier killed or stopped) is continued, its claim taken if it lapsed or was given
        back (else `claim` is None: another process copies now). A fire that failed before it had items (it
        could not be planned) is requested again, to be planned like a trigger (`replan`)."""
        core = self.core
        with core.write() as conn:
            old = conn.execute(sa.select(fire_t).where(fire_t.c.id == fire_id)).first()
            if old is None:
                return None
            digest = copy_digest(old.id)
            # A retry of the whole fire (not of one of its items): its copy, or its plan again (no items).
            whole = sa.true() if old.items_total == 0 else fire_t.c.plan_digest == digest
            current = conn.execute(
                core.lock(
                    sa.select(fire_t)
                    .where(fire_t.c.status.in_(("requested", "running")), fire_t.c.retry_of == old.id, whole)
                    .order_by(fire_t.c.created_at, fire_t.c.id)
                    .limit(1)
                )
            ).first()
            if current is not None:
                copying = current.planned_at is None and current.plan_digest == digest
                claim = _claim(core, conn, current, now, lease) if copying else None
                return RetryStart(
                    current.id, claim, created=False, replan=current.status == "requested", copying=copying
                )
            failed = [item_t.c.fire_id == old.id, item_t.c.status == "failed"]
            count = int(conn.execute(sa.select(sa.func.count()).where(*failed)).scalar_one())
            replan = count == 0 and old.status == "failed" and old.items_total == 0
            if count == 0 and not replan:
                return None
            priority = conn.execute(sa.select(item_t.c.id).where(*failed, item_t.c.priority).limit(1)).first()
            retry_id = new_id("fire")
            fire = retry_of(old, priority=priority is not None)
            values = fire_values(
                retry_id, fire, now, status="requested" if replan else "running", items_total=count
            )
            if not replan:  # being planned: its items are copied by chunks, claimed by this store
                values.update(
                    planned_at=None, planned_by=core.owner, plan_lease_until=now + lease, plan_digest=digest
                )
            else:
                core.work_due(conn)  # a daemon plans it
            conn.execute(sa.insert(fire_t).values(**values))
            data = {"retry_fire": retry_id, "items": count}
            transitions = [Transition("retried", old.job_name, fire_id=old.id, data=data)]
            if replan:
                requested = fire_data(fire, 0)
                transitions.append(
                    Transition("fire_requested", old.job_name, fire_id=retry_id, data=requested)
                )
            core.append_events(conn, now, transitions)
            claim = None if replan else PlanClaim(retry_id, old.job_name, 0, digest)
            return RetryStart(retry_id, claim, replan=replan, copying=not replan)

    def copy_failed(
        self, fire_id: str, next_seq: int, now: datetime, *, limit: int, lease: timedelta = COPY_LEASE
    ) -> CopiedChunk | None:
        """Copy the failed items among the next `limit` items (from seq `next_seq` on) of the fire a retry fire
        retries into it, each keeping its seq, and renew the claim. None when the copy is no longer this store's
        (taken over after our claim lapsed, or stopped by a cancel): nothing was recorded.

        The window is read in seq order without a condition on status (a failed item is final), so each chunk
        reads `limit` rows by the fire's (fire, seq) index, whatever the database believes of the table (on a
        PostgreSQL table not analyzed since the fire's items went in, a condition on status was planned as a
        read of every failed item of the fire, each chunk)."""
        core = self.core
        with core.write() as conn:
            row = _own_plan(core, conn, fire_id)
            if row is None or row.retry_of is None or not copies_failed(row.plan_digest):
                return None
            window = conn.execute(
                sa.select(item_t.c.seq, item_t.c.status)
                .where(item_t.c.fire_id == row.retry_of, item_t.c.seq >= next_seq)
                .order_by(item_t.c.seq)
                .limit(limit)
            ).all()
            seqs = [r.seq for r in window if r.status == "failed"]
            conn.execute(sa.update(fire_t).where(fire_t.c.id == fire_id).values(plan_lease_until=now + lease))
            if seqs:
                failed = conn.execute(
                    sa.select(
                        item_t.c.seq,
                        item_t.c.inputs,
                        item_t.c.machine_id,
                        item_t.c.machine_name,
                        item_t.c.priority,
                    )
                    .where(item_t.c.fire_id == row.retry_of, item_t.c.seq.in_(seqs))
                    .order_by(item_t.c.seq)
                ).all()
                fire = NewFire(row.job_name, row.trigger, None, priority=any(r.priority for r in failed))
                copies = [NewItem(r.inputs, r.machine_id, r.machine_name) for r in failed]
                insert_items(core, conn, fire_id, fire, copies, now, seqs=[r.seq for r in failed])
            last = window[-1].seq + 1 if window else next_seq
            return CopiedChunk(len(seqs), last, len(window) < limit)

    def retry(self, fire_id: str, now: datetime, *, chunk: int = 1_000) -> str | None:
        """`start_retry`, then every chunk of the copy and its end, here (the CLI sizes chunks by time and stops
        cleanly: `bulk.retry_fire`). The retry fire's id; None when there is nothing failed to retry."""
        start = self.start_retry(fire_id, now)
        if start is None or start.claim is None:
            return None if start is None else start.fire_id
        seq = start.claim.next_seq
        while (copied := self.copy_failed(start.fire_id, seq, now, limit=chunk)) is not None:
            seq = copied.next_seq
            if copied.done:
                self.finish_plan(start.fire_id, now)
                break
        return start.fire_id

    def plan(
        self,
        fire_id: str,
        items: Sequence[NewItem],
        now: datetime,
        *,
        priority: bool = False,
        chunk: int = 1_000,
    ) -> bool:
        """Give a requested fire these items, `chunk` per transaction (the daemon streams them instead, in chunks
        sized by time: `planning.plan_fire`). False when another daemon planned (or cancelled) it first, or took
        the plan over."""
        claim = self.claim_plan(fire_id, now, expected=len(items), digest=None)
        if claim is None:
            return False
        for start in range(claim.next_seq, len(items), chunk):
            if not self.plan_chunk(fire_id, start, items[start : start + chunk], now, priority=priority):
                return False
        return self.finish_plan(fire_id, now) is not None


def stop_planning(core: StoreCore, conn: Connection, chosen: Sequence[Any], now: datetime) -> list[str]:
    """End the plans of the fires matching `chosen` (a cancel, a removed job) with the items they have; their
    planners' next chunk finds the plan gone. The fires' ids; run it in a transaction of its own, before cancelling
    their items (a planner's chunk commits before this returns, so the cancel sees every item)."""
    rows = conn.execute(
        core.lock(
            sa.select(fire_t.c.id)
            .where(fire_t.c.status == "running", fire_t.c.planned_at.is_(None), *chosen)
            .order_by(fire_t.c.id)
        )
    ).all()
    for row in rows:
        end_plan(conn, row.id, now)
    return [r.id for r in rows]


def _claim(core: StoreCore, conn: Connection, row: Any, now: datetime, lease: timedelta) -> PlanClaim | None:
    """Take over the plan of a fire being planned (its row locked) if its claim lapsed or is this store's: the
    claim, its items going on after the last one recorded. None when another store holds it, or it is over."""
    lapsed = row.planned_by == core.owner or (
        row.plan_lease_until is not None and row.plan_lease_until <= now
    )
    if row.status != "running" or row.planned_at is not None or not lapsed:
        return None
    claim = {"planned_by": core.owner, "plan_lease_until": now + lease}
    conn.execute(sa.update(fire_t).where(fire_t.c.id == row.id).values(**claim))
    last = conn.execute(sa.select(sa.func.max(item_t.c.seq)).where(item_t.c.fire_id == row.id)).scalar()
    return PlanClaim(row.id, row.job_name, 0 if last is None else last + 1, row.plan_digest)


def _plan_of(owner: str, fire_id: str) -> sa.Select[Any]:
    """The fire's row if `owner` holds its plan."""
    return sa.select(fire_t).where(
        fire_t.c.id == fire_id,
        fire_t.c.status == "running",
        fire_t.c.planned_at.is_(None),
        fire_t.c.planned_by == owner,
    )


def _own_plan(core: StoreCore, conn: Connection, fire_id: str) -> Any:
    """The fire's row, locked, when this store holds its plan; else None."""
    return conn.execute(core.lock(_plan_of(core.owner, fire_id))).first()
