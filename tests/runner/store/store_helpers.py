"""Building blocks of the store tests: jobs, fires, a desktop chooser, outcome policies, observations, and
daemons acting at the same moment."""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import sqlalchemy as sa

from cyberdesk_runner.store import Store
from cyberdesk_runner.store.records import (
    Assignment,
    AttemptRef,
    Cancel,
    DispatchView,
    Fail,
    FinishedAttempt,
    ItemOutcome,
    JobDefinition,
    NewFire,
    NewItem,
    Retry,
    RunObservation,
    Succeed,
)
from cyberdesk_runner.store.tables import item_t

R = TypeVar("R")

T0 = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
LEASE = timedelta(seconds=30)
DESKTOPS = [f"m-{n:02d}" for n in range(1, 9)]


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def job(name: str, definition_hash: str = "h1") -> JobDefinition:
    return JobDefinition(name, definition_hash, {"name": name}, f"/jobs/{name}.yaml")


def add_jobs(store: Store, *names: str) -> None:
    store.jobs.sync([job(n) for n in names], T0)


def items(n: int, *, pinned: Sequence[str] | None = None) -> list[NewItem]:
    if pinned is not None:
        return [NewItem({"n": i}, machine_id=pinned[i % len(pinned)]) for i in range(n)]
    return [NewItem({"n": i}) for i in range(n)]


def seq_n_status(store: Store, fire_id: str) -> list[tuple[int, int, str]]:
    """(seq, input n, status) of the fire's items, by seq."""
    with store.engine.connect() as conn:
        rows = conn.execute(
            sa.select(item_t.c.seq, item_t.c.inputs, item_t.c.status)
            .where(item_t.c.fire_id == fire_id)
            .order_by(item_t.c.seq)
        ).all()
    return [(r.seq, r.inputs["n"], r.status) for r in rows]


def manual_fire(store: Store, job_name: str, n: int, now: datetime = T0, **fire: Any) -> str:
    fire_id = store.fires.insert(NewFire(job_name, "manual", None, **fire), items(n), now)
    assert fire_id is not None
    return fire_id


def scheduled(job_name: str, slot: datetime) -> NewFire:
    return NewFire(job_name, "scheduled", slot)


class Chooser:
    """What a dispatcher decides: free desktops from `desktops`, at most `concurrency[job]` runs per job."""

    def __init__(
        self,
        desktops: Sequence[str] = DESKTOPS,
        *,
        concurrency: Mapping[str, int] | None = None,
        now: datetime = T0,
        timeout: timedelta = timedelta(minutes=30),
        at_most: int | None = None,
    ) -> None:
        self.desktops = list(desktops)
        self.concurrency = dict(concurrency or {})
        self.now = now
        self.timeout = timeout
        self.at_most = at_most
        self.views: list[DispatchView] = []

    def __call__(self, view: DispatchView) -> list[Assignment]:
        self.views.append(view)
        busy = set(view.busy_desktops)
        only = view.only_desktops  # a refill by news: only the desktops it freed
        active = dict(view.active_by_job)
        chosen: list[Assignment] = []
        for item in view.due:
            if self.at_most is not None and len(chosen) >= self.at_most:
                break
            if active.get(item.job_name, 0) >= self.concurrency.get(item.job_name, 1_000_000):
                continue
            if item.machine_id is not None:
                if item.machine_id in busy or (only is not None and item.machine_id not in only):
                    continue
                desktop = item.machine_id
            else:
                free = [d for d in self.desktops if d not in busy and (only is None or d in only)]
                if not free:
                    continue
                desktop = free[0]
            busy.add(desktop)
            active[item.job_name] = active.get(item.job_name, 0) + 1
            chosen.append(Assignment(item.id, "wf-1", desktop, f"desk {desktop}", self.now + self.timeout))
        return chosen


RETRY_AT = at(60)


def policy(
    *, max_attempts: int = 1, retry_at: datetime = RETRY_AT
) -> Callable[[FinishedAttempt], ItemOutcome]:
    """An outcome policy: success succeeds, cancel cancels, failures retry until `max_attempts`."""

    def decide(attempt: FinishedAttempt) -> ItemOutcome:
        if attempt.status == "success":
            return Succeed()
        if attempt.item_cancel_requested or attempt.status == "cancelled":
            return Cancel("cancelled")
        if attempt.number < max_attempts:
            return Retry(retry_at)
        return Fail(f"{attempt.status} (attempt {attempt.number})")

    return decide


def run(run_id: str, status: str, source: str = "webhook") -> RunObservation:
    return RunObservation(run_id, status, source=source)


def created(refs: Sequence[AttemptRef], status: str = "scheduling") -> list[tuple[str, RunObservation]]:
    """The answers of create calls for `refs`: run ids derived from the attempt ids."""
    return [(ref.id, RunObservation(f"run-{ref.id}", status, source="create")) for ref in refs]


def dispatch_and_create(store: Store, now: datetime = T0, **chooser: Any) -> list[str]:
    """Dispatch everything due and record the runs as created; returns the run ids."""
    refs = store.dispatch.assign(now, Chooser(now=now, **chooser), lease=LEASE)
    store.tracking.record_created(created(refs), now, policy())
    return [f"run-{ref.id}" for ref in refs]


def together(calls: Sequence[Callable[[], R]]) -> tuple[list[R | None], list[BaseException]]:
    """Run each call in a thread of its own, all released at once, as daemons acting at the same moment would.

    Returns each call's result in order (None where it raised) and what the calls raised.
    """
    barrier = threading.Barrier(len(calls))
    results: list[R | None] = [None] * len(calls)
    errors: list[BaseException] = []

    def main(index: int) -> None:
        barrier.wait()
        try:
            results[index] = calls[index]()
        except BaseException as exc:  # reported by the test
            errors.append(exc)

    threads = [threading.Thread(target=main, args=(i,)) for i in range(len(calls))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results, errors
