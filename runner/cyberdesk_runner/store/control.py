"""Control: what people (the CLI) and the daemon ask of work already recorded: cancel, fail, retry (`store.control`).

Cancelling ends pending items at once and asks for running items' runs to be cancelled in Cyberdesk (the reaper
carries that out); failing gives up on pending items that cannot run; retrying runs failed work again as a new
fire. The rules of items themselves live in `items`.

Locks, in the one order attempt -> item -> fire: cancels lock the running items' active attempts by id, then
the items by id, then settle fires by id (`items.cancel_items`); `fail_pending_items` and `retry_failed` lock
items (by id, by seq) and settle or insert fires after them.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import sqlalchemy as sa

from cyberdesk_runner.store.core import Aggregate, new_id
from cyberdesk_runner.store.fires import fire_data, fire_values
from cyberdesk_runner.store.items import apply_item_outcome, cancel_items, insert_items, settle_fires
from cyberdesk_runner.store.plans import stop_planning
from cyberdesk_runner.store.records import Fail, NewFire, NewItem, Transition
from cyberdesk_runner.store.tables import ACTIVE_ATTEMPT_STATUSES, attempt_t, fire_t, item_t


class Control(Aggregate):
    def cancel_pending_items(
        self,
        where_job: str | None,
        reason: str,
        now: datetime,
        *,
        fire_ids: Sequence[str] | None = None,
        item_ids: Sequence[str] | None = None,
        only_pending: bool = False,
    ) -> list[Transition]:
        """Cancel items that have no run yet, and (unless `only_pending`) ask for the runs of the others to be
        cancelled in Cyberdesk; the reaper carries that out.

        A fire (or a job's fires) still being planned is first marked planned with the items it has, in a
        transaction of its own (`plans.stop_planning`), so its planner adds none after the cancel."""
        chosen = []
        if where_job is not None:
            chosen.append(item_t.c.job_name == where_job)
        if fire_ids is not None:
            chosen.append(item_t.c.fire_id.in_(list(fire_ids)))
        if item_ids is not None:
            chosen.append(item_t.c.id.in_(list(item_ids)))
        elif (
            where_job is not None or fire_ids is not None
        ):  # whole fires: those being planned get no more items
            fires = [fire_t.c.job_name == where_job] if where_job is not None else []
            if fire_ids is not None:
                fires.append(fire_t.c.id.in_(list(fire_ids)))
            with self.core.write() as conn:
                stop_planning(self.core, conn, fires, now)
        with self.core.write() as conn:
            transitions = cancel_items(self.core, conn, chosen, reason, now, only_pending=only_pending)
            self.core.append_events(conn, now, transitions)
        return transitions

    def fail_pending_items(self, item_ids: Sequence[str], reason: str, now: datetime) -> list[Transition]:
        """Give up on items that cannot run (their desktop is gone); items no longer pending are left alone."""
        core = self.core
        with core.write() as conn:
            items = conn.execute(
                core.lock(
                    sa.select(item_t)
                    .where(item_t.c.id.in_(list(item_ids)))
                    .where(item_t.c.status == "pending")
                    .order_by(item_t.c.id)
                )
            ).all()
            transitions: list[Transition] = []
            settle: set[str] = set()
            for item in items:
                transitions += apply_item_outcome(core, conn, item, Fail(reason), None, now, settle)
            transitions += settle_fires(core, conn, settle, now)
            core.append_events(conn, now, transitions)
        return transitions

    def cancel_attempts(self, attempt_ids: Sequence[str], reason: str, now: datetime) -> int:
        """Cancel the items of these attempts (those still active); returns how many items it touched."""
        with self.core.write() as conn:
            rows = conn.execute(
                sa.select(attempt_t.c.item_id)
                .where(attempt_t.c.id.in_(list(attempt_ids)))
                .where(attempt_t.c.status.in_(ACTIVE_ATTEMPT_STATUSES))
            ).all()
        return len(self.cancel_pending_items(None, reason, now, item_ids=[r.item_id for r in rows]))

    def cancel_requested_fire(self, fire_id: str, reason: str, now: datetime) -> list[Transition]:
        """Cancel a fire that no daemon has planned yet (a manual trigger still `requested`)."""
        with self.core.write() as conn:
            row = conn.execute(
                sa.update(fire_t)
                .where(fire_t.c.id == fire_id)
                .where(fire_t.c.status == "requested")
                .values(status="cancelled", finished_at=now)
                .returning(fire_t.c.job_name)
            ).first()
            if row is None:
                return []
            transitions = [
                Transition("fire_cancelled", row.job_name, fire_id=fire_id, data={"reason": reason})
            ]
            self.core.append_events(conn, now, transitions)
        return transitions

    def retry_failed(self, fire_or_item_id: str, now: datetime) -> str | None:
        """Run failed work again as a new fire (trigger "retry", `retry_of` the old fire); returns its id.

        A fire id retries every failed item of that fire, an item id that item if it failed. The new items copy
        the old ones' inputs and desktop pins and are pending at once: a daemon dispatches them like any other.
        A fire that failed before it had items (it could not be planned) is requested again, to be planned.
        None when there is nothing failed to retry.
        """
        core = self.core
        with core.write() as conn:
            query = sa.select(item_t).where(item_t.c.status == "failed").order_by(item_t.c.seq)
            if fire_or_item_id.startswith("item_"):
                items = conn.execute(core.lock(query.where(item_t.c.id == fire_or_item_id))).all()
                fire_id = items[0].fire_id if items else None
            else:
                fire_id = fire_or_item_id
                items = conn.execute(core.lock(query.where(item_t.c.fire_id == fire_id))).all()
            old = conn.execute(sa.select(fire_t).where(fire_t.c.id == fire_id)).first() if fire_id else None
            if old is None:
                return None
            replan = not items and old.status == "failed" and old.items_total == 0
            if not items and not replan:
                return None
            retry_id = new_id("fire")
            fire = NewFire(
                old.job_name,
                "retry",
                None,
                definition_hash=old.definition_hash,
                input_overrides=old.input_overrides,
                retry_of=old.id,
                priority=any(i.priority for i in items),
            )
            status = "requested" if replan else "running"
            if replan:
                core.work_due(conn)
            conn.execute(
                sa.insert(fire_t).values(
                    **fire_values(retry_id, fire, now, status=status, items_total=len(items))
                )
            )
            insert_items(
                core,
                conn,
                retry_id,
                fire,
                [NewItem(i.inputs, i.machine_id, i.machine_name) for i in items],
                now,
            )
            retried_item = fire_or_item_id if fire_or_item_id.startswith("item_") else None
            transitions = [
                Transition(
                    "retried",
                    old.job_name,
                    fire_id=old.id,
                    item_id=retried_item,
                    data={"retry_fire": retry_id, "items": len(items)},
                ),
                Transition(
                    "fire_requested" if replan else "fire_started",
                    old.job_name,
                    fire_id=retry_id,
                    data=fire_data(fire, len(items)),
                ),
            ]
            core.append_events(conn, now, transitions)
        return retry_id
