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


def test_a_refill_places_only_on_the_desktops_it_freed_within_the_jobs_concurrency(store: Store) -> None:
    desktops = ["m-01", "m-02", "m-03", "m-04"]
    add_jobs(store, "a", "b")
    manual_fire(store, "a", 6)
    manual_fire(store, "b", 3)
    # a: 2 runs (its concurrency), b: 2 runs; one desktop stays idle, never offered by the refill.
    limits = {"a": 2, "b": 3}
    refs = store.dispatch.assign(at(0), Chooser(desktops[:3], concurrency=limits), lease=LEASE)
    refs += store.dispatch.assign(at(0), Chooser(desktops[3:], concurrency=limits), lease=LEASE)
    store.tracking.record_created(created(refs), at(0), policy())
    by_job = {r.job_name: [x for x in refs if x.job_name == r.job_name] for r in refs}
    assert (len(by_job["a"]), len(by_job["b"])) == (2, 2)
    ending = by_job["b"][0]  # b's run ends: only its desktop is freed
    chooser = Chooser(desktops, concurrency=limits)
    recorded = store.tracking.record_news(
        [], [run(f"run-{ending.id}", "success")], at(1), policy(), assign=refill(chooser)
    )
    [view] = chooser.views
    assert view.only_desktops == frozenset({ending.machine_id}) and view.busy_desktops == frozenset()
    assert recorded.assigned is not None
    [ref] = recorded.assigned
    # a is at its concurrency: the freed desktop goes to b's next item, and to no busy desktop.
    assert (ref.job_name, ref.machine_id) == ("b", ending.machine_id)
    active = store.tracking.in_flight_by_job()
    assert active == {"a": 2, "b": 2}
    machines = [a.machine_id for a in store.tracking.in_flight()]
    assert len(machines) == len(set(machines))


def test_a_refill_that_could_miss_freed_room_elsewhere_decides_over_every_desktop(store: Store) -> None:
    desktops = ["m-01", "m-02"]
    add_jobs(store, "a", "b")
    manual_fire(store, "a", 3)
    [first] = store.dispatch.assign(at(0), Chooser(desktops[:1], concurrency={"a": 1}), lease=LEASE)
    store.tracking.record_created(created([first]), at(0), policy())
    # a's run ends on m-01 while m-02 is idle: a chooser that takes m-02 for a's next item is not held to the
    # freed desktop (the store decides over the full view instead), and never places twice.
    chooser = Chooser(desktops[1:], concurrency={"a": 1})
    recorded = store.tracking.record_news(
        [], [run(f"run-{first.id}", "success")], at(1), policy(), assign=refill(chooser)
    )
    assert recorded.assigned is not None
    [ref] = recorded.assigned
    assert ref.machine_id == "m-02"
    assert [v.only_desktops for v in chooser.views] == [frozenset({"m-01"}), None]
    assert store.counts.work().creating_attempts == 1


def test_a_sweeping_refill_decides_over_every_desktop(store: Store) -> None:
    # Desktops were left to a round since the last decision: the refill may place there too.
    add_jobs(store, "a")
    manual_fire(store, "a", 3)
    first = start_one(store)
    chooser = Chooser(["m-01", "m-02"])
    request = AssignRequest(at(1), chooser, LEASE, limit=200, sweep=True)
    recorded = store.tracking.record_news([], [run(first, "success")], at(1), policy(), assign=request)
    assert recorded.assigned is not None
    assert sorted(r.machine_id for r in recorded.assigned) == ["m-01", "m-02"]
    assert [v.only_desktops for v in chooser.views] == [None]
