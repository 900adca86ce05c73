"""Cancellation (pending items at once, running ones through the reaper), named leases, and the daemon's own
counts and exit summary."""

from __future__ import annotations

import functools
from collections.abc import Callable
from datetime import timedelta

import sqlalchemy as sa
from store_helpers import (
    LEASE,
    T0,
    Chooser,
    add_jobs,
    at,
    dispatch_and_create,
    job,
    manual_fire,
    policy,
    run,
    together,
)

from cyberdesk_runner.store import Store
from cyberdesk_runner.store.records import AttemptVerdict


def test_cancel_pending_and_running_items(store: Store) -> None:
    add_jobs(store, "a")
    fire_id = manual_fire(store, "a", 4)
    dispatch_and_create(store, at_most=2)
    transitions = store.control.cancel_pending_items("a", "user asked", at(1))
    assert sorted(t.kind for t in transitions) == ["cancel_requested"] * 2 + ["item_cancelled"] * 2
    counts = store.counts.work()
    assert (counts.pending_items, counts.running_items) == (0, 2)
    flagged = store.tracking.in_flight()
    assert [a.cancel_requested for a in flagged] == [True, True]  # for the reaper, on whichever daemon
    # The reaper cancels them in Cyberdesk and records its verdicts: the fire ends cancelled.
    verdicts = [AttemptVerdict(a.id, "cancelled", ["cancelled on request"], "reaper") for a in flagged]
    kinds = [t.kind for t in store.tracking.apply_verdicts(verdicts, at(2), policy())]
    assert kinds.count("item_cancelled") == 2 and kinds[-1] == "fire_cancelled"
    assert store.fires.of_job("a")[0].id == fire_id


def test_cancel_only_pending_leaves_running_items_alone(store: Store) -> None:
    add_jobs(store, "a")
    manual_fire(store, "a", 3)
    dispatch_and_create(store, at_most=1)
    store.jobs.sync([], at(1))  # a removed job: its pending items only
    transitions, _ = store.control.cancel_pending_of_removed_jobs("job removed", at(1), limit=100)
    kinds = [t.kind for t in transitions]
    assert kinds == ["item_cancelled", "item_cancelled"]
    assert [a.cancel_requested for a in store.tracking.in_flight()] == [False]


def test_cancel_by_fire_by_item_and_by_attempt(store: Store) -> None:
    add_jobs(store, "a")
    first = manual_fire(store, "a", 2)
    manual_fire(store, "a", 2)
    kinds = [t.kind for t in store.control.cancel_pending_items(None, "x", at(1), fire_ids=[first])]
    assert kinds == ["item_cancelled", "item_cancelled", "fire_cancelled"]
    assert store.counts.work().pending_items == 2
    refs = store.dispatch.assign(at(1), Chooser(), lease=LEASE)
    assert len(store.control.cancel_pending_items(None, "x", at(2), item_ids=[refs[0].item_id])) == 1
    assert store.control.cancel_attempts([refs[1].id], "x", at(3)) == 1
    assert all(a.cancel_requested for a in store.tracking.in_flight())


def test_cancelling_a_whole_fire_settles_it_once(store: Store) -> None:
    add_jobs(store, "a")
    manual_fire(store, "a", 25)
    kinds = [t.kind for t in store.control.cancel_pending_items("a", "x", at(1))]
    assert kinds.count("item_cancelled") == 25 and kinds.count("fire_cancelled") == 1


def test_a_lease_has_one_holder_until_it_expires(store: Store) -> None:
    minute = timedelta(minutes=1)
    assert store.daemons.try_lease("poller", "d1", T0, minute)
    assert not store.daemons.try_lease("poller", "d2", at(59), minute)
    assert store.daemons.try_lease("poller", "d1", at(59), minute)  # renewed until +119s
    assert not store.daemons.try_lease("poller", "d2", at(118), minute)
    assert store.daemons.try_lease("poller", "d2", at(119), minute)  # lapsed: taken over
    assert not store.daemons.try_lease("poller", "d1", at(120), minute)
    assert store.daemons.try_lease("reaper", "d1", at(120), minute)  # leases are independent


def test_daemons_racing_for_a_lease(open_store: Callable[[], Store]) -> None:
    stores = [open_store() for _ in range(4)]
    stores[0].ping()
    taken, errors = together(
        [
            functools.partial(s.daemons.try_lease, "retention", f"d{n}", T0, timedelta(hours=2))
            for n, s in enumerate(stores)
        ]
    )
    assert errors == []
    winners = [n for n, won in enumerate(taken) if won]
    assert len(winners) == 1


def test_work_counts_and_summary(store: Store) -> None:
    add_jobs(store, "a", "b")
    assert store.counts.work().idle
    manual_fire(store, "a", 3)
    manual_fire(store, "b", 1, now=at(0.5))  # due after a's items
    refs = store.dispatch.assign(at(1), Chooser(at_most=2), lease=LEASE)
    store.tracking.record_created([(refs[0].id, run("r-0", "running", "create"))], T0, policy())
    counts = store.counts.work()
    assert (
        counts.pending_items,
        counts.running_items,
        counts.creating_attempts,
        counts.in_flight_attempts,
    ) == (
        2,
        2,
        1,
        2,
    )
    assert not counts.idle
    store.tracking.apply_observations([run("r-0", "success")], at(1), policy())
    store.control.cancel_pending_items(None, "stop", at(2))
    store.tracking.apply_verdicts([AttemptVerdict(refs[1].id, "cancelled", ["x"], "reaper")], at(3), policy())
    summary = {s.job_name: s for s in store.counts.summary_since(T0)}
    assert (summary["a"].items_succeeded, summary["a"].items_cancelled, summary["a"].runs_created) == (
        1,
        2,
        1,
    )
    assert (summary["b"].items_cancelled, summary["b"].runs_created) == (1, 0)
    assert store.counts.summary_since(at(10)) == []


def test_daemons_register_and_heartbeat(store: Store) -> None:
    store.daemons.register("daemon_1", "host", 42, T0)
    store.daemons.heartbeat("daemon_1", {"ok": True}, at(5))
    store.daemons.heartbeat("daemon_1", {"ok": True}, at(6), stopped=True)


def test_a_removed_jobs_pending_items_are_cancelled_by_chunks_running_ones_and_other_jobs_left_alone(
    store: Store,
) -> None:
    add_jobs(store, "a", "b")
    manual_fire(store, "a", 5)
    dispatch_and_create(store, at_most=1)
    manual_fire(store, "b", 2)
    assert store.control.cancel_pending_of_removed_jobs("gone", at(1), limit=2) == ([], True), "none removed"
    store.jobs.sync([job("b")], at(1))  # "a" is no longer in the job files
    chunks = []
    while True:
        transitions, done = store.control.cancel_pending_of_removed_jobs("gone", at(2), limit=2)
        chunks.append([t.kind for t in transitions])
        if done:
            break
    assert chunks == [["item_cancelled"] * 2, ["item_cancelled"] * 2, []]
    counts = store.counts.work()
    assert (counts.pending_items, counts.running_items) == (2, 1), "b's items, and a's item in flight"
    assert [a.cancel_requested for a in store.tracking.in_flight()] == [False], "its run in flight finishes"


def test_daemons_cancelling_a_removed_jobs_items_at_once_cancel_each_once(store: Store) -> None:
    add_jobs(store, "a")
    manual_fire(store, "a", 12)
    store.jobs.sync([], at(1))
    cancel = functools.partial(store.control.cancel_pending_of_removed_jobs, "gone", at(2), limit=5)
    results, errors = together([cancel, cancel, cancel])
    assert not errors
    while not cancel()[1]:
        pass
    assert store.counts.work().pending_items == 0
    kinds = [t.kind for r in results if r is not None for t in r[0]]
    assert kinds.count("item_cancelled") <= 12
    with store.engine.connect() as conn:
        events = (
            conn.execute(sa.text("SELECT item_id FROM event WHERE kind = 'item_cancelled'")).scalars().all()
        )
    assert len(events) == len(set(events)) == 12, "each item cancelled once"
