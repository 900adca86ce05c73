"""Dispatch: due items get desktops and attempts (with keys) before any create call; busy desktops and per-job
counts span every job and every daemon; the database refuses two of our runs on one desktop."""

from __future__ import annotations

import functools
from collections.abc import Callable
from datetime import timedelta

import pytest
import sqlalchemy as sa
from store_helpers import (
    DESKTOPS,
    LEASE,
    T0,
    Chooser,
    add_jobs,
    at,
    items,
    manual_fire,
    policy,
    run,
    together,
)

from cyberdesk_runner.store import Store
from cyberdesk_runner.store.records import Assignment, DispatchView, NewFire, NewItem


def test_dispatch_records_attempts_with_keys_before_any_call(store: Store) -> None:
    add_jobs(store, "a")
    fire_id = manual_fire(store, "a", 3)
    refs = store.dispatch.assign(T0, Chooser(), lease=LEASE)
    assert [r.inputs for r in refs] == [{"n": 0}, {"n": 1}, {"n": 2}]
    assert len({r.idempotency_key for r in refs}) == 3
    assert {r.machine_id for r in refs} == set(DESKTOPS[:3])
    assert all(
        (r.fire_id, r.job_name, r.number, r.create_tries, r.workflow_id) == (fire_id, "a", 1, 0, "wf-1")
        for r in refs
    )
    counts = store.counts.work()
    assert (counts.pending_items, counts.running_items, counts.creating_attempts) == (0, 3, 3)
    assert store.dispatch.assign(at(1), Chooser(), lease=LEASE) == []  # nothing left due
    in_flight = store.tracking.in_flight()
    assert {a.status for a in in_flight} == {"creating"} and {a.run_id for a in in_flight} == {None}


def test_the_view_has_every_busy_desktop_and_per_job_counts(store: Store) -> None:
    add_jobs(store, "a", "b")
    manual_fire(store, "a", 2)
    store.dispatch.assign(T0, Chooser(), lease=LEASE)
    manual_fire(store, "b", 1)
    chooser = Chooser()
    store.dispatch.assign(T0, chooser, lease=LEASE)
    view = chooser.views[0]
    assert view.busy_desktops == frozenset(DESKTOPS[:2])
    assert dict(view.active_by_job) == {"a": 2}
    assert [d.job_name for d in view.due] == ["b"]


def test_concurrency_is_counted_across_rounds(store: Store) -> None:
    add_jobs(store, "a")
    manual_fire(store, "a", 5)
    assert len(store.dispatch.assign(T0, Chooser(concurrency={"a": 2}), lease=LEASE)) == 2
    assert store.dispatch.assign(T0, Chooser(concurrency={"a": 2}), lease=LEASE) == []
    assert store.tracking.in_flight_by_job() == {"a": 2}


def test_items_not_due_are_not_offered(store: Store) -> None:
    add_jobs(store, "a")
    store.fires.insert(NewFire("a", "manual", None), items(2), at(10))  # due at +10s
    chooser = Chooser()
    assert store.dispatch.assign(T0, chooser, lease=LEASE) == []
    assert len(store.dispatch.assign(at(10), Chooser(), lease=LEASE)) == 2


def test_priority_items_come_first_then_the_oldest(store: Store) -> None:
    add_jobs(store, "a", "b")
    store.fires.insert(NewFire("a", "manual", None), items(2), T0)
    store.fires.insert(NewFire("b", "manual", None, priority=True), items(1), at(5))
    chooser = Chooser()
    store.dispatch.assign(at(5), chooser, lease=LEASE)
    assert [(d.job_name, d.priority) for d in chooser.views[0].due] == [
        ("b", True),
        ("a", False),
        ("a", False),
    ]


def test_a_job_at_its_limit_does_not_hide_another_jobs_items(store: Store) -> None:
    add_jobs(store, "big", "small")
    manual_fire(store, "big", 30)
    manual_fire(store, "small", 2, now=at(1))
    refs = store.dispatch.assign(at(1), Chooser(concurrency={"big": 1}), limit=10, lease=LEASE)
    assert sorted(r.job_name for r in refs) == ["big", "small", "small"]


def test_items_pinned_to_busy_desktops_are_left_out(store: Store) -> None:
    add_jobs(store, "fan")
    store.fires.insert(NewFire("fan", "manual", None), items(20, pinned=["m-01"] * 19 + ["m-02"]), T0)
    first = store.dispatch.assign(T0, Chooser(), limit=5, lease=LEASE)
    assert [r.machine_id for r in first] == ["m-01"]  # the window has only m-01 items...
    second = store.dispatch.assign(T0, Chooser(), limit=5, lease=LEASE)
    assert [r.machine_id for r in second] == [
        "m-02"
    ]  # ...then m-01 is busy, and m-02's item is in the window


def test_the_database_refuses_two_of_our_runs_on_one_desktop(store: Store) -> None:
    add_jobs(store, "a")
    manual_fire(store, "a", 2)

    def same_desktop(view: DispatchView) -> list[Assignment]:
        return [Assignment(d.id, "wf-1", "m-01", None, at(60)) for d in view.due]

    with pytest.raises(sa.exc.IntegrityError):
        store.dispatch.assign(T0, same_desktop, lease=LEASE)
    counts = store.counts.work()
    assert (counts.pending_items, counts.in_flight_attempts) == (2, 0)  # nothing half-recorded


def test_a_desktop_is_free_again_once_its_run_ends(store: Store) -> None:
    add_jobs(store, "a")
    manual_fire(store, "a", 2)
    refs = store.dispatch.assign(T0, Chooser(["m-01"]), lease=LEASE)
    assert len(refs) == 1
    assert store.dispatch.assign(T0, Chooser(["m-01"]), lease=LEASE) == []
    store.tracking.record_created([(refs[0].id, run("r-1", "running"))], T0, policy())
    store.tracking.apply_observations([run("r-1", "success")], at(1), policy())
    again = store.dispatch.assign(at(1), Chooser(["m-01"]), lease=LEASE)
    assert [r.machine_id for r in again] == ["m-01"]


def test_cancel_requested_items_are_not_dispatched(store: Store) -> None:
    add_jobs(store, "a")
    fire_id = manual_fire(store, "a", 2)
    store.control.cancel_pending_items(None, "user", T0, fire_ids=[fire_id])
    assert store.dispatch.assign(T0, Chooser(), lease=LEASE) == []


def _dispatch_concurrently(
    stores: list[Store], rounds: int, concurrency: dict[str, int]
) -> list[BaseException]:

    def daemon(store: Store) -> None:
        for n in range(rounds):
            refs = store.dispatch.assign(
                at(n), Chooser(concurrency=concurrency, now=at(n)), limit=7, lease=LEASE
            )
            store.tracking.record_created(
                [(r.id, run(f"run-{r.id}", "running")) for r in refs], at(n), policy()
            )
            # Finish a couple of runs so that desktops and slots are handed out again.
            done = [run(f"run-{a.id}", "success") for a in store.tracking.in_flight() if a.run_id][:2]
            store.tracking.apply_observations(done, at(n), policy())

    _, errors = together([functools.partial(daemon, s) for s in stores])
    return errors


def test_daemons_dispatching_at_once_keep_every_limit(open_store: Callable[[], Store]) -> None:
    stores = [open_store() for _ in range(3)]
    add_jobs(stores[0], "a", "b")
    manual_fire(stores[0], "a", 40)
    stores[0].fires.insert(NewFire("b", "manual", None), [NewItem({"n": n}) for n in range(40)], T0)
    assert _dispatch_concurrently(stores, rounds=15, concurrency={"a": 3, "b": 4}) == []

    # Replay the history: at no moment two active attempts on one desktop or more than the job's limit.
    engine = stores[0].engine
    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT item_id, machine_id, job_name, status FROM attempt")).all()
    per_item: dict[str, int] = {}
    for item_id, *_ in rows:
        per_item[item_id] = per_item.get(item_id, 0) + 1
    assert max(per_item.values()) == 1  # no item dispatched twice
    active = [r for r in rows if r.status in ("creating", "scheduling", "running", "running_checks")]
    assert len({r.machine_id for r in active}) == len(active)
    assert sum(r.job_name == "a" for r in active) <= 3 and sum(r.job_name == "b" for r in active) <= 4
    succeeded = sum(r.status == "success" for r in rows)
    assert succeeded > 20  # work did flow through all three


def test_lease_argument_sets_the_claim(store: Store) -> None:
    add_jobs(store, "a")
    manual_fire(store, "a", 1)
    store.dispatch.assign(T0, Chooser(), lease=timedelta(seconds=5))
    assert store.dispatch.attempts_to_settle(at(4.9), lease=LEASE) == []
    assert len(store.dispatch.attempts_to_settle(at(5), lease=LEASE)) == 1


def test_the_window_bounds_the_items_read_per_job_in_queue_order(store: Store) -> None:
    add_jobs(store, "a", "b")
    manual_fire(store, "a", 50)
    urgent = manual_fire(store, "a", 2, at(1), priority=True)  # later, but priority: read first
    manual_fire(store, "b", 50)
    asked: list[tuple[str, int]] = []

    def window(job_name: str, busy: frozenset[str], active: int) -> int:
        asked.append((job_name, active))
        return {"a": 3, "b": 1}[job_name]

    chooser = Chooser(at_most=0)  # look, take nothing
    assert store.dispatch.assign(at(2), chooser, lease=LEASE, window=window) == []
    [view] = chooser.views
    assert sorted(asked) == [("a", 0), ("b", 0)]
    offered = [(d.job_name, d.fire_id == urgent, d.seq) for d in view.due]
    assert offered[:2] == [("a", True, 0), ("a", True, 1)]  # priority first, over every job
    assert sorted(offered[2:]) == [("a", False, 0), ("b", False, 0)]


def test_a_job_with_no_room_is_not_read_at_all(store: Store) -> None:
    add_jobs(store, "a")
    manual_fire(store, "a", 5)
    chooser = Chooser()
    assert store.dispatch.assign(T0, chooser, lease=LEASE, window=lambda *_: 0) == []
    assert chooser.views == []  # nothing due was read, so nothing was offered
    assert store.counts.work().pending_items == 5
