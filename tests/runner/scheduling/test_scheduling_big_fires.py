"""A scheduled fire too big for one transaction (its items file has more rows than a chunk) is recorded requested,
once per slot, and planned by chunks like a manual trigger; overlap still judges it, and a `replace` fire asks
the cancel of a big fire before it (finished by chunks) instead of cancelling it in its own transaction."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

import pytest
from sched_helpers import FLEET, Harness, utc

from cyberdesk_runner import bulk, planning
from cyberdesk_runner.store import Store
from cyberdesk_runner.store import fires as store_fires
from cyberdesk_runner.store.records import Assignment, DispatchView

TEN = {"cron": "*/10 * * * *"}
ROWS = 12


@pytest.fixture(autouse=True)
def _small_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    """A chunk is 5 items: a fire of 12 is too big for one transaction."""
    for name in ("PLAN_CHUNK", "PLAN_CHUNK_MIN", "PLAN_CHUNK_MAX"):
        monkeypatch.setattr(planning, name, 5)
    for name in ("CHUNK_FIRST", "CHUNK_MIN", "CHUNK_MAX"):
        monkeypatch.setattr(bulk, name, 5)
    monkeypatch.setattr(bulk, "SQLITE_PAUSE", 0)
    monkeypatch.setattr(store_fires, "CANCEL_AT_ONCE", 5)


def _big_job(harness: Harness, overlap: str) -> None:
    """The job, then its first slot (12:10) fired."""
    (harness.folder / "rows.csv").write_text("n\n" + "".join(f"{n}\n" for n in range(ROWS)))
    harness.clock.set(utc(2026, 6, 1, 12, 0))
    harness.add_job("big", TEN, overlap=overlap, items_from="rows.csv")
    harness.tick()
    harness.run_until(utc(2026, 6, 1, 12, 10, 1))


def _plan(harness: Harness) -> None:
    """What a daemon's dispatch round does with requested fires: plan them by chunks."""
    job = harness.catalog.get("big")
    assert job is not None
    for request in harness.store.fires.requested(now=harness.clock.now()):
        outcome = planning.plan_fire(harness.store, job, FLEET, request, harness.clock.now)
        assert outcome.items == ROWS


def _items(store: Store, fire_id: str) -> list[tuple[int, str, str]]:
    return [(i.seq, i.inputs["n"], i.status) for i in store.queries.item_views(fire_id, limit=1_000)]


def test_a_big_scheduled_fire_is_recorded_once_requested_then_planned_by_chunks(harness: Harness) -> None:
    _big_job(harness, "allow")
    other = harness.new_scheduler(seed=9)  # another daemon ticking the same slot
    harness.tick(other)
    [fire] = harness.fires("big")
    assert (fire.status, fire.items_total, fire.scheduled_for) == ("requested", ROWS, utc(2026, 6, 1, 12, 10))
    assert [t.kind for t in harness.transitions] == ["fire_requested"]
    assert _items(harness.store, fire.id) == []
    _plan(harness)
    assert _items(harness.store, fire.id) == [(n, str(n), "pending") for n in range(ROWS)]
    [fire] = harness.fires("big")
    assert (fire.status, fire.items_total) == ("running", ROWS)


def test_overlap_forbid_counts_a_big_fire_not_yet_planned_as_in_flight(harness: Harness) -> None:
    _big_job(harness, "forbid")
    harness.run_until(utc(2026, 6, 1, 12, 20, 1))
    first, second = harness.fires("big")
    assert (first.status, second.status) == ("requested", "skipped")


def test_a_replacing_fire_asks_the_cancel_of_a_big_fire_before_it(harness: Harness) -> None:
    _big_job(harness, "replace")
    _plan(harness)
    [first] = harness.fires("big")

    def take_one(view: DispatchView) -> list[Assignment]:
        item = view.due[0]
        return [Assignment(item.id, "wf", "d-1", "desk-1", harness.clock.now() + timedelta(hours=1))]

    harness.store.dispatch.assign(harness.clock.now(), take_one, lease=timedelta(seconds=30))  # one running
    harness.transitions.clear()
    harness.run_until(utc(2026, 6, 1, 12, 20, 1))
    first_after, second = harness.fires("big")
    assert (first_after.id, second.status) == (first.id, "requested")
    assert [t.kind for t in harness.transitions] == ["fire_requested"], "no item cancelled in its transaction"
    assert harness.store.dispatch.assign(harness.clock.now(), take_one, lease=timedelta(seconds=30)) == [], (
        "the replaced fire's items get no new run"
    )
    # Any daemon finishes the cancel by chunks, at once (the claim is the replacing fire's, given up at once).
    assert harness.store.control.cancels_to_continue(harness.clock.now()) == [first.id]
    kinds: Counter[str] = Counter()
    bulk.continue_cancels(
        harness.store, harness.clock.now, on_transitions=lambda ts: kinds.update(t.kind for t in ts)
    )
    assert kinds == Counter({"item_cancelled": ROWS - 1, "cancel_requested": 1})
    statuses = Counter(i.status for i in harness.store.queries.item_views(first.id, limit=1_000))
    assert statuses == Counter({"cancelled": ROWS - 1, "running": 1})
    reasons = {
        e.data["reason"]
        for e in harness.store.queries.event_page(fire_id=first.id, limit=100).events
        if e.kind == "item_cancelled"
    }
    assert reasons == {"replaced by the fire of 2026-06-01T12:20:00+00:00 (overlap: replace)"}


def test_a_replacing_fire_cancels_a_fire_not_yet_planned(harness: Harness) -> None:
    _big_job(harness, "replace")
    harness.run_until(utc(2026, 6, 1, 12, 20, 1))
    first, second = harness.fires("big")
    assert (first.status, second.status) == ("cancelled", "requested")
    _plan(harness)  # only the second is planned
    assert _items(harness.store, first.id) == []
    assert len(_items(harness.store, second.id)) == ROWS
