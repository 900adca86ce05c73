"""A test harness around a real Scheduler: job files, catalog reloads, ticking a ManualClock like the daemon."""

from __future__ import annotations

import random
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

from cyberdesk_runner.catalog import JobCatalog
from cyberdesk_runner.clock import ManualClock
from cyberdesk_runner.fleet import Desktop, Fleet
from cyberdesk_runner.scheduling import Scheduler
from cyberdesk_runner.store import Store
from cyberdesk_runner.store.records import FireSummary, Transition

WORKFLOW_ID = "3f0c2a8e-1c1d-4c36-9a55-1e1d0c0ffee0"
WORKFLOW_NAME = "Submit claim"

FLEET = Fleet(
    [
        Desktop("d-1", "desk-1", {"site": "boston"}, frozenset({"pool-1"}), frozenset({"claims"}), True),
        Desktop("d-2", "desk-2", {"site": "boston"}, frozenset({"pool-1"}), frozenset({"claims"}), True),
        Desktop("d-3", "desk-3", {"site": "new-york"}, frozenset({"pool-2"}), frozenset({"billing"}), True),
    ]
)


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


class Harness:
    """One jobs folder, one store, one clock; schedulers made on demand (to simulate restarts and daemons)."""

    def __init__(self, store: Store, folder: Path, clock: ManualClock) -> None:
        self.store = store
        self.folder = folder
        self.clock = clock
        self.catalog = JobCatalog(folder)
        self.transitions: list[Transition] = []
        self.scheduler = self.new_scheduler()

    def new_scheduler(
        self, *, seed: int = 7, store: Store | None = None, catalog: JobCatalog | None = None, **kwargs: Any
    ) -> Scheduler:
        return Scheduler(
            store=store or self.store,
            catalog=catalog or self.catalog,
            fleet=lambda: FLEET,
            clock=self.clock,
            on_transitions=self.transitions.extend,
            rng=random.Random(seed),
            **kwargs,
        )

    # -- job files -------------------------------------------------------------------------------------

    def add_job(self, name: str, schedule: Any, **settings: Any) -> Path:
        """Write jobs/<name>.yaml (overlap: allow unless given, so fires need not finish) and reload."""
        doc = {"name": name, "workflow": WORKFLOW_NAME, "target": {"pool": "claims"}, "overlap": "allow"}
        doc.update(settings)
        if schedule is not None:
            doc["schedule"] = schedule
        path = self.folder / f"{name}.yaml"
        path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
        self.reload()
        return path

    def remove_job(self, name: str) -> None:
        (self.folder / f"{name}.yaml").unlink()
        self.reload()

    def reload(self, catalog: JobCatalog | None = None) -> None:
        """What the daemon does every ~2s: reload the files, resolve workflows, record the jobs in the store."""
        catalog = catalog or self.catalog
        catalog.reload()
        catalog.resolve_workflows({WORKFLOW_ID: WORKFLOW_NAME})
        self.store.jobs.sync(catalog.definitions(), self.clock.now())

    # -- time ------------------------------------------------------------------------------------------

    def tick(self, scheduler: Scheduler | None = None) -> datetime | None:
        return (scheduler or self.scheduler).tick()

    def run_until(
        self, end: datetime, scheduler: Scheduler | None = None, *, max_ticks: int = 100_000
    ) -> int:
        """Tick like the daemon: sleep until the time `tick` returns (no cap needed: the catalog is fixed),
        then tick again, until `end`. Returns the number of ticks."""
        scheduler = scheduler or self.scheduler
        for count in range(1, max_ticks + 1):
            wake = scheduler.tick()
            if wake is None or wake > end:
                self.clock.set(max(end, self.clock.now()))
                scheduler.tick()
                return count
            assert wake > self.clock.now() - timedelta(seconds=1), "tick asked to be called again in the past"
            self.clock.set(max(wake, self.clock.now()))
        raise AssertionError("too many ticks")

    def advance(self, **delta: float) -> None:
        self.clock.set(self.clock.now() + timedelta(**delta))

    # -- what happened ---------------------------------------------------------------------------------

    def fires(self, job: str) -> list[FireSummary]:
        return self.store.fires.of_job(job)

    def slots(self, job: str, *statuses: str) -> list[datetime]:
        return [
            f.scheduled_for
            for f in self.fires(job)
            if not statuses or f.status in statuses
            if f.scheduled_for
        ]

    def started(self, job: str) -> list[datetime]:
        """Slots that ran (items were created)."""
        return [f.scheduled_for for f in self.fires(job) if f.status == "running" and f.scheduled_for]

    def finish_all(self, job: str) -> None:
        """Settle the job's fires (cancel their pending items) so that overlap rules let the next one run."""
        self.store.control.cancel_pending_items(job, "test: finished", self.clock.now())


def by_status(fires: Sequence[FireSummary]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for fire in fires:
        counts[fire.status] = counts.get(fire.status, 0) + 1
    return counts
