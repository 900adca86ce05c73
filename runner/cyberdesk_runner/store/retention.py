"""Retention: deleting history past its keep time (`store.retention`).

Finished fires go with their items, attempts, events and result-file records, a batch per transaction; then
events of no fire, then daemons not seen since, then alerts sent (failed and pending ones stay, for `alerts` to show). Unfinished work is never touched.

Locks: the fires of a batch (FOR UPDATE SKIP LOCKED, so a fire another transaction holds waits for the next
run); their events, attempts and items are deleted after them. Run it under a lease
(`store.daemons.try_lease("retention", ...)`) so that one daemon does it.
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa

from cyberdesk_runner.store.consequences import alert_t, result_file_t
from cyberdesk_runner.store.core import Aggregate
from cyberdesk_runner.store.files import attempt_file_t, output_file_t
from cyberdesk_runner.store.records import FINAL_FIRE_STATUSES
from cyberdesk_runner.store.tables import (
    ACTIVE_ATTEMPT_STATUSES,
    OPEN_ITEM_STATUSES,
    attempt_t,
    daemon_t,
    event_t,
    fire_t,
    item_t,
    step_run_t,
)


class Retention(Aggregate):
    def purge(self, older_than: datetime, batch: int = 1000) -> int:
        """Delete history older than `older_than`; returns the number of fires deleted.

        Fires finished before then go with their items, attempts and events, `batch` fires per transaction (so
        no transaction grows large and the daemons' own work interleaves); then events that belong to no fire
        and daemons not seen since then, and alerts sent before then (failed ones stay visible). Unfinished work is never touched: a fire goes only when it is final
        and none of its items or attempts is still open.
        """
        total = 0
        while True:
            deleted = self._purge_fires(older_than, batch)
            total += deleted
            if deleted < batch:
                break
        while self._purge_loose_events(older_than, batch * 10) == batch * 10:
            pass
        with self.core.write() as conn:
            conn.execute(sa.delete(daemon_t).where(daemon_t.c.heartbeat_at < older_than))
            conn.execute(
                sa.delete(alert_t).where(
                    sa.or_(  # a digested alert was told in its digest
                        sa.and_(alert_t.c.status == "sent", alert_t.c.sent_at < older_than),
                        sa.and_(alert_t.c.status == "digested", alert_t.c.created_at < older_than),
                    )
                )
            )
        return total

    def _purge_fires(self, older_than: datetime, batch: int) -> int:
        open_items = (
            sa.select(item_t.c.id)
            .where(item_t.c.fire_id == fire_t.c.id)
            .where(item_t.c.status.in_(OPEN_ITEM_STATUSES))
        )
        open_attempts = (
            sa.select(attempt_t.c.id)
            .where(attempt_t.c.fire_id == fire_t.c.id)
            .where(attempt_t.c.status.in_(ACTIVE_ATTEMPT_STATUSES))
        )
        query = (
            sa.select(fire_t.c.id)
            .where(fire_t.c.status.in_(sorted(FINAL_FIRE_STATUSES)))
            .where(fire_t.c.finished_at < older_than)
            .where(~sa.exists(open_items), ~sa.exists(open_attempts))
            .order_by(fire_t.c.finished_at, fire_t.c.id)
            .limit(batch)
        )
        with self.core.write() as conn:
            ids = list(conn.execute(self.core.lock(query, skip_locked=True, of=fire_t)).scalars())
            if ids:
                conn.execute(sa.delete(event_t).where(event_t.c.fire_id.in_(ids)))
                conn.execute(sa.delete(result_file_t).where(result_file_t.c.fire_id.in_(ids)))
                attempts = sa.select(attempt_t.c.id).where(attempt_t.c.fire_id.in_(ids))
                conn.execute(sa.delete(step_run_t).where(step_run_t.c.attempt_id.in_(attempts)))
                conn.execute(sa.delete(attempt_file_t).where(attempt_file_t.c.fire_id.in_(ids)))
                conn.execute(sa.delete(output_file_t).where(output_file_t.c.fire_id.in_(ids)))
                conn.execute(sa.delete(attempt_t).where(attempt_t.c.fire_id.in_(ids)))
                conn.execute(sa.delete(item_t).where(item_t.c.fire_id.in_(ids)))
                conn.execute(sa.delete(fire_t).where(fire_t.c.id.in_(ids)))
        return len(ids)

    def _purge_loose_events(self, older_than: datetime, batch: int) -> int:
        """Events of no fire (job changes, unknown runs) older than `older_than`, `batch` at a time."""
        with self.core.write() as conn:
            ids = list(
                conn.execute(
                    sa.select(event_t.c.id)
                    .where(event_t.c.at < older_than)
                    .where(event_t.c.fire_id.is_(None))
                    .order_by(event_t.c.at)
                    .limit(batch)
                ).scalars()
            )
            if ids:
                conn.execute(sa.delete(event_t).where(event_t.c.id.in_(ids)))
        return len(ids)
