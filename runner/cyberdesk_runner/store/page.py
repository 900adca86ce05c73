"""The questions of the daemon's status page that `StoreQueries` does not already answer, as a mixin of `Store`.

The page also asks existing questions by name (`job`, `last_fire_by_job`, `in_flight_by_job`, `attempt_views`,
`daemon_views`, `fire_views`, `resolve`); only what it alone needs is here. Every query is bounded by an index:
fires by status (ix_fire_status), attempts holding a desktop by status (ix_attempt_status_created).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from datetime import datetime
from typing import TYPE_CHECKING, Any

import attrs
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from cyberdesk_runner.store.tables import ACTIVE_ATTEMPT_STATUSES, attempt_t, fire_t, job_t
from cyberdesk_runner.store.views import FireView

#: Fire statuses of fires not finished: planned or about to be.
OPEN_FIRE_STATUSES = ("requested", "running")


@attrs.frozen
class FiresInFlight:
    """The newest open fires (with their item counts) and how many are open in all."""

    fires: list[FireView]
    total: int


@attrs.frozen
class JobHeader:
    """A job without its definition (which the page reads once per definition hash)."""

    name: str
    definition_hash: str
    paused: bool


@attrs.frozen
class BusyDesktop:
    """A desktop one of our runs holds (or may hold: the create call is under way)."""

    machine_id: str
    machine_name: str | None
    job_name: str
    fire_id: str
    item_id: str
    attempt_id: str
    status: str
    since: datetime


class StorePage:
    """Read-only questions of the status page; `Store` provides the read transaction."""

    if TYPE_CHECKING:
        _read: Callable[[], AbstractContextManager[Connection]]

        def _with_counts(self, conn: Connection, rows: Sequence[Any]) -> list[FireView]: ...

    def job_headers(self) -> list[JobHeader]:
        """Every job not removed, by name: no definitions, so 1,000 jobs read in a few milliseconds."""
        query = (
            sa.select(job_t.c.name, job_t.c.definition_hash, job_t.c.paused)
            .where(job_t.c.removed_at.is_(None))
            .order_by(job_t.c.name)
        )
        with self._read() as conn:
            return [JobHeader(*row) for row in conn.execute(query)]

    def fires_in_flight(self, *, limit: int = 50) -> FiresInFlight:
        """Fires requested or running, newest first (the first `limit`), with item counts."""
        open_fire = fire_t.c.status.in_(OPEN_FIRE_STATUSES)
        with self._read() as conn:
            rows = conn.execute(
                sa.select(fire_t)
                .where(open_fire)
                .order_by(fire_t.c.created_at.desc(), fire_t.c.id.desc())
                .limit(limit)
            ).all()
            total = len(rows)
            if total == limit:
                total = conn.execute(
                    sa.select(sa.func.count()).select_from(fire_t).where(open_fire)
                ).scalar_one()
            return FiresInFlight(self._with_counts(conn, rows), total)

    def busy_desktops(self) -> list[BusyDesktop]:
        """Every desktop our runs hold, with the job, fire, item and attempt holding it."""
        query = sa.select(
            attempt_t.c.machine_id,
            attempt_t.c.machine_name,
            attempt_t.c.job_name,
            attempt_t.c.fire_id,
            attempt_t.c.item_id,
            attempt_t.c.id,
            attempt_t.c.status,
            sa.func.coalesce(attempt_t.c.started_at, attempt_t.c.created_at).label("since"),
        ).where(attempt_t.c.status.in_(ACTIVE_ATTEMPT_STATUSES))
        with self._read() as conn:
            return [BusyDesktop(*row) for row in conn.execute(query)]
