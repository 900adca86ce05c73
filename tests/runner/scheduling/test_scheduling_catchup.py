"""Catch-up after downtime (none / latest / all, max_delay, grace), the storm bound, restarts and several
schedulers on one store: no slot lost beyond the policy, none run twice, every skipped one recorded with why."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest
from sched_helpers import Harness, by_status, utc

from cyberdesk_runner.catalog import JobCatalog
from cyberdesk_runner.store import Store
from cyberdesk_runner.store import fires as fires_module
from cyberdesk_runner.store.jobs import move_last_slot

TEN = {"cron": "*/10 * * * *"}


def _down_from_1230_to(harness: Harness, restart_at: tuple[int, int, int], **settings: object) -> None:
    """A job running every 10 minutes from 12:00; the daemon stops after 12:30 and a new one starts later."""
    harness.clock.set(utc(2026, 6, 1, 12, 0))
    harness.add_job("ten", TEN, **settings)
    harness.tick()
    harness.run_until(utc(2026, 6, 1, 12, 30, 1))
    assert harness.started("ten") == [
        utc(2026, 6, 1, 12, 10),
        utc(2026, 6, 1, 12, 20),
        utc(2026, 6, 1, 12, 30),
    ]
    harness.clock.set(utc(2026, 6, 1, *restart_at))
    harness.scheduler = harness.new_scheduler(seed=99)
    harness.tick()


MISSED = (
    [utc(2026, 6, 1, 12, 40), utc(2026, 6, 1, 12, 50)]
    + [utc(2026, 6, 1, 13, m) for m in range(0, 60, 10)]
    + [utc(2026, 6, 1, 14, 0)]
)


def test_catchup_none_skips_every_missed_slot_with_its_reason(harness: Harness) -> None:
    _down_from_1230_to(harness, (14, 5, 0), catchup="none")
    missed = [f for f in harness.fires("ten") if f.status == "skipped"]
    assert [f.scheduled_for for f in missed] == MISSED
    assert {f.trigger for f in missed} == {"catchup"}
    assert missed[-1].skip_reason == "missed by 5m while the daemon was down or stalled; catchup: none"
    assert missed[0].skip_reason == "missed by 1h25m while the daemon was down or stalled; catchup: none"
    harness.run_until(utc(2026, 6, 1, 14, 10, 1))
    assert harness.started("ten")[-1] == utc(2026, 6, 1, 14, 10)


def test_catchup_latest_runs_only_the_most_recent_missed_slot(harness: Harness) -> None:
    _down_from_1230_to(harness, (14, 5, 0))  # catchup: latest is the default
    fires = {f.scheduled_for: f for f in harness.fires("ten")}
    latest = fires[utc(2026, 6, 1, 14, 0)]
    assert (latest.status, latest.trigger) == ("running", "catchup")
    for slot in MISSED[:-1]:
        assert fires[slot].status == "skipped"
        assert fires[slot].skip_reason == (
            "missed while the daemon was down; catchup: latest runs only the most recent missed fire"
        )
    assert len(fires) == 3 + len(MISSED)


def test_catchup_latest_skips_it_when_older_than_max_delay(harness: Harness) -> None:
    _down_from_1230_to(harness, (14, 5, 0), max_delay="3m")
    latest = next(f for f in harness.fires("ten") if f.scheduled_for == utc(2026, 6, 1, 14, 0))
    assert (latest.status, latest.skip_reason) == ("skipped", "missed by 5m, more than max_delay 3m")
    assert harness.started("ten") == [
        utc(2026, 6, 1, 12, 10),
        utc(2026, 6, 1, 12, 20),
        utc(2026, 6, 1, 12, 30),
    ]


def test_catchup_latest_with_an_on_time_slot_runs_only_the_on_time_one(harness: Harness) -> None:
    _down_from_1230_to(harness, (14, 0, 5))
    fires = {f.scheduled_for: f for f in harness.fires("ten")}
    on_time = fires[utc(2026, 6, 1, 14, 0)]
    assert (on_time.status, on_time.trigger) == ("running", "scheduled")
    assert fires[utc(2026, 6, 1, 13, 50)].skip_reason == (
        "missed while the daemon was down; catchup: latest, and the fire of 2026-06-01T14:00:00Z runs on time instead"
    )


def test_catchup_all_runs_every_missed_slot_within_max_delay(harness: Harness) -> None:
    _down_from_1230_to(harness, (14, 5, 0), catchup="all")
    fires = {f.scheduled_for: f for f in harness.fires("ten")}
    ran = [slot for slot in MISSED if fires[slot].status == "running"]
    assert ran == [utc(2026, 6, 1, 13, m) for m in range(10, 60, 10)] + [utc(2026, 6, 1, 14, 0)]
    assert all(fires[slot].trigger == "catchup" for slot in ran)
    assert fires[utc(2026, 6, 1, 12, 40)].skip_reason == "missed by 1h25m, more than max_delay 1h"
    assert fires[utc(2026, 6, 1, 13, 0)].skip_reason == "missed by 1h5m, more than max_delay 1h"


@pytest.mark.parametrize(("late", "on_time"), [(14, True), (15, True), (16, False)])
def test_grace_decides_between_on_time_and_missed(harness: Harness, late: int, on_time: bool) -> None:
    harness.clock.set(utc(2026, 6, 1, 5, 0))
    harness.add_job("daily", {"cron": "0 6 * * *"}, catchup="none")
    harness.tick()
    harness.clock.set(utc(2026, 6, 1, 6, 0, late))  # the daemon stalled (or restarted) around 06:00
    harness.tick()
    [fire] = harness.fires("daily")
    assert (fire.status == "running") is on_time
    assert fire.trigger == ("scheduled" if on_time else "catchup")


def test_a_long_downtime_of_an_every_second_job_is_bounded(harness: Harness) -> None:
    harness.clock.set(utc(2026, 6, 1, 0, 0))
    harness.add_job("busy", {"cron": "* * * * * *"}, catchup="all")
    harness.tick()
    harness.clock.set(utc(2026, 6, 2, 0, 0))  # a day later: 86,400 slots
    started = time.perf_counter()
    wake = harness.tick()
    elapsed = time.perf_counter() - started
    fires = harness.fires("busy")
    assert by_status(fires) == {"running": 100, "skipped": 1}
    [summary] = [f for f in fires if f.status == "skipped"]
    assert summary.scheduled_for == utc(2026, 6, 1, 0, 0, 1)
    assert summary.skip_reason == (
        "more than 1000 slots from 2026-06-01T00:00:01Z to before 2026-06-01T23:58:21Z were missed while the daemon "
        "was down, more than 100 at once; this record stands for all of them and none ran (catchup: all considers "
        "only the 100 most recent)"
    )
    assert harness.started("busy")[-1] == utc(2026, 6, 2, 0, 0)
    assert wake == utc(2026, 6, 2, 0, 0, 1)
    assert elapsed < 5
    harness.clock.set(utc(2026, 6, 2, 0, 0, 1))
    harness.tick()
    assert len(harness.fires("busy")) == 102  # back to one fire per second


def test_a_short_backlog_is_recorded_slot_by_slot_with_an_exact_count(harness: Harness) -> None:
    harness.clock.set(utc(2026, 6, 1, 0, 0))
    harness.add_job("busy", {"cron": "* * * * * *"}, catchup="latest")
    harness.tick()
    harness.clock.set(utc(2026, 6, 1, 0, 2, 30))  # 150 slots
    harness.tick()
    fires = harness.fires("busy")
    # The newest 100 slots one by one: 16 within the 15s grace run on time, the 84 older ones are skipped
    # (catchup: latest, and on-time fires run); the 50 oldest are summarised in one record.
    assert by_status(fires) == {"running": 16, "skipped": 85}
    assert harness.started("busy") == [utc(2026, 6, 1, 0, 2, s) for s in range(15, 31)]
    summary = fires[0]
    assert summary.skip_reason is not None and summary.skip_reason.startswith(
        "50 slots from 2026-06-01T00:00:01Z to before 2026-06-01T00:00:51Z were missed"
    )


def test_restart_just_around_a_slot_neither_loses_nor_doubles_it(harness: Harness) -> None:
    harness.clock.set(utc(2026, 6, 1, 5, 0))
    harness.add_job("daily", {"cron": "0 6 * * *"}, catchup="none")
    harness.tick()
    harness.run_until(utc(2026, 6, 1, 5, 59, 58))  # stopped two seconds before the slot
    harness.clock.set(utc(2026, 6, 1, 6, 0, 3))  # the new daemon is up 3 seconds after it
    second = harness.new_scheduler()
    second.tick()
    assert harness.started("daily") == [utc(2026, 6, 1, 6)]
    assert harness.fires("daily")[0].trigger == "scheduled"
    harness.tick()  # the old scheduler object, were it still around, records nothing more
    harness.run_until(utc(2026, 6, 1, 12, 0), second)
    assert len(harness.fires("daily")) == 1


def test_a_crash_while_recording_the_tick_leaves_the_slot_to_the_next_tick_which_fires_it_once(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The tick's fires and watermarks are one transaction: killed between the fire's insert and its job's
    watermark, nothing of it is kept, and the restarted daemon records the slot, once."""
    harness.clock.set(utc(2026, 6, 1, 5, 0))
    harness.add_job("daily", {"cron": "0 6 * * *"})
    harness.add_job("early", {"cron": "0 6 * * *"})
    harness.tick()
    harness.clock.set(utc(2026, 6, 1, 6, 0, 1))
    moved: list[str] = []

    def crash_at_the_second_job(conn: object, name: str, slot: object) -> None:
        moved.append(name)
        if len(moved) == 2:
            raise KeyboardInterrupt("killed between the fire and the watermark")
        move_last_slot(conn, name, slot)  # type: ignore[arg-type]

    monkeypatch.setattr(fires_module, "move_last_slot", crash_at_the_second_job)
    with pytest.raises(KeyboardInterrupt):
        harness.tick()
    monkeypatch.undo()
    assert moved == ["daily", "early"]  # the first job's fire and watermark were written before the kill
    assert harness.fires("daily") == [] and harness.fires("early") == []
    for name in ("daily", "early"):
        state = harness.store.jobs.get(name)
        assert state is not None and state.last_slot_at == utc(2026, 6, 1, 5)  # not moved
    harness.clock.set(utc(2026, 6, 1, 6, 0, 4))
    harness.new_scheduler().tick()
    assert harness.started("daily") == harness.started("early") == [utc(2026, 6, 1, 6)]
    assert len(harness.fires("daily")) == len(harness.fires("early")) == 1


def test_a_crash_between_a_replacing_fire_and_the_watermark_does_not_double_the_fire(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A `replace` run is committed on its own, before the tick's watermarks: a crash in between leaves the
    slot recorded and the watermark behind, and the next tick finds the slot taken."""
    harness.clock.set(utc(2026, 6, 1, 5, 0))
    harness.add_job("daily", {"cron": "0 6 * * *"}, overlap="replace")
    harness.tick()
    harness.clock.set(utc(2026, 6, 1, 6, 0, 1))

    def crash(jobs: object, now: object) -> None:
        raise RuntimeError("killed before the watermark was written")

    monkeypatch.setattr(harness.store.fires, "record_slots", crash)
    with pytest.raises(RuntimeError):
        harness.tick()
    monkeypatch.undo()
    assert harness.started("daily") == [utc(2026, 6, 1, 6)]
    state = harness.store.jobs.get("daily")
    assert state is not None and state.last_slot_at == utc(2026, 6, 1, 5)  # not moved
    harness.clock.set(utc(2026, 6, 1, 6, 0, 4))
    harness.new_scheduler().tick()
    assert len(harness.fires("daily")) == 1
    state = harness.store.jobs.get("daily")
    assert state is not None and state.last_slot_at == utc(2026, 6, 1, 6, 0, 4)


def test_restart_with_the_store_reopened_catches_up_per_policy(harness: Harness, store_url: str) -> None:
    harness.clock.set(utc(2026, 6, 1, 5, 0))
    harness.add_job("daily", {"cron": "0 6 * * *"})
    harness.tick()
    harness.run_until(utc(2026, 6, 2, 5, 0))
    harness.store.close()  # the daemon stops; the store (file or database) stays

    store = Store(store_url)
    try:
        restarted = Harness(store, harness.folder, harness.clock)
        restarted.reload()
        restarted.clock.set(utc(2026, 6, 2, 6, 20))  # back 20 minutes after the slot
        restarted.tick()
        restarted.run_until(utc(2026, 6, 3, 7, 0))
        fires = restarted.fires("daily")
        assert [(f.scheduled_for, f.trigger, f.status) for f in fires] == [
            (utc(2026, 6, 1, 6), "scheduled", "running"),
            (utc(2026, 6, 2, 6), "catchup", "running"),
            (utc(2026, 6, 3, 6), "scheduled", "running"),
        ]
    finally:
        store.close()


def test_two_schedulers_ticking_in_turn_never_double_fire(harness: Harness) -> None:
    harness.clock.set(utc(2026, 6, 1, 0, 0))
    harness.add_job("a", {"cron": "*/5 * * * *"}, catchup="all")
    harness.add_job("b", {"interval": "7m", "jitter": "1m"})
    harness.add_job("c", {"cron": "* * * * * *"}, catchup="latest")
    first, second = harness.new_scheduler(seed=1), harness.new_scheduler(seed=2)
    for scheduler in (first, second):
        scheduler.tick()
    end = utc(2026, 6, 1, 0, 10)
    while harness.clock.now() < end:
        harness.advance(seconds=0.7)
        first.tick()
        harness.advance(seconds=0.2)
        second.tick()
    for job, count in (("a", 2), ("b", 1), ("c", 600)):
        slots = harness.slots(job)
        assert len(slots) == len(set(slots)), job
        assert abs(len(harness.started(job)) - count) <= 1, job
    fires = sum(len(harness.fires(job)) for job in ("a", "b", "c"))
    assert harness.store.counts.work().pending_items == fires
    assert len([t for t in harness.transitions if t.kind == "fire_started"]) == fires


def test_two_daemons_ticking_at_the_same_time_never_double_fire(harness: Harness, store_url: str) -> None:
    harness.clock.set(utc(2026, 6, 1, 0, 0))
    for name in ("a", "b", "c", "d"):
        harness.add_job(name, {"cron": "*/2 * * * * *"}, catchup="all")
    other_store = Store(store_url)  # its own engine and connections, like another process
    other_catalog = JobCatalog(harness.folder)
    harness.reload(other_catalog)
    daemons = [
        harness.new_scheduler(seed=1),
        harness.new_scheduler(seed=2, store=other_store, catalog=other_catalog),
    ]
    errors: list[BaseException] = []

    def tick(index: int, barrier: threading.Barrier) -> None:
        try:
            barrier.wait()
            daemons[index].tick()
        except BaseException as exc:  # reported below
            errors.append(exc)

    try:
        for _ in range(60):
            harness.advance(seconds=1)
            barrier = threading.Barrier(2)
            threads = [threading.Thread(target=tick, args=(i, barrier)) for i in range(2)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
        assert errors == []
        for name in ("a", "b", "c", "d"):
            slots = harness.slots(name)
            assert slots == [utc(2026, 6, 1, 0, 0, 0) + timedelta(seconds=s) for s in range(2, 61, 2)], name
            assert set(by_status(harness.fires(name))) == {"running"}
        # The losing daemon created no items and reported no fire: one item per fire, one report per fire.
        assert harness.store.counts.work().pending_items == 4 * 30
        assert len([t for t in harness.transitions if t.kind == "fire_started"]) == 4 * 30
    finally:
        other_store.close()
