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
plan (if not, `abandon_plan` ends it). Stopping a plan (a cancel, a removed job) sets `planned_at` first, in a
transaction of its own, so no chunk goes in after it.

Locks: each method locks the fire's row; `abandon_plan` locks the fire's pending items (by id) first, then the
fire (the one order: item -> fire). `items.settle_fires` never locks a fire still being planned.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from cyberdesk_runner.store.core import Aggregate, StoreCore
from cyberdesk_runner.store.items import cancel_items, insert_items, settle_fires
from cyberdesk_runner.store.records import NewFire, NewItem, PlanClaim, Transition
from cyberdesk_runner.store.tables import fire_t, item_t

__all__ = ["PLAN_LEASE", "Plans", "stop_planning"]

#: How long a planner's claim holds without a chunk; a planner that died is taken over after it.
PLAN_LEASE = timedelta(seconds=60)


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
            lapsed = row.planned_by == core.owner or (
                row.plan_lease_until is not None and row.plan_lease_until <= now
            )
            if row.status != "running" or row.planned_at is not None or not lapsed:
                return None
            conn.execute(sa.update(fire_t).where(fire_t.c.id == fire_id).values(**claim))
            last = conn.execute(sa.select(sa.func.max(item_t.c.seq)).where(item_t.c.fire_id == fire_id))
            last_seq = last.scalar()
            return PlanClaim(fire_id, row.job_name, 0 if last_seq is None else last_seq + 1, row.plan_digest)

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
            total = _recorded(conn, fire_id)
            _end_plan(conn, fire_id, now, total)
            transitions = [Transition("fire_started", row.job_name, fire_id=fire_id, data={"items": total})]
            transitions += settle_fires(core, conn, [fire_id], now)
            core.append_events(conn, now, transitions)
            return transitions

    def abandon_plan(self, fire_id: str, error: str, now: datetime) -> list[Transition]:
        """A plan this store holds that cannot go on (its items file no longer reads, or changed since the plan
        began): its pending items are cancelled, and the fire ends with `error` (failed when it has no item)."""
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
                total = _recorded(conn, fire_id)
                _end_plan(conn, fire_id, now, total)
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
        _end_plan(conn, row.id, now, _recorded(conn, row.id))
    return [r.id for r in rows]


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


def _recorded(conn: Connection, fire_id: str) -> int:
    return int(conn.execute(sa.select(sa.func.count()).where(item_t.c.fire_id == fire_id)).scalar_one())


def _end_plan(conn: Connection, fire_id: str, now: datetime, total: int) -> None:
    conn.execute(
        sa.update(fire_t)
        .where(fire_t.c.id == fire_id)
        .values(planned_at=now, items_total=total, planned_by=None, plan_lease_until=None)
    )
