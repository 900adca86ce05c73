"""The questions of the daemon's status page that no other aggregate answers: `store.page`.

The page also asks existing questions by name (`store.jobs.get`, `store.fires.last_by_job`,
`store.tracking.in_flight_by_job`, `store.queries.*`); only what it alone needs is here. Every query is bounded by an index:
fires by status (ix_fire_status), attempts holding a desktop by status (ix_attempt_status_created).
"""

from __future__ import annotations

from datetime import datetime

import attrs
import sqlalchemy as sa

from cyberdesk_runner.store.core import Aggregate, StoreCore
from cyberdesk_runner.store.queries import Queries
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


class Page(Aggregate):
    """Read-only questions of the status page; each one read transaction."""

    def __init__(self, core: StoreCore) -> None:
        super().__init__(core)
        # Fires come with their item counts exactly as the CLI's listings count them.
        self._queries = Queries(core)

    def job_headers(self) -> list[JobHeader]:
        """Every job not removed, by name: no definitions, so 1,000 jobs read in a few milliseconds."""
        query = (
            sa.select(job_t.c.name, job_t.c.definition_hash, job_t.c.paused)
            .where(job_t.c.removed_at.is_(None))
            .order_by(job_t.c.name)
        )
        with self.core.read() as conn:
            return [JobHeader(*row) for row in conn.execute(query)]

    def fires_in_flight(self, *, limit: int = 50) -> FiresInFlight:
        """Fires requested or running, newest first (the first `limit`), with item counts."""
        open_fire = fire_t.c.status.in_(OPEN_FIRE_STATUSES)
        with self.core.read() as conn:
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
            return FiresInFlight(self._queries._with_counts(conn, rows), total)

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
        with self.core.read() as conn:
            return [BusyDesktop(*row) for row in conn.execute(query)]
