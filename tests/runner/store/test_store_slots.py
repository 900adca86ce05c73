"""A scheduler tick's slots recorded at once (`store.fires.record_slots`): one transaction for every job's fires
and watermarks, each job all or nothing, with the exactly-once and overlap rules of one fire at a time."""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Connection
from store_helpers import T0, add_jobs, at, items, scheduled, together

from cyberdesk_runner.store import Store
from cyberdesk_runner.store import fires as fires_module
from cyberdesk_runner.store.jobs import move_last_slot
from cyberdesk_runner.store.records import JobSlots, NewItem, OverlapRule, RecordedSlots, SlotFire
from cyberdesk_runner.store.tables import event_t

ALLOW = OverlapRule("allow")
FORBID = OverlapRule("forbid", skip_reason=lambda ids: f"busy with {len(ids)}")


def run(job: str, seconds: float, n: int = 2) -> SlotFire:
    return SlotFire(scheduled(job, at(seconds)), items(n))


def last_slot(store: Store, job: str) -> datetime | None:
    state = store.jobs.get(job)
    assert state is not None
    return state.last_slot_at


def kinds(recorded: RecordedSlots) -> list[tuple[str, str]]:
    return sorted((t.kind, t.job_name) for t in recorded.transitions)


def logged(store: Store) -> list[tuple[str, str]]:
    """The fire events in the event log."""
    with store.core.read() as conn:
        rows = conn.execute(
            sa.select(event_t.c.kind, event_t.c.job_name).where(event_t.c.kind.like("fire_%"))
        )
        return sorted((r.kind, r.job_name) for r in rows)


def test_a_tick_records_run_skipped_and_failed_slots_and_moves_each_watermark(store: Store) -> None:
    add_jobs(store, "a", "b", "c", "quiet")
    recorded = store.fires.record_slots(
        [
            JobSlots("c", ALLOW, [SlotFire(scheduled("c", at(60)), error="no desktop")], at(61)),
            JobSlots("a", ALLOW, [run("a", 60, n=3)], at(61)),
            JobSlots("b", ALLOW, [SlotFire(scheduled("b", at(60)), skip_reason="paused")], at(61)),
            JobSlots("quiet", ALLOW, [], at(61)),  # no slot due: only its watermark moves
        ],
        at(61),
    )
    assert recorded.failed == {}
    assert kinds(recorded) == [("fire_failed", "c"), ("fire_skipped", "b"), ("fire_started", "a")]
    assert [(f.status, f.items_total) for f in store.fires.of_job("a")] == [("running", 3)]
    assert [(f.status, f.skip_reason) for f in store.fires.of_job("b")] == [("skipped", "paused")]
    assert [(f.status, f.error) for f in store.fires.of_job("c")] == [("failed", "no desktop")]
    assert store.counts.work().pending_items == 3
    assert {name: last_slot(store, name) for name in ("a", "b", "c", "quiet")} == dict.fromkeys(
        ("a", "b", "c", "quiet"), at(61)
    )
    assert logged(store) == kinds(recorded)  # the event log has them, committed with the fires


def test_a_slot_already_recorded_keeps_its_fire_and_the_watermark_still_moves(store: Store) -> None:
    add_jobs(store, "a")
    first = store.fires.insert(scheduled("a", at(60)), items(1), T0)  # another daemon, or before a restart
    recorded = store.fires.record_slots([JobSlots("a", ALLOW, [run("a", 60, n=5)], at(61))], at(61))
    assert recorded.transitions == [] and recorded.failed == {}
    assert [(f.id, f.items_total) for f in store.fires.of_job("a")] == [(first, 1)]
    assert store.counts.work().pending_items == 1  # no orphan items
    assert last_slot(store, "a") == at(61)


def test_a_watermark_never_moves_back(store: Store) -> None:
    add_jobs(store, "a")
    store.fires.record_slots([JobSlots("a", ALLOW, [], at(120))], at(120))
    store.fires.record_slots([JobSlots("a", ALLOW, [run("a", 60)], at(61))], at(121))  # a late daemon
    assert last_slot(store, "a") == at(120)


def test_forbid_runs_the_first_of_several_slots_and_skips_the_rest(store: Store) -> None:
    add_jobs(store, "a")
    recorded = store.fires.record_slots([JobSlots("a", FORBID, [run("a", 0), run("a", 60)], at(61))], at(61))
    assert [f.status for f in store.fires.of_job("a")] == ["running", "skipped"]
    assert store.fires.of_job("a")[1].skip_reason == "busy with 1"
    assert kinds(recorded) == [("fire_skipped", "a"), ("fire_started", "a")]
    # Still in flight at the next tick: skipped again.
    store.fires.record_slots([JobSlots("a", FORBID, [run("a", 120)], at(121))], at(121))
    assert [f.status for f in store.fires.of_job("a")] == ["running", "skipped", "skipped"]


def test_a_replacing_run_is_refused_it_belongs_to_start(store: Store) -> None:
    add_jobs(store, "a")
    replace = OverlapRule("replace", replace_reason="replaced")
    with pytest.raises(ValueError, match="start"):
        store.fires.record_slots([JobSlots("a", replace, [run("a", 60)], at(61))], at(61))
    assert store.fires.of_job("a") == []
    # A replace job's skipped slots are recorded here like any other.
    skip = SlotFire(scheduled("a", at(60)), skip_reason="superseded")
    store.fires.record_slots([JobSlots("a", replace, [skip], at(61))], at(61))
    assert [f.status for f in store.fires.of_job("a")] == ["skipped"]


# -- one job failing ---------------------------------------------------------------------------------------


def _tick_with_a_bad_job(store: Store) -> RecordedSlots:
    add_jobs(store, "a", "bad", "z")
    return store.fires.record_slots(
        [JobSlots(name, ALLOW, [run(name, 60)], at(61)) for name in ("a", "bad", "z")], at(61)
    )


def _good_jobs_recorded_and_bad_one_untouched(store: Store, recorded: RecordedSlots) -> None:
    assert list(recorded.failed) == ["bad"]
    assert kinds(recorded) == [("fire_started", "a"), ("fire_started", "z")]
    assert [f.status for f in store.fires.of_job("a")] == ["running"]
    assert [f.status for f in store.fires.of_job("z")] == ["running"]
    assert store.fires.of_job("bad") == []
    assert store.counts.work().pending_items == 4
    assert (last_slot(store, "a"), last_slot(store, "bad"), last_slot(store, "z")) == (at(61), None, at(61))
    assert logged(store) == kinds(recorded)


def test_a_job_whose_items_cannot_be_stored_is_rolled_back_alone(store: Store) -> None:
    add_jobs(store, "a", "bad", "z")
    unstorable = SlotFire(scheduled("bad", at(60)), [NewItem({"n": 1}), NewItem({"when": object()})])
    recorded = store.fires.record_slots(
        [JobSlots("a", ALLOW, [run("a", 60)], at(61)), JobSlots("bad", ALLOW, [unstorable], at(61))]
        + [JobSlots("z", ALLOW, [run("z", 60)], at(61))],
        at(61),
    )
    _good_jobs_recorded_and_bad_one_untouched(store, recorded)
    assert "not JSON serializable" in recorded.failed["bad"]


def test_a_job_the_database_refuses_is_rolled_back_alone_and_the_transaction_goes_on(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A statement the database rejects (on PostgreSQL this aborts the transaction until rolled back to the
    job's savepoint) fails its job only."""
    calls: list[str] = []

    def refuse_bad(conn: Connection, name: str, slot: datetime) -> None:
        calls.append(name)
        if name == "bad":
            conn.execute(sa.text("SELECT no_such_column FROM job"))
        move_last_slot(conn, name, slot)

    monkeypatch.setattr(fires_module, "move_last_slot", refuse_bad)
    recorded = _tick_with_a_bad_job(store)
    _good_jobs_recorded_and_bad_one_untouched(store, recorded)
    assert "no_such_column" in recorded.failed["bad"]
    # Tried once together, then once each under a savepoint: the good jobs were not written twice.
    assert calls == ["a", "bad", "a", "bad", "z"]


def test_a_crash_in_the_middle_keeps_nothing(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    def killed_at_bad(conn: Connection, name: str, slot: datetime) -> None:
        if name == "bad":
            raise KeyboardInterrupt("the daemon is killed")
        move_last_slot(conn, name, slot)

    monkeypatch.setattr(fires_module, "move_last_slot", killed_at_bad)
    with pytest.raises(KeyboardInterrupt):
        _tick_with_a_bad_job(store)
    for name in ("a", "bad", "z"):
        assert store.fires.of_job(name) == [] and last_slot(store, name) is None
    assert store.counts.work().pending_items == 0


# -- several daemons ---------------------------------------------------------------------------------------


def _record_together(stores: Sequence[Store], ticks: Sequence[Sequence[JobSlots]]) -> list[Any]:
    results, errors = together(
        [
            functools.partial(s.fires.record_slots, tick, at(600))
            for s, tick in zip(stores, ticks, strict=True)
        ]
    )
    assert errors == []
    return results


def test_daemons_recording_the_same_tick_record_each_slot_once(open_store: Callable[[], Store]) -> None:
    stores = [open_store() for _ in range(4)]
    names = [f"job-{i:02d}" for i in range(12)]
    add_jobs(stores[0], *names)
    for second in range(0, 300, 60):
        tick = [JobSlots(name, ALLOW, [run(name, second, n=3)], at(second + 1)) for name in names]
        results = _record_together(stores, [tick] * len(stores))
        started = [t for r in results for t in r.transitions if t.kind == "fire_started"]
        assert (
            sorted(t.job_name for t in started) == names
        )  # each slot started once, by one daemon or another
    for name in names:
        fires = stores[0].fires.of_job(name)
        assert [f.scheduled_for for f in fires] == [at(s) for s in range(0, 300, 60)]
        assert last_slot(stores[0], name) == at(241)
    assert stores[0].counts.work().pending_items == len(names) * 5 * 3  # no orphan items from the losers


def test_forbid_holds_across_daemons_recording_different_slots_at_once(
    open_store: Callable[[], Store],
) -> None:
    """Each daemon records a different slot of one `forbid` job (and another job's) at the same instant, so
    none sees the others' fires when it looks: the job's row, locked where the slots are recorded, makes them
    take turns, and exactly one starts. (Fails on PostgreSQL without that lock.)"""
    stores = [open_store() for _ in range(4)]
    add_jobs(stores[0], "a", "other")
    for round_ in range(5):
        base = 3600 * round_
        ticks = [
            [
                JobSlots("a", FORBID, [run("a", base + 60 * index)], at(base + 60 * index + 1)),
                JobSlots("other", ALLOW, [run("other", base + 60 * index)]),
            ]
            for index in range(len(stores))
        ]
        _record_together(stores, ticks)
        fires = [f for f in stores[0].fires.of_job("a") if f.scheduled_for and f.scheduled_for >= at(base)]
        assert sorted(f.status for f in fires) == ["running"] + ["skipped"] * (len(stores) - 1), round_
        assert len(stores[0].fires.in_flight("other")) == len(stores) * (round_ + 1)
        stores[0].control.cancel_pending_items("a", "test: finished", at(base + 600))
