"""Overlap (forbid / allow / replace), pause and resume (kept in the store, across restarts and reloads), and hot
reload of job files (edited schedules, removed jobs, broken files)."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta

from sched_helpers import WORKFLOW_ID, Harness, by_status, utc

from cyberdesk_runner.catalog import JobCatalog
from cyberdesk_runner.scheduling.policy import overlap_skip_reason
from cyberdesk_runner.store import Store
from cyberdesk_runner.store.records import Assignment, DispatchView, NewFire, NewItem, OverlapRule

TEN = {"cron": "*/10 * * * *"}


def _start(harness: Harness, name: str = "ten", schedule: object = TEN, **settings: object) -> None:
    harness.clock.set(utc(2026, 6, 1, 12, 0))
    harness.add_job(name, schedule, **settings)
    harness.tick()


# -- overlap ---------------------------------------------------------------------------------------------


def test_overlap_forbid_skips_a_fire_while_the_previous_one_is_in_flight(harness: Harness) -> None:
    _start(harness, overlap="forbid")
    harness.run_until(utc(2026, 6, 1, 12, 20, 1))
    first, second = harness.fires("ten")
    assert first.status == "running"
    assert second.status == "skipped"
    assert second.skip_reason == f"the previous fire ({first.id}) still has work in flight; overlap: forbid"
    harness.finish_all("ten")
    harness.run_until(utc(2026, 6, 1, 12, 30, 1))
    assert harness.started("ten") == [utc(2026, 6, 1, 12, 30)]


def test_overlap_forbid_is_the_default(harness: Harness) -> None:
    harness.clock.set(utc(2026, 6, 1, 12, 0))
    harness.add_job("ten", TEN, overlap="forbid")
    path = harness.folder / "ten.yaml"
    path.write_text(path.read_text().replace("overlap: forbid\n", ""))
    harness.reload()
    job = harness.catalog.get("ten")
    assert job is not None and job.loaded.spec.overlap == "forbid"


def test_overlap_allow_runs_both(harness: Harness) -> None:
    _start(harness, overlap="allow")
    harness.run_until(utc(2026, 6, 1, 12, 30, 1))
    assert [f.status for f in harness.fires("ten")] == ["running", "running", "running"]


def test_overlap_replace_cancels_the_previous_fire_then_starts(harness: Harness) -> None:
    _start(harness, overlap="replace", items=[{"n": 1}, {"n": 2}])
    harness.run_until(utc(2026, 6, 1, 12, 10, 1))
    [first] = harness.fires("ten")

    def take_one(view: DispatchView) -> list[Assignment]:
        item = view.due[0]
        return [Assignment(item.id, WORKFLOW_ID, "d-1", "desk-1", harness.clock.now() + timedelta(hours=1))]

    harness.store.dispatch.assign(
        harness.clock.now(), take_one, lease=timedelta(seconds=30)
    )  # one item now running
    harness.transitions.clear()
    harness.run_until(utc(2026, 6, 1, 12, 20, 1))
    first_after, second = harness.fires("ten")
    assert second.status == "running" and second.scheduled_for == utc(2026, 6, 1, 12, 20)
    kinds = [t.kind for t in harness.transitions]
    assert kinds[0] == "fire_started" and sorted(kinds[1:]) == ["cancel_requested", "item_cancelled"]
    [cancelled] = [t for t in harness.transitions if t.kind == "item_cancelled"]
    assert cancelled.fire_id == first.id
    assert cancelled.data == {
        "reason": "replaced by the fire of 2026-06-01T12:20:00+00:00 (overlap: replace)"
    }
    # The running attempt is flagged; the daemon's reaper cancels its run in Cyberdesk.
    [attempt] = harness.store.tracking.in_flight()
    assert attempt.cancel_requested
    assert first_after.status == "running"  # until the reaper settles the running attempt


def test_overlap_replace_starts_only_the_newest_of_several_due_at_once(harness: Harness) -> None:
    _start(harness, overlap="replace", catchup="all")
    harness.clock.set(utc(2026, 6, 1, 12, 35))  # 12:10, 12:20 and 12:30 due at once (a stall)
    harness.tick()
    fires = harness.fires("ten")
    assert [(f.scheduled_for, f.status) for f in fires] == [
        (utc(2026, 6, 1, 12, 10), "skipped"),
        (utc(2026, 6, 1, 12, 20), "skipped"),
        (utc(2026, 6, 1, 12, 30), "running"),
    ]
    assert fires[0].skip_reason == "superseded by the fire of 2026-06-01T12:30:00Z (overlap: replace)"


def test_overlap_forbid_with_catchup_all_runs_the_first_and_skips_the_rest(harness: Harness) -> None:
    _start(harness, overlap="forbid", catchup="all")
    harness.clock.set(utc(2026, 6, 1, 12, 35))
    harness.tick()
    assert [f.status for f in harness.fires("ten")] == ["running", "skipped", "skipped"]


def test_overlap_forbid_holds_across_two_daemons_racing_the_same_slots(
    harness: Harness, store_url: str
) -> None:
    """Two daemons (own store connections, own catalog) tick at the same instant while several slots of one
    job are due at once: whichever records which slot, exactly one fire starts per round, never two at once.
    (Here both usually meet on the first slot; the next test forces them onto different slots.)"""
    _start(harness, overlap="forbid", catchup="all", max_delay="1d")
    harness.finish_all("ten")
    other_store = Store(store_url)  # its own engine and connections, like another process
    other_catalog = JobCatalog(harness.folder)
    harness.reload(other_catalog)
    daemons = [
        harness.new_scheduler(seed=1),
        harness.new_scheduler(seed=2, store=other_store, catalog=other_catalog),
    ]
    for daemon in daemons:
        daemon.tick()
    errors: list[BaseException] = []

    def tick(index: int, barrier: threading.Barrier) -> None:
        try:
            barrier.wait()
            daemons[index].tick()
        except BaseException as exc:  # reported below
            errors.append(exc)

    try:
        for round_ in range(8):
            harness.advance(minutes=35)  # three slots due at once, for both daemons
            barrier = threading.Barrier(2)
            threads = [threading.Thread(target=tick, args=(i, barrier)) for i in range(2)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            assert errors == []
            fires = harness.fires("ten")
            running = [f for f in fires if f.status == "running"]
            assert len(running) == 1, (round_, [(f.scheduled_for, f.status) for f in fires])
            assert len({f.scheduled_for for f in fires}) == len(fires)  # and no slot recorded twice
            harness.finish_all("ten")  # the fire ends: the next round may start one
        assert by_status(harness.fires("ten"))["skipped"] >= 8 * 2
    finally:
        other_store.close()


def test_overlap_forbid_holds_when_two_daemons_record_different_slots_at_the_same_moment(
    harness: Harness, store_url: str
) -> None:
    """The worst interleaving, forced: each daemon (its own store connections) records a *different* slot of one
    `forbid` job at the same instant, so neither sees the other's fire when it looks. The job lock taken where
    the fire is recorded makes them take turns: one starts, the other is skipped, in every round."""
    harness.clock.set(utc(2026, 6, 1, 12, 0))
    harness.add_job("ten", None, overlap="forbid")
    stores = [harness.store, Store(store_url)]
    rule = OverlapRule("forbid", skip_reason=overlap_skip_reason)
    errors: list[BaseException] = []

    def record(index: int, slot: datetime, barrier: threading.Barrier) -> None:
        try:
            fire = NewFire("ten", "scheduled", slot, None)
            barrier.wait()
            stores[index].fires.start(fire, [NewItem({"n": index})], harness.clock.now(), rule)
        except BaseException as exc:  # reported below
            errors.append(exc)

    try:
        for round_ in range(20):
            first = utc(2026, 6, 1, 13, 0) + timedelta(hours=round_)
            barrier = threading.Barrier(2)
            threads = [
                threading.Thread(target=record, args=(i, first + timedelta(minutes=10 * i), barrier))
                for i in range(2)
            ]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            assert errors == []
            fires = [f for f in harness.fires("ten") if f.scheduled_for and f.scheduled_for >= first]
            assert sorted(f.status for f in fires) == ["running", "skipped"], round_
            harness.finish_all("ten")
    finally:
        stores[1].close()


# -- pause and resume ------------------------------------------------------------------------------------


def test_paused_slots_are_recorded_as_skipped_across_a_restart_and_resume_does_not_catch_up(
    harness: Harness,
) -> None:
    _start(harness)
    harness.clock.set(utc(2026, 6, 1, 12, 5))
    assert harness.store.jobs.set_paused("ten", True, harness.clock.now())
    harness.run_until(utc(2026, 6, 1, 12, 20, 1))
    harness.scheduler = harness.new_scheduler()  # restart while paused
    harness.reload()  # and a config reload: the pause belongs to the store, not to the file
    harness.run_until(utc(2026, 6, 1, 12, 30, 1))
    skipped = harness.fires("ten")
    assert [(f.scheduled_for, f.status, f.skip_reason, f.trigger) for f in skipped] == [
        (utc(2026, 6, 1, 12, m), "skipped", "job paused", "scheduled") for m in (10, 20, 30)
    ]
    harness.clock.set(utc(2026, 6, 1, 12, 35))
    assert harness.store.jobs.set_paused("ten", False, harness.clock.now())
    harness.run_until(utc(2026, 6, 1, 12, 40, 1))
    assert harness.started("ten") == [utc(2026, 6, 1, 12, 40)]


def test_pause_survives_a_restart_with_the_store_reopened(harness: Harness, store_url: str) -> None:
    _start(harness)
    harness.store.jobs.set_paused("ten", True, harness.clock.now())
    harness.store.close()
    store = Store(store_url)
    try:
        restarted = Harness(store, harness.folder, harness.clock)
        restarted.reload()
        state = store.jobs.get("ten")
        assert state is not None and state.paused
        restarted.run_until(utc(2026, 6, 1, 12, 10, 1))
        assert [(f.status, f.skip_reason) for f in restarted.fires("ten")] == [("skipped", "job paused")]
    finally:
        store.close()


def test_pause_seen_within_one_tick(harness: Harness) -> None:
    _start(harness)
    harness.clock.set(utc(2026, 6, 1, 12, 9, 59))
    assert harness.tick() == utc(2026, 6, 1, 12, 10)
    harness.store.jobs.set_paused("ten", True, harness.clock.now())  # the CLI, between two ticks
    harness.clock.set(utc(2026, 6, 1, 12, 10))
    harness.tick()
    assert [f.status for f in harness.fires("ten")] == ["skipped"]


def test_paused_during_a_long_downtime_is_summarised(harness: Harness) -> None:
    harness.clock.set(utc(2026, 6, 1, 0, 0))
    harness.add_job("busy", {"cron": "* * * * * *"})
    harness.tick()
    harness.store.jobs.set_paused("busy", True, harness.clock.now())
    harness.clock.set(utc(2026, 6, 1, 1, 0))
    harness.new_scheduler().tick()
    fires = harness.fires("busy")
    assert len(fires) == 101 and {f.status for f in fires} == {"skipped"}
    assert fires[0].skip_reason == (
        "job paused; this record stands for more than 1000 slots from 2026-06-01T00:00:01Z to before "
        "2026-06-01T00:58:21Z"
    )


# -- hot reload ------------------------------------------------------------------------------------------


def test_edited_schedule_takes_effect_without_catching_up_or_refiring(harness: Harness) -> None:
    harness.clock.set(utc(2026, 6, 1, 5, 0))
    harness.add_job("daily", {"cron": "0 6 * * *"})
    harness.tick()
    harness.run_until(utc(2026, 6, 1, 6, 30))
    harness.add_job("daily", {"cron": "15 6 * * *"})  # 06:15 today is already past: not a missed slot
    harness.run_until(utc(2026, 6, 1, 12, 0))
    harness.add_job("daily", {"cron": "0 6 * * *"})  # back: 06:00 today was fired already, never again
    harness.run_until(utc(2026, 6, 2, 7, 0))
    assert harness.started("daily") == [utc(2026, 6, 1, 6, 0), utc(2026, 6, 2, 6, 0)]


def test_edit_to_the_same_instant_fires_once(harness: Harness) -> None:
    harness.clock.set(utc(2026, 6, 1, 5, 0))
    harness.add_job("daily", {"cron": "0 6 * * *"})
    old_catalog = JobCatalog(harness.folder)  # a second daemon that has not reloaded yet
    harness.reload(old_catalog)
    old = harness.new_scheduler(catalog=old_catalog, seed=3)
    harness.tick()
    old.tick()
    harness.clock.set(utc(2026, 6, 1, 5, 59))
    harness.add_job("daily", {"cron": "0 8 * * *", "timezone": "Europe/Berlin"})  # 08:00 CEST = 06:00 UTC
    harness.clock.set(utc(2026, 6, 1, 6, 0, 1))
    harness.tick()
    old.tick()
    assert harness.slots("daily") == [utc(2026, 6, 1, 6, 0)]


def test_a_removed_job_stops_and_coming_back_does_not_catch_up(harness: Harness) -> None:
    _start(harness)
    harness.run_until(utc(2026, 6, 1, 12, 10, 1))
    harness.remove_job("ten")
    harness.run_until(utc(2026, 6, 1, 13, 0, 1))
    assert harness.slots("ten") == [utc(2026, 6, 1, 12, 10)]
    harness.add_job("ten", TEN)
    harness.run_until(utc(2026, 6, 1, 13, 10, 1))
    assert harness.slots("ten") == [utc(2026, 6, 1, 12, 10), utc(2026, 6, 1, 13, 10)]


def test_a_broken_file_keeps_the_previous_good_version_running(harness: Harness) -> None:
    _start(harness)
    harness.run_until(utc(2026, 6, 1, 12, 10, 1))
    (harness.folder / "ten.yaml").write_text("name: ten\nworkflow: [unclosed\n")
    harness.reload()
    assert harness.catalog.errors
    harness.run_until(utc(2026, 6, 1, 12, 30, 1))
    assert harness.started("ten") == [utc(2026, 6, 1, 12, m) for m in (10, 20, 30)]
