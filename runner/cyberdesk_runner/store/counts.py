"""Counts for the daemon's own bookkeeping: work waiting now, and what became of work since a time (`store.counts`).

Reads only; no locks.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime

import sqlalchemy as sa

from cyberdesk_runner.store.core import Aggregate
from cyberdesk_runner.store.records import JobSummary, WorkCounts
from cyberdesk_runner.store.tables import (
    ACTIVE_ATTEMPT_STATUSES,
    OPEN_ITEM_STATUSES,
    attempt_t,
    fire_t,
    item_t,
    job_t,
    step_run_t,
)


class Counts(Aggregate):
    def work(self) -> WorkCounts:
        """Fires waiting to be planned (or planned only in part: `store.plans`), items open, attempts in flight."""
        unplanned = sa.or_(
            fire_t.c.status == "requested",
            sa.and_(fire_t.c.status == "running", fire_t.c.planned_at.is_(None)),
        )
        with self.core.read() as conn:
            fires = conn.execute(sa.select(sa.func.count()).select_from(fire_t).where(unplanned)).scalar_one()
            items: dict[str, int] = dict(
                conn.execute(
                    sa.select(item_t.c.status, sa.func.count())
                    .where(item_t.c.status.in_(OPEN_ITEM_STATUSES))
                    .group_by(item_t.c.status)
                ).all()
            )
            attempts: dict[str, int] = dict(
                conn.execute(
                    sa.select(attempt_t.c.status, sa.func.count())
                    .where(attempt_t.c.status.in_(ACTIVE_ATTEMPT_STATUSES))
                    .group_by(attempt_t.c.status)
                ).all()
            )
        return WorkCounts(
            requested_fires=fires,
            pending_items=items.get("pending", 0),
            running_items=items.get("running", 0),
            creating_attempts=attempts.get("creating", 0),
            in_flight_attempts=sum(attempts.values()),
        )

    def summary_since(self, since: datetime) -> list[JobSummary]:
        """Per job: what became of the items created or finished since `since` (the daemon's exit summary)."""
        with self.core.read() as conn:
            items = conn.execute(
                sa.select(item_t.c.job_name, item_t.c.status, item_t.c.attempts).where(
                    sa.or_(item_t.c.created_at >= since, item_t.c.finished_at >= since)
                )
            ).all()
            runs: dict[str, int] = dict(
                conn.execute(
                    sa.select(attempt_t.c.job_name, sa.func.count())
                    .where(attempt_t.c.created_at >= since)
                    .where(attempt_t.c.run_id.is_not(None))
                    .group_by(attempt_t.c.job_name)
                ).all()
            )
            # A chain's attempt holds its first step's run; its other steps are runs too.
            for name, more in conn.execute(
                sa.select(attempt_t.c.job_name, sa.func.count())
                .select_from(attempt_t.join(step_run_t, step_run_t.c.attempt_id == attempt_t.c.id))
                .where(attempt_t.c.created_at >= since, step_run_t.c.step_index > 0)
                .group_by(attempt_t.c.job_name)
            ):
                runs[name] = runs.get(name, 0) + more
            failed_fires: dict[str, int] = dict(
                conn.execute(
                    sa.select(fire_t.c.job_name, sa.func.count())
                    .where(fire_t.c.created_at >= since)
                    .where(fire_t.c.status == "failed")
                    .where(fire_t.c.items_total == 0)
                    .group_by(fire_t.c.job_name)
                ).all()
            )
            definitions = {
                r.name: r.definition or {}
                for r in conn.execute(
                    sa.select(job_t.c.name, job_t.c.definition).where(
                        job_t.c.name.in_(sorted({r.job_name for r in items} | set(failed_fires)))
                    )
                )
            }
        per_job: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
        for name in failed_fires:
            per_job[name]
        for row in items:
            per_job[row.job_name][row.status] += 1
            if row.attempts > 1:
                per_job[row.job_name]["retried"] += 1
        return [
            JobSummary(
                name,
                c["succeeded"],
                c["failed"],
                c["cancelled"],
                c["retried"],
                runs.get(name, 0),
                failed_fires.get(name, 0),
                len(definitions.get(name, {}).get("steps") or ()),
                (definitions.get(name, {}).get("after") or {}).get("job"),
            )
            for name, c in sorted(per_job.items())
        ]
