"""News that ends runs fills the desktops it frees in its own transaction (`record_news(assign=...)`): the new
attempts are committed with the news or not at all, never beside another dispatch decision, never twice."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import sqlalchemy as sa
from store_helpers import (
    LEASE,
    Chooser,
    add_jobs,
    at,
    created,
    manual_fire,
    policy,
    run,
    together,
)

from cyberdesk_runner.store import Store
from cyberdesk_runner.store.dispatch import _DISPATCH_LOCK
from cyberdesk_runner.store.records import Assignment, AssignRequest, DispatchView, RecordedNews

ONE_DESKTOP = ["m-01"]


def refill(chooser: Callable[[DispatchView], list[Assignment]]) -> AssignRequest:
    return AssignRequest(at(1), chooser, LEASE, limit=200)


def start_one(store: Store, desktops: list[str] = ONE_DESKTOP) -> str:
    """Dispatch and create the first run of job `a`; returns its run id."""
    [ref] = store.dispatch.assign(at(0), Chooser(desktops, at_most=1), lease=LEASE)
    store.tracking.record_created(created([ref]), at(0), policy())
    return f"run-{ref.id}"


def test_news_of_an_end_assigns_the_freed_desktop_in_its_transaction(store: Store) -> None:
    add_jobs(store, "a")
    manual_fire(store, "a", 2)
    first = start_one(store)
    recorded = store.tracking.record_news(
        [], [run(first, "success")], at(1), policy(), assign=refill(Chooser(ONE_DESKTOP))
    )
    assert [t.kind for t in recorded.transitions if t.kind.startswith("attempt_")] == ["attempt_success"]
    assert recorded.assigned is not None
    [ref] = recorded.assigned
    assert (ref.machine_id, ref.inputs, ref.number) == ("m-01", {"n": 1}, 1)
    counts = store.counts.work()
    assert (counts.pending_items, counts.running_items, counts.creating_attempts) == (0, 1, 1)
    # The new attempt is in the event log after the news that freed its desktop.
    with store.core.read() as conn:
        kinds = conn.execute(sa.text("SELECT kind FROM event ORDER BY id")).scalars().all()
    assert kinds[-2:] == ["item_succeeded", "attempt_created"]
    assert store.dispatch.assign(at(1), Chooser(ONE_DESKTOP), lease=LEASE) == []  # nothing left to place


def test_news_that_ends_no_run_assigns_nothing(store: Store) -> None:
    add_jobs(store, "a")
    manual_fire(store, "a", 2)
    first = start_one(store)
    chooser = Chooser(["m-01", "m-02"])
    recorded = store.tracking.record_news(
        [], [run(first, "running")], at(1), policy(), assign=refill(chooser)
    )
    assert recorded.assigned is None and chooser.views == []  # no desktop freed: dispatch is not even read
    assert store.counts.work().pending_items == 1


def test_the_news_and_its_assignments_commit_together_or_not_at_all(store: Store) -> None:
    add_jobs(store, "a")
    manual_fire(store, "a", 2)
    first = start_one(store)

    def broken(view: DispatchView) -> list[Assignment]:
        raise RuntimeError("the dispatcher failed mid-transaction")

    with pytest.raises(RuntimeError):
        store.tracking.record_news([], [run(first, "success")], at(1), policy(), assign=refill(broken))
    # Nothing of it was kept: the run is still in flight, its desktop busy, the next item pending.
    assert [a.run_id for a in store.tracking.in_flight()] == [first]
    counts = store.counts.work()
    assert (counts.pending_items, counts.running_items) == (1, 1)
    recorded = store.tracking.record_news(
        [], [run(first, "success")], at(1), policy(), assign=refill(Chooser(ONE_DESKTOP))
    )
    assert recorded.assigned is not None and len(recorded.assigned) == 1


def test_daemons_filling_freed_desktops_at_once_never_place_an_item_twice(
    open_store: Callable[[], Store],
) -> None:
    desktops = ["m-01", "m-02"]
    one, two = open_store(), open_store()
    add_jobs(one, "a")
    manual_fire(one, "a", 12)
    refs = one.dispatch.assign(at(0), Chooser(desktops), lease=LEASE)
    one.tracking.record_created(created(refs), at(0), policy())
    run_ids = [f"run-{r.id}" for r in refs]

    def end(store: Store, run_id: str) -> Callable[[], RecordedNews]:
        return lambda: store.tracking.record_news(
            [], [run(run_id, "success")], at(1), policy(), assign=refill(Chooser(desktops))
        )

    results, errors = together([end(one, run_ids[0]), end(two, run_ids[1])])
    assert errors == []
    assigned = [ref for r in results if isinstance(r, RecordedNews) for ref in r.assigned or []]
    # One transaction places both freed desktops, or each its own, or (PostgreSQL, lock busy) one leaves them
    # to a round: never an item or a desktop twice.
    late = one.dispatch.assign(at(1), Chooser(desktops), lease=LEASE)
    placed = assigned + late
    assert len(placed) == 2
    assert len({r.item_id for r in placed}) == 2 and {r.machine_id for r in placed} == set(desktops)
    assert one.counts.work().creating_attempts == 2


@pytest.mark.postgres
def test_news_never_waits_for_another_dispatch_decision(pg_store: Store) -> None:
    manual_fire(pg_store, "a", 2)
    first = start_one(pg_store)
    # Another daemon is deciding dispatch (it holds the advisory lock until its transaction ends).
    other = sa.create_engine(pg_store.url)
    try:
        with other.begin() as conn:
            conn.execute(sa.select(sa.func.pg_advisory_xact_lock(*_DISPATCH_LOCK)))
            recorded = pg_store.tracking.record_news(
                [], [run(first, "success")], at(1), policy(), assign=refill(Chooser(ONE_DESKTOP))
            )
        # The news is recorded at once; the freed desktop is left to a round.
        assert recorded.assigned is None
        assert [t.kind for t in recorded.transitions][0] == "attempt_success"
        [ref] = pg_store.dispatch.assign(at(1), Chooser(ONE_DESKTOP), lease=LEASE)
        assert ref.machine_id == "m-01"
    finally:
        other.dispose()
