"""The outbox (`store.outbox`): raise alerts, claim due ones (with the flood digest), record how a try went;
claim and settle result files. Tables and what state changes record in them live in consequences.py
(run by `core.append_events`, so an alert commits with the change that causes it).

Locks: due alert rows (FOR UPDATE SKIP LOCKED on PostgreSQL, so two senders never share one); one alert row by
id when a try is recorded. No other table's rows are locked here.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from cyberdesk_runner.store.consequences import (
    AlertEvent,
    AlertRoute,
    AlertView,
    DueAlert,
    OutboxRules,
    alert_id,
    alert_t,
    alert_view,
    backoff,
    due_alert,
    insert_alerts,
    result_file_t,
)
from cyberdesk_runner.store.core import Aggregate

#: At most this many alerts per destination per minute; the rest of a flood becomes one digest.
FLOOD_LIMIT = 10
FLOOD_WINDOW = timedelta(minutes=1)
#: Sending gives up on an alert this long after it was raised.
GIVE_UP_AFTER = timedelta(hours=24)
_CLAIM_BATCH = 500


class Outbox(Aggregate):
    @property
    def rules(self) -> OutboxRules:
        """Which alerts and result files state changes record; the daemon sets them from its config."""
        return self.core.outbox_rules

    @rules.setter
    def rules(self, rules: OutboxRules) -> None:
        self.core.outbox_rules = rules

    # -- alerts ----------------------------------------------------------------------------------------

    def raise_alerts(self, events: Sequence[AlertEvent], routes: Sequence[AlertRoute], now: datetime) -> int:
        """Record alerts the daemon noticed (late fire, desktop gone, daemon lost, a test); each once by id."""
        with self.core.write() as conn:
            return insert_alerts(conn, now, events, routes, self.core.insert_or_nothing)

    def claim_alerts(self, now: datetime, hold: timedelta) -> list[DueAlert]:
        """Due alerts for this sender, held for `hold` (no other sender takes them meanwhile).

        Per destination at most FLOOD_LIMIT a minute go out one by one; the rest of a flood is folded, in this
        transaction, into one digest alert (one per minute per destination), which is claimed at once.
        """
        with self.core.write() as conn:
            due = conn.execute(
                self.core.lock(
                    sa.select(alert_t)
                    .where(alert_t.c.status == "pending", alert_t.c.next_try_at <= now)
                    .order_by(alert_t.c.created_at, alert_t.c.id)
                    .limit(_CLAIM_BATCH),
                    skip_locked=True,
                )
            ).all()
            by_destination: dict[str, list[Any]] = {}
            for row in due:
                by_destination.setdefault(row.destination, []).append(row)
            claimed: list[DueAlert] = []
            for destination, rows in by_destination.items():
                claimed += self._take_within_limit(conn, destination, rows, now)
            if claimed:
                conn.execute(
                    sa.update(alert_t)
                    .where(alert_t.c.id.in_([a.id for a in claimed]))
                    .values(next_try_at=now + hold)
                )
            return claimed

    def _take_within_limit(
        self, conn: Connection, destination: str, rows: list[Any], now: datetime
    ) -> list[DueAlert]:
        since = now - FLOOD_WINDOW
        recent = conn.execute(
            sa.select(alert_t.c.type).where(alert_t.c.destination == destination, alert_t.c.sent_at >= since)
        ).scalars()
        recent_types = list(recent)
        budget = max(0, FLOOD_LIMIT - sum(1 for t in recent_types if t != "digest"))
        digests = [r for r in rows if r.type == "digest"]
        plain = [r for r in rows if r.type != "digest"]
        taken = [due_alert(r) for r in digests + plain[:budget]]
        rest = plain[budget:]
        digest_lately = (
            "digest" in recent_types
            or conn.execute(
                sa.select(alert_t.c.id).where(
                    alert_t.c.destination == destination,
                    alert_t.c.type == "digest",
                    alert_t.c.created_at >= since,
                )
            ).first()
        )
        if not rest or digest_lately:
            return taken  # the rest waits for the next minute
        conn.execute(
            sa.update(alert_t).where(alert_t.c.id.in_([r.id for r in rest])).values(status="digested")
        )
        kinds = Counter((r.type, r.job_name) for r in rest)
        ident = alert_id(destination, "digest", rest[0].id)
        payload = {
            "type": "digest",
            "id": ident,
            "at": now.isoformat(),
            "count": len(rest),
            "summary": "; ".join(
                _summary(n, t, j) for (t, j), n in sorted(kinds.items(), key=lambda x: -x[1])
            ),
            "events": [{"type": t, "job": j, "count": n} for (t, j), n in sorted(kinds.items(), key=str)],
        }
        conn.execute(
            sa.insert(alert_t).values(
                id=ident,
                destination=destination,
                type="digest",
                job_name=None,
                status="pending",
                payload=payload,
                created_at=now,
                next_try_at=now,
                tries=0,
            )
        )
        return [*taken, DueAlert(ident, destination, "digest", None, payload, now, 0)]

    def release_claims(self, alerts: Sequence[str], now: datetime) -> None:
        """Give back alerts claimed but not sent (a sender stopping cleanly): due again now, for any sender."""
        if not alerts:
            return
        with self.core.write() as conn:
            conn.execute(
                sa.update(alert_t)
                .where(alert_t.c.id.in_(sorted(alerts)), alert_t.c.status == "pending")
                .where(alert_t.c.next_try_at > now)
                .values(next_try_at=now)
            )

    def alert_sent(self, alert: str, now: datetime) -> None:
        with self.core.write() as conn:
            conn.execute(
                sa.update(alert_t)
                .where(alert_t.c.id == alert, alert_t.c.status == "pending")
                .values(status="sent", sent_at=now, tries=alert_t.c.tries + 1, last_error=None)
            )

    def alert_try_failed(
        self, alert: str, error: str, now: datetime, retry_after: timedelta | None = None
    ) -> str:
        """Record a failed try; the alert is tried again with backoff, or given up after 24 h. Returns its
        status (pending or failed)."""
        with self.core.write() as conn:
            row = conn.execute(self.core.lock(sa.select(alert_t).where(alert_t.c.id == alert))).first()
            if row is None or row.status != "pending":
                return row.status if row is not None else "failed"
            tries = row.tries + 1
            wait = max(backoff(tries), retry_after or timedelta(0))
            status = "failed" if now + wait - row.created_at > GIVE_UP_AFTER else "pending"
            conn.execute(
                sa.update(alert_t)
                .where(alert_t.c.id == alert)
                .values(status=status, tries=tries, last_error=error[:200], next_try_at=now + wait)
            )
            return status

    def alert_views(self, *, status: str | None = None, limit: int = 50) -> list[AlertView]:
        query = sa.select(alert_t).order_by(alert_t.c.created_at.desc(), alert_t.c.id).limit(limit)
        if status is not None:
            query = query.where(alert_t.c.status == status)
        with self.core.read() as conn:
            return [alert_view(r) for r in conn.execute(query)]

    def alert_counts(self) -> dict[str, int]:
        with self.core.read() as conn:
            return dict(
                conn.execute(sa.select(alert_t.c.status, sa.func.count()).group_by(alert_t.c.status)).all()
            )

    # -- result files ----------------------------------------------------------------------------------

    def pending_result_files(self, limit: int = 20) -> list[tuple[str, str, str]]:
        """(fire id, job name, format) of fires whose result file is still to be written, oldest first."""
        with self.core.read() as conn:
            rows = conn.execute(
                sa.select(result_file_t.c.fire_id, result_file_t.c.job_name, result_file_t.c.format)
                .where(result_file_t.c.status == "pending")
                .order_by(result_file_t.c.created_at, result_file_t.c.fire_id)
                .limit(limit)
            ).all()
        return [(r.fire_id, r.job_name, r.format) for r in rows]

    def result_file_settled(
        self, fire_id: str, status: str, path: str | None, now: datetime, error: str | None = None
    ) -> None:
        """Record what became of a fire's result file: written, existed (not rewritten) or failed."""
        with self.core.write() as conn:
            conn.execute(
                sa.update(result_file_t)
                .where(result_file_t.c.fire_id == fire_id)
                .values(status=status, path=path, written_at=now, error=error)
            )

    def result_file(self, fire_id: str) -> tuple[str, str | None] | None:
        """(status, path) of a fire's result file, None when its job writes none."""
        with self.core.read() as conn:
            row = conn.execute(
                sa.select(result_file_t.c.status, result_file_t.c.path).where(
                    result_file_t.c.fire_id == fire_id
                )
            ).first()
        return (row.status, row.path) if row is not None else None


def _summary(count: int, event: str, job: str | None) -> str:
    what = {
        "item_failed": "items {job} failed",
        "fire_failed": "fires of {job} failed",
        "fire_succeeded": "fires of {job} succeeded",
        "fire_skipped": "slots of {job} skipped",
        "fire_late": "fires of {job} late",
        "desktop_disconnected": "desktops disconnected",
        "daemon_lost": "daemons lost",
    }.get(event, event + " events")
    return f"{count} more " + what.format(job=f"of {job}" if event == "item_failed" else job or "jobs")
