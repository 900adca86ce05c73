"""The store methods behind the CLI's `cancel` and `retry`, and the query rules of `runs` (bounded, merged per status
and desktop), on a fresh store without a daemon, on SQLite and PostgreSQL."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from datetime import datetime, timedelta

import pytest
from store_helpers import T0, add_jobs, policy

from cyberdesk_runner.store import Store
from cyberdesk_runner.store.records import (
    Assignment,
    DispatchView,
    NewFire,
    NewItem,
    RunObservation,
)
from cyberdesk_runner.store.views import AttemptQuery

WORKFLOW = "3f0c2a8e-1c1d-4c36-9a55-1e1d0c0ffee0"
_runs = itertools.count()


@pytest.fixture
def store(open_store: Callable[[], Store]) -> Store:
    """A fresh store (SQLite, and PostgreSQL) with one job, "j"."""
    store = open_store()
    add_jobs(store, "j")
    return store


def _start(store: Store, now: datetime) -> list[tuple[str, str]]:
    """Dispatch every due item (on its pinned desktop) and record a running run each: [(attempt id, run id)]."""

    def choose(view: DispatchView) -> list[Assignment]:
        # Desktop m-N is named desk-N.
        return [
            Assignment(
                d.id,
                WORKFLOW,
                d.machine_id or "m-any",
                (d.machine_id or "m-any").replace("m-", "desk-"),
                now + timedelta(hours=1),
            )
            for d in view.due
        ]

    refs = store.dispatch.assign(now, choose, lease=timedelta(seconds=30))
    started = [(r.id, f"00000000-0000-4000-8000-{next(_runs):012d}") for r in refs]
    store.tracking.record_created([(a, RunObservation(run, "running")) for a, run in started], now, policy())
    return started


def _finish(store: Store, runs: list[tuple[str, str]], statuses: list[str], now: datetime) -> None:
    store.tracking.apply_observations(
        [RunObservation(run, s) for (_, run), s in zip(runs, statuses, strict=True)], now, policy()
    )


def test_a_requested_fire_is_cancelled_before_planning_and_cannot_be_planned(store: Store) -> None:
    fire_id = store.fires.request(NewFire("j", "manual", None), T0)
    assert [t.kind for t in store.control.cancel_requested_fire(fire_id, "no", T0)] == ["fire_cancelled"]
    assert store.control.cancel_requested_fire(fire_id, "no", T0) == []
    assert not store.plans.plan(fire_id, [NewItem({"n": 1})], T0)
    view = store.queries.fire_view(fire_id)
    assert view is not None and view.status == "cancelled" and view.finished_at == T0


def test_retry_failed_copies_inputs_and_desktops_of_failed_items_only(store: Store) -> None:
    items = [
        NewItem({"n": 1}, "m-1", "desk-1"),
        NewItem({"n": 2}, "m-2", "desk-2"),
        NewItem({"n": 3}, "m-3", "desk-3"),
    ]
    fire_id = store.fires.insert(NewFire("j", "manual", None, input_overrides={"x": "y"}), items, T0)
    assert fire_id is not None
    _finish(store, _start(store, T0), ["task_failed", "success", "error"], T0)
    failed = [i for i in store.queries.item_views(fire_id) if i.status == "failed"]
    assert [i.inputs["n"] for i in failed] == [1, 3]

    retry_id = store.control.retry_failed(fire_id, T0 + timedelta(minutes=1))
    assert retry_id is not None
    retry = store.queries.fire_view(retry_id)
    assert retry is not None
    assert (retry.trigger, retry.retry_of, retry.status, retry.items_total) == (
        "retry",
        fire_id,
        "running",
        2,
    )
    assert retry.input_overrides == {"x": "y"}
    assert [
        (i.inputs, i.machine_id, i.machine_name, i.status) for i in store.queries.item_views(retry_id)
    ] == [
        ({"n": 1}, "m-1", "desk-1", "pending"),
        ({"n": 3}, "m-3", "desk-3", "pending"),
    ]
    assert any(e.kind == "retried" for e in store.queries.event_page(fire_id=fire_id).events)

    one = store.control.retry_failed(failed[0].id, T0)
    assert one is not None and [i.inputs for i in store.queries.item_views(one)] == [{"n": 1}]
    ok = next(i for i in store.queries.item_views(fire_id) if i.status == "succeeded")
    assert store.control.retry_failed(ok.id, T0) is None
    assert store.control.retry_failed("fire_missing", T0) is None


def test_retry_of_a_fire_that_could_not_be_planned_requests_it_again(store: Store) -> None:
    fire_id = store.fires.request(NewFire("j", "manual", None, input_overrides={"a": "b"}), T0)
    store.fires.fail(fire_id, "its target selects no desktop", T0)
    retry_id = store.control.retry_failed(fire_id, T0)
    assert retry_id is not None
    retry = store.queries.fire_view(retry_id)
    assert retry is not None and retry.status == "requested" and retry.retry_of == fire_id
    assert [r.id for r in store.fires.requested()] == [retry_id]
    assert store.fires.requested()[0].input_overrides == {"a": "b"}


def test_resolve_names_fires_items_attempts_and_runs(store: Store) -> None:
    fire_id = store.fires.insert(NewFire("j", "manual", None), [NewItem({"n": 1}, "m-1", "desk-1")], T0)
    assert fire_id is not None
    ((attempt_id, run_id),) = _start(store, T0)
    item_id = store.queries.item_views(fire_id)[0].id
    assert store.queries.resolve(fire_id).kind == "fire"  # type: ignore[union-attr]
    assert store.queries.resolve(item_id).fire_id == fire_id  # type: ignore[union-attr]
    by_run = store.queries.resolve(run_id.upper())
    assert by_run is not None and (by_run.kind, by_run.id, by_run.item_id) == ("attempt", attempt_id, item_id)
    assert store.queries.resolve("fire_nope") is None and store.queries.resolve("hello") is None


def test_runs_are_the_newest_first_across_statuses_and_desktop_name_or_id(store: Store) -> None:
    for minute in range(6):
        now = T0 + timedelta(minutes=minute)
        fire_id = store.fires.insert(
            NewFire("j", "manual", None),
            [NewItem({"n": minute}, f"m-{minute % 2}", f"desk-{minute % 2}")],
            now,
        )
        assert fire_id is not None
        runs = _start(store, now)
        if minute < 5:  # the newest stays running
            _finish(store, runs, ["success"], now)
    every = store.queries.attempt_views(AttemptQuery(limit=100))
    assert [a.created_at for a in every] == sorted((a.created_at for a in every), reverse=True)
    two = store.queries.attempt_views(AttemptQuery(statuses=("running", "success"), limit=2))
    assert [a.id for a in two] == [a.id for a in every[:2]]
    by_name = store.queries.attempt_views(AttemptQuery(machine="desk-1", limit=100))
    by_id = store.queries.attempt_views(AttemptQuery(machine="m-1", limit=100))
    assert [a.id for a in by_name] == [a.id for a in by_id] == [a.id for a in every if a.machine_id == "m-1"]
    assert store.queries.attempt_views(AttemptQuery(since=T0 + timedelta(minutes=5), limit=100)) == every[:1]


def test_a_fires_items_come_a_page_at_a_time_in_seq_order(store: Store) -> None:
    fire_id = store.fires.insert(NewFire("j", "manual", None), [NewItem({"n": n}) for n in range(7)], T0)
    other = store.fires.insert(NewFire("j", "manual", None), [NewItem({"n": 99})], T0)
    assert fire_id is not None and other is not None
    pages = [store.queries.item_views(fire_id, limit=3, offset=offset) for offset in (0, 3, 6, 9)]
    assert [[i.inputs["n"] for i in page] for page in pages] == [[0, 1, 2], [3, 4, 5], [6], []]
    assert [i.seq for i in store.queries.item_views(fire_id)] == sorted(
        i.seq for i in pages[0] + pages[1] + pages[2]
    )
    assert store.queries.fire_view(fire_id).counts.total == 7  # type: ignore[union-attr]


def test_the_newest_runs_of_one_fire(store: Store) -> None:
    fires = []
    for minute in range(4):
        now = T0 + timedelta(minutes=minute)
        fire_id = store.fires.insert(
            NewFire("j", "manual", None), [NewItem({"n": minute}, f"m-{minute}", f"desk-{minute}")], now
        )
        assert fire_id is not None
        fires.append(fire_id)
        _start(store, now)
    # A second fire's runs interleave with the first's; only the fire asked for comes back, newest first.
    later = store.fires.insert(
        NewFire("j", "manual", None), [NewItem({"n": n}, f"m-{n}", f"desk-{n}") for n in range(4, 7)], T0
    )
    assert later is not None
    runs = _start(store, T0 + timedelta(minutes=10))
    newest = store.queries.attempt_views(AttemptQuery(fire_id=later, limit=2))
    assert {a.fire_id for a in newest} == {later} and len(newest) == 2
    assert {a.id for a in newest} < {a for a, _ in runs}
    assert [a.fire_id for a in store.queries.attempt_views(AttemptQuery(fire_id=fires[0], limit=10))] == [
        fires[0]
    ]
