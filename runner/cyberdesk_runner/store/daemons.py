"""Daemons and named leases: who is running, their heartbeats, and which daemon does a singleton job (`store.daemons`).

A named lease ("reaper", "retention", ...) is held by one daemon until it lapses or is released; a daemon that
stops renewing it (it died) loses it to the next one that asks.

Locks: one row each (the daemon's own, or the lease's); no transaction here touches work rows.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa

from cyberdesk_runner.store.core import Aggregate
from cyberdesk_runner.store.tables import daemon_t, lease_t


class Daemons(Aggregate):
    def register(self, daemon_id: str, host: str, pid: int, now: datetime) -> None:
        with self.core.write() as conn:
            conn.execute(
                sa.insert(daemon_t).values(id=daemon_id, host=host, pid=pid, started_at=now, heartbeat_at=now)
            )

    def heartbeat(
        self, daemon_id: str, health: Mapping[str, Any], now: datetime, *, stopped: bool = False
    ) -> None:
        with self.core.write() as conn:
            conn.execute(
                sa.update(daemon_t)
                .where(daemon_t.c.id == daemon_id)
                .values(heartbeat_at=now, health=dict(health), stopped_at=now if stopped else None)
            )

    def try_lease(self, name: str, holder: str, now: datetime, duration: timedelta) -> bool:
        """Take or renew a named lease; True when `holder` holds it until now + duration."""
        with self.core.write() as conn:
            conn.execute(
                self.core.insert_or_nothing(lease_t, ["name"]).values(
                    name=name, holder=holder, expires_at=now
                )
            )
            taken = conn.execute(
                sa.update(lease_t)
                .where(lease_t.c.name == name)
                .where(sa.or_(lease_t.c.holder == holder, lease_t.c.expires_at <= now))
                .values(holder=holder, expires_at=now + duration)
            ).rowcount
            return bool(taken)

    def release_leases(self, holder: str) -> None:
        """Give up every lease `holder` has (a daemon stopping cleanly), so others take over at once."""
        with self.core.write() as conn:
            conn.execute(sa.delete(lease_t).where(lease_t.c.holder == holder))
