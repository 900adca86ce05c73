"""What the daemon notices rather than changes (`store.watch`): late fires, desktops gone, daemons lost.

No state change of the runner causes these, so there is no transaction to join: each alert is keyed by a stable
subject instead (the fire; the desktop and the start of its disconnection; the daemon), and inserted with
ON CONFLICT DO NOTHING, so however many daemons notice, and however often, each is raised once. A daemon that
notices writes only alert rows and `desktop_down` rows.

Locks: none beyond the rows it inserts or deletes (`desktop_down` by machine id).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta

import sqlalchemy as sa

from cyberdesk_runner.store.consequences import AlertEvent, desktop_down_t, insert_alerts
from cyberdesk_runner.store.core import Aggregate
from cyberdesk_runner.store.tables import attempt_t, daemon_t, fire_t

#: Scheduled fires older than this are not looked at for lateness (a store with years of history, or alerts
#: configured today, must not raise one alert per old slot).
LATE_LOOKBACK = timedelta(days=1)
#: A desktop disconnected this long raises desktop_disconnected.
DISCONNECTED_AFTER = timedelta(minutes=5)


class Watch(Aggregate):
    def raise_late_fires(self, late_after: Mapping[str, timedelta], now: datetime) -> int:
        """fire_late for scheduled fires of these jobs whose first run was not created within `late_after` of
        their slot (none yet, or one created after that). Returns alert rows offered (repeats add nothing)."""
        if not late_after or not self._wanted("fire_late"):
            return 0
        first_attempt = (
            sa.select(sa.func.min(attempt_t.c.created_at))
            .where(attempt_t.c.fire_id == fire_t.c.id)
            .scalar_subquery()
        )
        query = (
            sa.select(fire_t.c.id, fire_t.c.job_name, fire_t.c.scheduled_for, first_attempt.label("first"))
            .where(fire_t.c.job_name.in_(sorted(late_after)))
            .where(fire_t.c.scheduled_for.is_not(None))
            .where(fire_t.c.scheduled_for > now - LATE_LOOKBACK)
            .where(fire_t.c.scheduled_for <= now - min(late_after.values()))
            .where(fire_t.c.status != "skipped")
        )
        with self.core.write() as conn:
            events = []
            for row in conn.execute(query):
                deadline = row.scheduled_for + late_after[row.job_name]
                if now < deadline or (row.first is not None and row.first <= deadline):
                    continue
                late = (now if row.first is None else row.first) - row.scheduled_for
                events.append(
                    AlertEvent(
                        "fire_late",
                        row.id,
                        job=row.job_name,
                        fire=row.id,
                        error=f"no run created within {_human(late_after[row.job_name])} of its slot",
                        extra={
                            "scheduled_for": row.scheduled_for.isoformat(),
                            "late_by": late.total_seconds(),
                        },
                    )
                )
            return self._insert(conn, events, now)

    def raise_disconnected(
        self,
        disconnected: Mapping[str, str],
        connected: Sequence[str],
        now: datetime,
        jobs_of: Mapping[str, Sequence[str]] | None = None,
    ) -> int:
        """Record which desktops of some job's target are disconnected (id -> label) and which are connected;
        desktop_disconnected for each disconnection older than DISCONNECTED_AFTER, once per disconnection.
        `jobs_of` (id -> the jobs whose target includes it) sends it only to routes whose `jobs:` name one of
        them; a desktop missing from it concerns every route."""
        if not self._wanted("desktop_disconnected"):
            return 0
        with self.core.write() as conn:
            if connected:
                conn.execute(
                    sa.delete(desktop_down_t).where(desktop_down_t.c.machine_id.in_(sorted(connected)))
                )
            if not disconnected:
                return 0
            conn.execute(
                self.core.insert_or_nothing(desktop_down_t, ["machine_id"]),
                [{"machine_id": m, "since": now} for m in sorted(disconnected)],
            )
            rows = conn.execute(
                sa.select(desktop_down_t)
                .where(desktop_down_t.c.machine_id.in_(sorted(disconnected)))
                .where(desktop_down_t.c.since <= now - DISCONNECTED_AFTER)
            ).all()
            jobs = jobs_of or {}
            events = []
            for r in rows:
                concerned = tuple(sorted(jobs[r.machine_id])) if r.machine_id in jobs else None
                events.append(
                    AlertEvent(
                        "desktop_disconnected",
                        f"{r.machine_id}@{r.since.isoformat()}",
                        desktop=disconnected[r.machine_id],
                        error=f"disconnected since {r.since.isoformat()}",
                        extra={"machine_id": r.machine_id, "since": r.since.isoformat()}
                        | ({"jobs": list(concerned)} if concerned is not None else {}),
                        jobs=concerned,
                    )
                )
            return self._insert(conn, events, now)

    def raise_lost_daemons(self, me: str, lost_after: timedelta, now: datetime) -> int:
        """daemon_lost for each other daemon that stopped heartbeating `lost_after` ago without a clean stop."""
        if not self._wanted("daemon_lost"):
            return 0
        with self.core.write() as conn:
            rows = conn.execute(
                sa.select(daemon_t.c.id, daemon_t.c.host, daemon_t.c.pid, daemon_t.c.heartbeat_at)
                .where(daemon_t.c.id != me)
                .where(daemon_t.c.stopped_at.is_(None))
                .where(daemon_t.c.heartbeat_at < now - lost_after)
            ).all()
            events = [
                AlertEvent(
                    "daemon_lost",
                    r.id,
                    error=f"no heartbeat since {r.heartbeat_at.isoformat()} and no clean stop",
                    extra={"daemon": r.id, "host": r.host, "pid": r.pid},
                )
                for r in rows
            ]
            return self._insert(conn, events, now)

    def _wanted(self, event: str) -> bool:
        return any(event in route.on for route in self.core.outbox_rules.routes)

    def _insert(self, conn: sa.Connection, events: list[AlertEvent], now: datetime) -> int:
        if not events:
            return 0
        return insert_alerts(conn, now, events, self.core.outbox_rules.routes, self.core.insert_or_nothing)


def _human(span: timedelta) -> str:
    seconds = int(span.total_seconds())
    return f"{seconds // 60}m" if seconds % 60 == 0 and seconds >= 60 else f"{seconds}s"
