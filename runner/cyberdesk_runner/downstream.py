"""Upstream fire ends -> downstream fires: the jobs with `after:` (dispatcher and performers).

Each round, for every `after:` job, the store is asked for fires of its upstream job that ended as `when` says
and have no fire of this job after them; each gets exactly one downstream fire (trigger `after`), with:
- without `items_from_output`: the job's own items, as a manual fire would have;
- with it: one item per element of the list at that path in the output of each succeeded upstream item (a
  mapping element's keys become inputs, a scalar goes under `value`; a mapping gives one item), ordered by
  upstream item then element, merged over the job's `inputs`; no element at all records a skipped fire. For a
  multi-step upstream job a path starting with a step alias reads that step's output, any other the last step's.
A downstream fire with more items than one chunk (either way) is recorded `requested` and planned by chunks
(`planning.plan_fire`), as a manual fire is: never one transaction of 100,000 items.
Exactly once comes from the store (one fire per (upstream fire, job), see store/lineage.py): this follow-up is
idempotent, so it runs on every daemon, after restarts and crashes, and the second to record finds it done.
Only upstream fires that ended within the job's `max_delay` are followed, as late slots of schedules are not.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from datetime import datetime

from cyberdesk_runner import planning
from cyberdesk_runner.catalog import ActiveJob, JobCatalog
from cyberdesk_runner.clock import Clock
from cyberdesk_runner.fleet import Fleet
from cyberdesk_runner.logs import get_logger
from cyberdesk_runner.planning import PlanningError, items_or_count, outputs_plan
from cyberdesk_runner.store import Store
from cyberdesk_runner.store.records import NewFire

log = get_logger(__name__)

#: Upstream fire statuses that fire a downstream job, per `after.when`.
WHEN_STATUSES: Mapping[str, tuple[str, ...]] = {
    "succeeded": ("succeeded",),
    "failed": ("failed",),
    "finished": ("succeeded", "failed", "cancelled"),
}


class DownstreamFirer:
    def __init__(
        self, *, store: Store, catalog: JobCatalog, fleet: Callable[[], Fleet], clock: Clock
    ) -> None:
        self._store = store
        self._catalog = catalog
        self._fleet = fleet
        self._clock = clock

    def _after_jobs(self) -> list[ActiveJob]:
        return [j for j in self._catalog.jobs.values() if j.loaded.spec.after is not None]

    async def fire_once(self) -> int:
        """Record the downstream fire of every upstream fire that ended and has none; returns how many this
        daemon recorded (another daemon's, or an earlier try's, count as done)."""
        recorded = 0
        for job in self._after_jobs():
            if job.workflow_id is None and job.workflow_error is None:
                continue  # its workflow is not resolved yet: the upstream fires wait
            after = job.loaded.spec.after
            assert after is not None
            now = self._clock.now()
            waiting = await asyncio.to_thread(
                self._store.lineage.upstream_fires_waiting,
                job.name,
                after.job,
                WHEN_STATUSES[after.when],
                now - job.loaded.spec.max_delay,
            )
            for upstream in waiting:
                if await self._fire(job, upstream.id):
                    recorded += 1
        return recorded

    async def waiting(self) -> bool:
        """Whether some upstream fire still waits for its downstream fire (`run --once` waits for them)."""
        now = self._clock.now()
        for job in self._after_jobs():
            after = job.loaded.spec.after
            assert after is not None
            found = await asyncio.to_thread(
                self._store.lineage.upstream_fires_waiting,
                job.name,
                after.job,
                WHEN_STATUSES[after.when],
                now - job.loaded.spec.max_delay,
                1,
            )
            if found:
                return True
        return False

    async def _request(self, fire: NewFire, items: int, now: datetime) -> bool:
        """Record a downstream fire of `items` items requested, to be planned by chunks."""
        fire_id = await asyncio.to_thread(self._store.fires.insert_requested, fire, items, now)
        if fire_id is not None:
            log.info(
                "fire_after",
                job=fire.job_name,
                fire=fire_id,
                upstream_fire=fire.upstream_fire_id,
                items=items,
            )
        return fire_id is not None

    async def _fire(self, job: ActiveJob, upstream_id: str) -> bool:
        spec = job.loaded.spec
        fire = NewFire(
            job.name,
            "after",
            None,
            definition_hash=job.loaded.definition_hash,
            priority=spec.priority,
            upstream_fire_id=upstream_id,
        )
        fleet = self._fleet()
        now = self._clock.now()
        try:
            if spec.items_from_output is None:
                items = items_or_count(job, fleet, None)
                if isinstance(items, int):  # too many for one transaction: requested, planned by chunks
                    return await self._request(fire, items, now)
            else:
                plan = await asyncio.to_thread(outputs_plan, self._store, job, fleet, upstream_id)
                if plan.count > planning.PLAN_CHUNK_MAX:  # the same
                    return await self._request(fire, plan.count, now)
                items = await asyncio.to_thread(lambda: list(plan.items()))
                if not items:
                    reason = (
                        f"upstream fire {upstream_id} has no element at {spec.items_from_output!r} in the "
                        f"outputs of its {plan.upstream_items} succeeded item(s)"
                    )
                    fire_id = await asyncio.to_thread(self._store.fires.record_skipped, fire, reason, now)
                    if fire_id is not None:
                        log.info(
                            "fire_skipped",
                            job=job.name,
                            fire=fire_id,
                            upstream_fire=upstream_id,
                            reason=reason,
                        )
                    return fire_id is not None
        except PlanningError as exc:
            fire_id = await asyncio.to_thread(self._store.fires.insert_failed, fire, str(exc), now)
            if fire_id is not None:
                log.error(
                    "fire_failed", job=job.name, fire=fire_id, upstream_fire=upstream_id, error=str(exc)
                )
            return fire_id is not None
        fire_id = await asyncio.to_thread(self._store.fires.insert, fire, items, now)
        if fire_id is not None:
            log.info("fire_after", job=job.name, fire=fire_id, upstream_fire=upstream_id, items=len(items))
        return fire_id is not None
