"""Control: what people (the CLI) and the daemon ask of work already recorded: cancel, fail, retry (`store.control`).

Cancelling ends pending items at once and asks for running items' runs to be cancelled in Cyberdesk (the reaper
carries that out); failing gives up on pending items that cannot run; retrying runs failed work again as a new
fire (a whole fire's failed items by chunks: `store.plans.start_retry`). The rules of items themselves live in
`items`.

A whole fire's cancel goes by chunks (`bulk.cancel_fire`): `request_cancel` marks the fire (`cancel_reason`, its
plan ended, dispatch takes none of its items from then on) and claims the work until `cancel_lease_until`;
each `cancel_chunk` cancels the next pending items and flags the next running ones not flagged yet, checked again
under their locks, and renews the claim (cleared after the last chunk). A claim that lapsed or was given back
(`release_cancel`) is taken by any daemon (`cancels_to_continue`, `claim_cancel`).

Locks, in the one order attempt -> item -> fire: cancels lock the running items' active attempts by id, then
the items by id, then settle fires by id (`items.cancel_items`, `items.cancel_item_ids`), then (a chunk) the
fire's claim; `request_cancel` locks the fire alone; `fail_pending_items` and `retry_failed` lock items (by id)
and settle or insert fires after them.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

import sqlalchemy as sa

from cyberdesk_runner.store.core import Aggregate, new_id
from cyberdesk_runner.store.fires import fire_data, fire_values, retry_of
from cyberdesk_runner.store.items import (
    apply_item_outcome,
    ask_cancels,
    cancel_item_ids,
    cancel_items,
    fire_window,
    insert_items,
    settle_fires,
)
from cyberdesk_runner.store.plans import Plans, stop_planning
from cyberdesk_runner.store.records import (
    CancelChunk,
    CancelStart,
    Fail,
    NewItem,
    Transition,
)
from cyberdesk_runner.store.tables import ACTIVE_ATTEMPT_STATUSES, attempt_t, fire_t, item_t, job_t

#: How long the process cancelling a fire's items holds that work without a chunk; then any daemon continues it.
CANCEL_LEASE = timedelta(seconds=15)


class Control(Aggregate):
    def cancel_pending_items(
        self,
        where_job: str | None,
        reason: str,
        now: datetime,
        *,
        fire_ids: Sequence[str] | None = None,
        item_ids: Sequence[str] | None = None,
    ) -> list[Transition]:
        """Cancel items that have no run yet, and ask for the runs of the others to be cancelled in Cyberdesk;
        the reaper carries that out. (A whole big fire goes by chunks: `request_cancel`; a removed job's
        pending items too: `cancel_pending_of_removed_jobs`.)

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
            transitions = cancel_items(self.core, conn, chosen, reason, now, only_pending=False)
            self.core.append_events(conn, now, transitions)
        return transitions

    # -- a removed job's pending items, by chunks --------------------------------------------------------

    def stop_plans_of_job(self, job_name: str, now: datetime) -> None:
        """End the plans under way of a job's fires with the items they have (a removed job: its planner adds
        none after its pending items are cancelled)."""
        with self.core.write() as conn:
            stop_planning(self.core, conn, [fire_t.c.job_name == job_name], now)

    def cancel_pending_of_removed_jobs(
        self, reason: str, now: datetime, *, limit: int
    ) -> tuple[list[Transition], bool]:
        """Cancel at most `limit` pending items of jobs removed from the job files (their running items finish);
        True as second value when none is left. Any daemon may call this at any time, as often as it likes:
        an item already cancelled, or started by a daemon that had not seen the removal yet, is left alone
        (checked again under its lock), so a cancel stopped midway is finished by the next call.

        Looked for first in a read (every daemon asks once a second; there is seldom anything), one removed job
        at a time by the job queue's index (job, status, ...): never a scan of every pending item."""
        core = self.core
        ids: list[str] = []
        with core.read() as conn:
            removed = (
                conn.execute(sa.select(job_t.c.name).where(job_t.c.removed_at.is_not(None))).scalars().all()
            )
            for name in removed:
                ids += conn.execute(
                    sa.select(item_t.c.id)
                    .where(item_t.c.job_name == name, item_t.c.status == "pending")
                    .limit(limit - len(ids))
                ).scalars()
                if len(ids) >= limit:
                    break
        if not ids:
            return [], True
        with core.write() as conn:
            transitions = cancel_items(core, conn, [item_t.c.id.in_(ids)], reason, now, only_pending=True)
            core.append_events(conn, now, transitions)
        return transitions, len(ids) < limit

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

        An item id retries that item if it failed, in one transaction. A fire id retries every failed item of
        that fire, copied by chunks (`store.plans.start_retry`, `Plans.retry`; the CLI sizes them by time,
        `bulk.retry_fire`). The new items copy the old ones' inputs and desktop pins and are pending at once: a
        daemon dispatches them like any other. A fire that failed before it had items (it could not be planned)
        is requested again, to be planned. None when there is nothing failed to retry.
        """
        if not fire_or_item_id.startswith("item_"):
            return Plans(self.core).retry(fire_or_item_id, now)
        core = self.core
        with core.write() as conn:
            query = sa.select(item_t).where(item_t.c.status == "failed", item_t.c.id == fire_or_item_id)
            item = conn.execute(core.lock(query)).first()
            if item is None:
                return None
            old = conn.execute(sa.select(fire_t).where(fire_t.c.id == item.fire_id)).one()
            retry_id = new_id("fire")
            fire = retry_of(old, priority=item.priority)
            conn.execute(
                sa.insert(fire_t).values(**fire_values(retry_id, fire, now, status="running", items_total=1))
            )
            insert_items(
                core, conn, retry_id, fire, [NewItem(item.inputs, item.machine_id, item.machine_name)], now
            )
            transitions = [
                Transition(
                    "retried",
                    old.job_name,
                    fire_id=old.id,
                    item_id=item.id,
                    data={"retry_fire": retry_id, "items": 1},
                ),
                Transition("fire_started", old.job_name, fire_id=retry_id, data=fire_data(fire, 1)),
            ]
            core.append_events(conn, now, transitions)
        return retry_id

    # -- a whole fire's cancel, by chunks ----------------------------------------------------------------

    def request_cancel(
        self, fire_id: str, reason: str, now: datetime, *, lease: timedelta = CANCEL_LEASE
    ) -> CancelStart | None:
        """Ask for a fire's cancel. A fire still requested is cancelled at once. A running one is marked (its
        plan, if one is under way, ends with the items it has; dispatch takes none of its items any more) and
        claimed by this process until now + `lease`, to cancel its items by chunks (`cancel_chunk`). None when
        the fire is not there or has ended.

        The mark is the request: if the process stops between chunks, `cancels_to_continue` hands the rest to
        any daemon once the claim lapses. A fire whose cancel was asked before keeps its first reason."""
        core = self.core
        with core.write() as conn:
            row = conn.execute(core.lock(sa.select(fire_t).where(fire_t.c.id == fire_id))).first()
            if row is None or row.status not in ("requested", "running"):
                return None
            # Only the fire's row is locked here (its items are locked by the chunks, before the fire).
            transitions = ask_cancels(conn, [row], reason, now, lease_until=now + lease)
            core.append_events(conn, now, transitions)
            recorded = row.cancel_reason if row.cancel_reason is not None else reason
            return CancelStart(transitions, chunks=row.status == "running", reason=recorded)

    def cancel_chunk(
        self, fire_id: str, after_seq: int, now: datetime, *, limit: int, lease: timedelta = CANCEL_LEASE
    ) -> CancelChunk:
        """Cancel the open items among the next `limit` items (seq after `after_seq`) of a fire whose cancel was
        asked: pending ones at once, running ones flagged (the reaper cancels their runs); and renew the claim.
        Items already cancelled or flagged are not touched again, whoever asked (exactly once, however many
        processes continue the cancel, from wherever they start). `done` when the fire has no item after these.

        The window is read in seq order, its statuses looked at here: each chunk reads `limit` rows by the fire's
        (fire, seq) index, whatever the database believes of the table (on a PostgreSQL table not analyzed since
        the fire's items went in, a condition on status was planned as a read of every open item, each chunk)."""
        core = self.core
        with core.write() as conn:
            reason = conn.execute(sa.select(fire_t.c.cancel_reason).where(fire_t.c.id == fire_id)).scalar()
            if reason is None:
                return CancelChunk([], after_seq, done=True)
            rows = fire_window(conn, fire_id, after_seq, limit)
            due = [
                r.id
                for r in rows
                if r.status == "pending" or (r.status == "running" and not r.cancel_requested)
            ]
            # Checked again under the items' locks: another process's chunk may have taken some.
            transitions = cancel_item_ids(core, conn, due, reason, now) if due else []
            done = len(rows) < limit
            conn.execute(
                sa.update(fire_t)
                .where(fire_t.c.id == fire_id, fire_t.c.cancel_lease_until.is_not(None))
                .values(cancel_lease_until=None if done else now + lease)
            )
            core.append_events(conn, now, transitions)
            return CancelChunk(transitions, rows[-1].seq if rows else after_seq, done)

    def cancels_to_continue(self, now: datetime, limit: int = 20) -> list[str]:
        """Fires whose cancel was asked and not carried through, their claim lapsed (the process cancelling their
        items stopped midway): any daemon continues them (`claim_cancel`, then `cancel_chunk`)."""
        with self.core.read() as conn:
            rows = conn.execute(
                sa.select(fire_t.c.id)
                .where(fire_t.c.status == "running", fire_t.c.cancel_lease_until <= now)
                .order_by(fire_t.c.cancel_lease_until, fire_t.c.id)
                .limit(limit)
            )
            return [r.id for r in rows]

    def claim_cancel(self, fire_id: str, now: datetime, *, lease: timedelta = CANCEL_LEASE) -> bool:
        """Take over a fire's cancel whose claim lapsed; False when another process holds it or it is over."""
        with self.core.write() as conn:
            claimed = conn.execute(
                sa.update(fire_t)
                .where(
                    fire_t.c.id == fire_id, fire_t.c.status == "running", fire_t.c.cancel_lease_until <= now
                )
                .values(cancel_lease_until=now + lease)
                .returning(fire_t.c.id)
            ).first()
            return claimed is not None

    def release_cancel(self, fire_id: str, now: datetime) -> None:
        """Give back the claim on a fire's cancel stopped midway (a clean stop): any daemon continues it at once."""
        with self.core.write() as conn:
            conn.execute(
                sa.update(fire_t)
                .where(fire_t.c.id == fire_id, fire_t.c.cancel_lease_until.is_not(None))
                .values(cancel_lease_until=now)
            )
            self.core.work_due(conn)
