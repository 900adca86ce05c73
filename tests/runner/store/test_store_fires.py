"""Fires: one per (job, scheduled time) across daemons, inserted with their items in one transaction; manual
fires requested by the CLI and planned by exactly one daemon."""

from __future__ import annotations

import functools
from collections.abc import Callable

from store_helpers import T0, add_jobs, at, items, scheduled, together

from cyberdesk_runner.store import Store
from cyberdesk_runner.store.records import NewFire, NewItem, OverlapRule, StartedFire


def test_a_scheduled_slot_is_recorded_once_with_its_items(store: Store) -> None:
    add_jobs(store, "a")
    first = store.fires.insert(scheduled("a", at(60)), items(3), T0)
    assert first is not None
    assert store.fires.insert(scheduled("a", at(60)), items(5), at(1)) is None
    assert (
        store.fires.insert(NewFire("a", "catchup", at(60)), items(5), at(2)) is None
    )  # same slot, other trigger
    assert store.counts.work().pending_items == 3
    fires = store.fires.of_job("a")
    assert [(f.id, f.status, f.items_total) for f in fires] == [(first, "running", 3)]


def test_skipped_and_failed_slots_take_the_slot_too(store: Store) -> None:
    add_jobs(store, "a")
    assert store.fires.record_skipped(scheduled("a", at(60)), "paused", T0) is not None
    assert store.fires.insert(scheduled("a", at(60)), items(2), T0) is None
    assert store.fires.insert_failed(scheduled("a", at(120)), "no desktop", T0) is not None
    assert store.fires.record_skipped(scheduled("a", at(120)), "paused", T0) is None
    assert store.counts.work().pending_items == 0
    assert [f.status for f in store.fires.of_job("a")] == ["skipped", "failed"]


def test_slots_differ_by_job_and_time_and_manual_fires_never_collide(store: Store) -> None:
    add_jobs(store, "a", "b")
    assert store.fires.insert(scheduled("a", at(60)), items(1), T0)
    assert store.fires.insert(scheduled("b", at(60)), items(1), T0)
    assert store.fires.insert(scheduled("a", at(61)), items(1), T0)
    assert store.fires.insert(NewFire("a", "manual", None), items(1), T0)
    assert store.fires.insert(NewFire("a", "manual", None), items(1), T0)
    assert store.counts.work().pending_items == 5


def test_a_fire_without_items_is_finished_at_once(store: Store) -> None:
    add_jobs(store, "a")
    fire_id = store.fires.insert(scheduled("a", at(60)), [], T0)
    assert [(f.id, f.status) for f in store.fires.of_job("a")] == [(fire_id, "succeeded")]


def _race(stores: list[Store], slot: int) -> list[str]:
    fire_ids, errors = together(
        [functools.partial(s.fires.insert, scheduled("a", at(60 * slot)), items(10), T0) for s in stores]
    )
    assert errors == []
    return [f for f in fire_ids if f is not None]


def test_daemons_racing_for_one_slot_record_it_once(open_store: Callable[[], Store]) -> None:
    stores = [open_store() for _ in range(4)]
    add_jobs(stores[0], "a")
    for slot in range(5):
        assert len(_race(stores, slot)) == 1
    assert len(stores[0].fires.of_job("a")) == 5
    assert stores[0].counts.work().pending_items == 50  # no orphan items from the losers


def test_requested_fire_is_planned_once(open_store: Callable[[], Store]) -> None:
    one, two = open_store(), open_store()
    add_jobs(one, "a")
    fire_id = one.fires.request(NewFire("a", "manual", None, input_overrides={"x": 1}), T0)
    requests = two.fires.requested()
    assert [(r.id, r.job_name, r.trigger, r.input_overrides) for r in requests] == [
        (fire_id, "a", "manual", {"x": 1})
    ]
    assert one.counts.work().requested_fires == 1

    assert two.plans.plan(fire_id, [NewItem({"n": 1}), NewItem({"n": 2})], at(1), priority=True)
    assert one.plans.plan(fire_id, [NewItem({"n": 3})], at(1)) is False  # the other daemon won
    assert one.fires.requested() == []
    counts = one.counts.work()
    assert (counts.requested_fires, counts.pending_items) == (0, 2)


def test_planning_a_fire_with_no_items_finishes_it(store: Store) -> None:
    add_jobs(store, "a")
    fire_id = store.fires.request(NewFire("a", "manual", None), T0)
    assert store.plans.plan(fire_id, [], at(1))
    assert store.fires.of_job("a")[0].status == "succeeded"


def test_fail_fire_only_fails_a_fire_still_requested(store: Store) -> None:
    add_jobs(store, "a")
    planned = store.fires.request(NewFire("a", "manual", None), T0)
    assert store.plans.plan(planned, items(1), T0)
    store.fires.fail(planned, "too late: another daemon planned it", at(1))
    failing = store.fires.request(NewFire("a", "manual", None), T0)
    store.fires.fail(failing, "no desktop", at(1))
    by_id = {f.id: f for f in store.fires.of_job("a")}
    assert by_id[planned].status == "running"
    assert (by_id[failing].status, by_id[failing].error) == ("failed", "no desktop")
    assert store.plans.plan(failing, items(1), at(2)) is False


def test_work_in_flight_lists_open_fires(store: Store) -> None:
    add_jobs(store, "a")
    running = store.fires.insert(scheduled("a", at(0)), items(1), T0)
    requested = store.fires.request(NewFire("a", "manual", None), T0)
    store.fires.insert(scheduled("a", at(60)), [], T0)  # finished at once
    assert sorted(store.fires.in_flight("a")) == sorted([running, requested])


def _start_concurrently(stores: list[Store], rule: OverlapRule) -> list[StartedFire | None]:
    """Each store records a different slot of job "a" at the same moment, as daemons catching up would."""
    results, errors = together(
        [
            functools.partial(s.fires.start, scheduled("a", at(60 * index)), items(3), T0, rule)
            for index, s in enumerate(stores)
        ]
    )
    assert errors == []
    return results


def test_overlap_forbid_starts_one_of_several_slots_recorded_at_once(open_store: Callable[[], Store]) -> None:
    stores = [open_store() for _ in range(6)]
    add_jobs(stores[0], "a")
    rule = OverlapRule("forbid", skip_reason=lambda ids: f"busy with {len(ids)}")
    results = _start_concurrently(stores, rule)
    started = [r for r in results if r is not None and not r.skipped]
    skipped = [r for r in results if r is not None and r.skipped]
    assert len(started) == 1 and len(skipped) == 5
    assert stores[0].fires.in_flight("a") == [started[0].fire_id]
    assert stores[0].counts.work().pending_items == 3  # the skipped slots made no items
    fires = {f.id: f for f in stores[0].fires.of_job("a")}
    assert {fires[r.fire_id].status for r in skipped} == {"skipped"}
    assert [t.kind for r in skipped for t in r.transitions] == ["fire_skipped"] * 5
    # A slot already recorded is not recorded again, skipped or not.
    assert stores[0].fires.start(scheduled("a", at(0)), items(3), T0, rule) is None


def test_overlap_replace_leaves_only_the_last_fire_recorded_open(open_store: Callable[[], Store]) -> None:
    stores = [open_store() for _ in range(6)]
    add_jobs(stores[0], "a")
    rule = OverlapRule("replace", replace_reason="replaced")
    results = _start_concurrently(stores, rule)
    assert all(r is not None and not r.skipped for r in results)
    # Each fire cancelled every fire recorded before it, committed or not when it looked: one is left.
    [open_fire] = stores[0].fires.in_flight("a")
    assert stores[0].counts.work().pending_items == 3
    cancelled = [f for f in stores[0].fires.of_job("a") if f.id != open_fire]
    assert len(cancelled) == 5 and {f.status for f in cancelled} == {"cancelled"}


def test_overlap_allow_starts_every_slot(store: Store) -> None:
    add_jobs(store, "a")
    for slot in range(3):
        started = store.fires.start(scheduled("a", at(60 * slot)), items(2), T0, OverlapRule("allow"))
        assert started is not None and not started.skipped
        assert [t.kind for t in started.transitions] == ["fire_started"]
    assert len(store.fires.in_flight("a")) == 3
