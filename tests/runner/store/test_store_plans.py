"""Plans: a requested fire's items recorded by chunks, each item once, by one daemon at a time; a plan left
midway (its daemon died) is continued by another once the claim lapses, and a cancel stops it."""

from __future__ import annotations

import functools
from collections.abc import Callable

import pytest
import sqlalchemy as sa
from store_helpers import T0, add_jobs, at, seq_n_status, together

from cyberdesk_runner.store import Store
from cyberdesk_runner.store.records import NewFire, NewItem
from cyberdesk_runner.store.tables import item_t


def _rows(n: int, start: int = 0) -> list[NewItem]:
    return [NewItem({"n": i}) for i in range(start, start + n)]


def _fire(store: Store, fire_id: str) -> tuple[str, int, bool]:
    """(status, items_total, planned) of the fire."""
    view = store.queries.fire_view(fire_id)
    assert view is not None
    [summary] = [f for f in store.fires.of_job(view.job_name) if f.id == fire_id]
    with store.engine.connect() as conn:
        planned_at = conn.execute(
            sa.text("SELECT planned_at FROM fire WHERE id = :id"), {"id": fire_id}
        ).scalar()
    return summary.status, summary.items_total, planned_at is not None


def _requested(store: Store) -> str:
    add_jobs(store, "a")
    return store.fires.request(NewFire("a", "manual", None), T0)


def test_a_plan_left_midway_is_continued_by_another_daemon_once_its_claim_lapses(
    open_store: Callable[[], Store],
) -> None:
    dead, other = open_store(), open_store()
    fire_id = _requested(dead)
    claim = dead.plans.claim_plan(fire_id, T0, expected=5, digest="d1")
    assert claim is not None and claim.next_seq == 0
    assert dead.plans.plan_chunk(fire_id, 0, _rows(2), T0)
    # The planner dies here. Its items are pending (dispatched like any), the fire is not planned yet.
    assert _fire(other, fire_id) == ("running", 5, False)
    assert other.counts.work().requested_fires == 1, "not idle: the plan is still to be finished"
    assert other.fires.requested(now=at(30)) == []
    assert other.plans.claim_plan(fire_id, at(30), expected=5, digest="d1") is None  # the claim still holds

    [request] = other.fires.requested(now=at(61))
    assert (request.id, request.resumed) == (fire_id, True)
    taken = other.plans.claim_plan(fire_id, at(61), expected=5, digest="d1")
    assert taken is not None and (taken.next_seq, taken.digest) == (2, "d1")
    assert dead.plans.plan_chunk(fire_id, 2, _rows(3, 2), at(62)) is False  # woke up too late: refused
    assert other.plans.plan_chunk(fire_id, 2, _rows(3, 2), at(62))
    assert dead.plans.finish_plan(fire_id, at(62)) is None
    transitions = other.plans.finish_plan(fire_id, at(63))
    assert transitions is not None and [(t.kind, t.data) for t in transitions] == [
        ("fire_started", {"items": 5})
    ]
    assert seq_n_status(other, fire_id) == [(n, n, "pending") for n in range(5)]
    assert _fire(other, fire_id) == ("running", 5, True)
    assert other.fires.requested(now=at(600)) == []
    assert other.counts.work().requested_fires == 0


def test_daemons_claiming_one_plan_at_once_leave_it_to_one(open_store: Callable[[], Store]) -> None:
    stores = [open_store() for _ in range(4)]
    add_jobs(stores[0], "a")
    for round_ in range(3):
        fire_id = stores[0].fires.request(NewFire("a", "manual", None), at(round_))
        claims, errors = together(
            [
                functools.partial(s.plans.claim_plan, fire_id, at(round_), expected=1, digest="d")
                for s in stores
            ]
        )
        assert errors == []
        winners = [i for i, claim in enumerate(claims) if claim is not None]
        assert len(winners) == 1
        refused = [s.plans.plan_chunk(fire_id, 0, _rows(1), at(round_)) for s in stores]
        assert refused == [i in winners for i in range(len(stores))]
        assert seq_n_status(stores[0], fire_id) == [(0, 0, "pending")]


def test_an_item_is_recorded_once_per_place_in_its_fire(store: Store) -> None:
    fire_id = _requested(store)
    assert store.plans.claim_plan(fire_id, T0, expected=2, digest=None)
    assert store.plans.plan_chunk(fire_id, 0, _rows(2), T0)
    with pytest.raises(sa.exc.IntegrityError):
        store.plans.plan_chunk(fire_id, 1, _rows(1), T0)
    assert seq_n_status(store, fire_id) == [(0, 0, "pending"), (1, 1, "pending")]


def test_a_fire_being_planned_is_settled_only_once_every_item_is_in(store: Store) -> None:
    fire_id = _requested(store)
    assert store.plans.claim_plan(fire_id, T0, expected=2, digest=None)
    assert store.plans.plan_chunk(fire_id, 0, _rows(1), T0)
    [(first, *_)] = _item_ids(store, fire_id)
    store.control.cancel_pending_items(None, "not this one", at(1), item_ids=[first])
    assert _fire(store, fire_id) == ("running", 2, False), "its last item ended, but more are coming"
    assert store.plans.plan_chunk(fire_id, 1, _rows(1, 1), at(2))
    second = _item_ids(store, fire_id)[1][0]
    store.control.cancel_pending_items(None, "nor this one", at(3), item_ids=[second])
    transitions = store.plans.finish_plan(fire_id, at(4))
    assert transitions is not None and [t.kind for t in transitions] == ["fire_started", "fire_cancelled"]
    assert _fire(store, fire_id) == ("cancelled", 2, True)


def _item_ids(store: Store, fire_id: str) -> list[tuple[str, int]]:
    with store.engine.connect() as conn:
        rows = conn.execute(
            sa.select(item_t.c.id, item_t.c.seq).where(item_t.c.fire_id == fire_id).order_by(item_t.c.seq)
        ).all()
    return [(r.id, r.seq) for r in rows]


def test_cancelling_a_fire_being_planned_stops_its_plan(store: Store) -> None:
    fire_id = _requested(store)
    assert store.plans.claim_plan(fire_id, T0, expected=10, digest=None)
    assert store.plans.plan_chunk(fire_id, 0, _rows(2), T0)
    kinds = [t.kind for t in store.control.cancel_pending_items(None, "stop", at(1), fire_ids=[fire_id])]
    assert kinds == ["item_cancelled", "item_cancelled", "fire_cancelled"]
    assert store.plans.plan_chunk(fire_id, 2, _rows(2, 2), at(2)) is False
    assert store.plans.finish_plan(fire_id, at(2)) is None
    assert _fire(store, fire_id) == ("cancelled", 2, True)
    assert store.counts.work().pending_items == 0


def test_removing_a_job_stops_the_plans_of_its_fires(store: Store) -> None:
    fire_id = _requested(store)
    assert store.plans.claim_plan(fire_id, T0, expected=10, digest=None)
    assert store.plans.plan_chunk(fire_id, 0, _rows(1), T0)
    store.jobs.sync([], at(1))  # the job's file is gone: as the daemon retires it
    store.control.stop_plans_of_job("a", at(1))
    store.control.cancel_pending_of_removed_jobs("the job was removed", at(1), limit=100)
    assert store.plans.plan_chunk(fire_id, 1, _rows(1, 1), at(2)) is False
    assert _fire(store, fire_id) == ("cancelled", 1, True)


def test_a_plan_that_cannot_go_on_ends_with_its_error(store: Store) -> None:
    fire_id = _requested(store)
    assert store.plans.claim_plan(fire_id, T0, expected=4, digest=None)
    assert store.plans.plan_chunk(fire_id, 0, _rows(2), T0)
    kinds = [t.kind for t in store.plans.abandon_plan(fire_id, "the items file changed", at(1))]
    assert kinds == ["item_cancelled", "item_cancelled", "fire_cancelled"]
    assert _fire(store, fire_id) == ("cancelled", 2, True)
    view = store.queries.fire_view(fire_id)
    assert view is not None and view.error == "the items file changed"

    empty = store.fires.request(NewFire("a", "manual", None), at(2))
    assert store.plans.claim_plan(empty, at(2), expected=4, digest=None)
    assert [t.kind for t in store.plans.abandon_plan(empty, "unreadable", at(3))] == ["fire_failed"]
    assert _fire(store, empty) == ("failed", 0, True)
