"""The Scheduler against a real store: every schedule kind, lists of entries, jitter, start/end, planning
failures, and what it reports to the daemon."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sched_helpers import WORKFLOW_NAME, Harness, utc

from cyberdesk_runner.catalog import ActiveJob
from cyberdesk_runner.scheduling import Schedule
from cyberdesk_runner.store.records import Transition


def test_cron_fires_once_per_slot_at_the_slot_instant(harness: Harness) -> None:
    harness.add_job("daily", {"cron": "0 6 * * *"})
    harness.clock.set(utc(2026, 6, 1, 5, 0))
    assert harness.tick() == utc(2026, 6, 1, 6, 0)  # first tick: nothing due, wake at the next slot
    harness.run_until(utc(2026, 6, 4, 0, 0))
    assert harness.started("daily") == [utc(2026, 6, 1, 6), utc(2026, 6, 2, 6), utc(2026, 6, 3, 6)]
    fires = harness.fires("daily")
    assert {f.trigger for f in fires} == {"scheduled"}
    assert all(f.items_total == 1 for f in fires)


def test_six_field_cron_with_seconds(harness: Harness) -> None:
    harness.add_job("secs", {"cron": "*/20 * * * * *"})
    harness.clock.set(utc(2026, 6, 1, 12, 0, 5))
    harness.tick()
    harness.run_until(utc(2026, 6, 1, 12, 1, 0))
    assert harness.started("secs") == [
        utc(2026, 6, 1, 12, 0, 20),
        utc(2026, 6, 1, 12, 0, 40),
        utc(2026, 6, 1, 12, 1, 0),
    ]


def test_interval_slots_are_anchored_not_relative_to_daemon_start(harness: Harness) -> None:
    harness.clock.set(utc(2026, 6, 1, 12, 7, 13))
    harness.add_job("every15", {"interval": "15m"})
    harness.tick()
    harness.run_until(utc(2026, 6, 1, 13, 0))
    assert harness.started("every15") == [
        utc(2026, 6, 1, 12, 15),
        utc(2026, 6, 1, 12, 30),
        utc(2026, 6, 1, 12, 45),
        utc(2026, 6, 1, 13, 0),
    ]


def test_interval_with_start_counts_from_start(harness: Harness) -> None:
    harness.clock.set(utc(2026, 6, 1, 12, 0))
    harness.add_job(
        "from-start", {"interval": "1h", "start": "2026-06-01T12:20:00", "end": "2026-06-01T15:00:00"}
    )
    harness.tick()
    harness.run_until(utc(2026, 6, 2))
    assert harness.started("from-start") == [
        utc(2026, 6, 1, 12, 20),
        utc(2026, 6, 1, 13, 20),
        utc(2026, 6, 1, 14, 20),
    ]


def test_at_fires_once_in_its_timezone(harness: Harness) -> None:
    harness.add_job("once", {"at": "2026-06-02T09:00:00", "timezone": "Europe/Berlin"})
    harness.tick()
    harness.run_until(utc(2026, 6, 5))
    assert harness.started("once") == [utc(2026, 6, 2, 7, 0)]  # 09:00 CEST


def test_at_in_the_past_never_fires(harness: Harness) -> None:
    harness.add_job("past", {"at": "2026-05-01T09:00:00"})
    assert harness.tick() is None
    harness.run_until(utc(2026, 6, 5))
    assert harness.fires("past") == []


def test_cron_start_and_end_bound_the_slots(harness: Harness) -> None:
    harness.add_job(
        "bounded",
        {
            "cron": "0 9 * * *",
            "timezone": "America/New_York",
            "start": "2026-06-03T00:00:00",
            "end": "2026-06-05T09:00:00",
        },
    )
    harness.tick()
    harness.run_until(utc(2026, 6, 10))
    # 09:00 EDT = 13:00 UTC; `end` is inclusive, like APScheduler's end_date.
    assert harness.started("bounded") == [utc(2026, 6, 3, 13), utc(2026, 6, 4, 13), utc(2026, 6, 5, 13)]


def test_a_list_of_entries_fires_their_union_and_a_shared_instant_once(harness: Harness) -> None:
    harness.add_job(
        "multi",
        [
            {"cron": "0 6 * * *"},  # 06:00 UTC
            {"cron": "0 8 * * *", "timezone": "Europe/Berlin"},  # 08:00 CEST = 06:00 UTC: the same slot
            {"cron": "30 12 * * *"},
            {"at": "2026-06-01T20:00:00"},
        ],
    )
    harness.clock.set(utc(2026, 6, 1, 0, 0))
    harness.tick()
    harness.run_until(utc(2026, 6, 2, 23, 0))
    assert harness.started("multi") == [
        utc(2026, 6, 1, 6),
        utc(2026, 6, 1, 12, 30),
        utc(2026, 6, 1, 20),
        utc(2026, 6, 2, 6),
        utc(2026, 6, 2, 12, 30),
    ]


def test_jitter_delays_the_fire_not_its_key_and_stays_within_bounds(harness: Harness) -> None:
    harness.add_job("jittery", {"cron": "0 * * * *", "jitter": "10m"})
    harness.clock.set(utc(2026, 6, 1, 0, 0, 1))
    wakes = []
    harness.tick()
    for hour in range(1, 25):
        slot = utc(2026, 6, 1) + timedelta(hours=hour)
        wake = harness.tick()
        assert wake is not None
        wakes.append(wake)
        assert slot <= wake <= slot + timedelta(minutes=10)
        harness.clock.set(slot)  # the slot time itself: not yet due unless the delay is 0
        harness.tick()
        assert (slot in harness.started("jittery")) == (wake == slot)
        harness.clock.set(wake)
        harness.tick()
        assert harness.started("jittery")[-1] == slot  # recorded under the slot, not the jittered time
        fire = harness.fires("jittery")[-1]
        assert fire.created_at == wake
    assert len(set(wakes)) > 20  # the delays differ


def test_jitter_is_deterministic_with_a_seeded_rng(harness: Harness) -> None:
    def delays(job: str, seed: int) -> list[timedelta]:
        harness.clock.set(utc(2026, 6, 1, 0, 30))
        harness.add_job(job, {"interval": "1h", "jitter": "20m"})
        scheduler = harness.new_scheduler(seed=seed)
        scheduler.tick()
        harness.run_until(utc(2026, 6, 1, 6, 0), scheduler)
        harness.remove_job(job)  # alone in the catalog each time, so each run draws in the same order
        return [f.created_at - f.scheduled_for for f in harness.fires(job) if f.scheduled_for]

    first, second, other = delays("j1", 42), delays("j2", 42), delays("j3", 43)
    assert len(first) == 5
    assert first == second
    assert first != other
    assert all(timedelta(0) <= d <= timedelta(minutes=20) for d in first + other)


def test_jitter_never_pushes_a_fire_past_the_next_slot(harness: Harness) -> None:
    harness.add_job("tight", {"interval": "1m", "jitter": "1h"})
    harness.clock.set(utc(2026, 6, 1, 0, 0, 30))
    harness.tick()
    harness.run_until(utc(2026, 6, 1, 0, 31, 0))
    started = harness.started("tight")
    assert started[:30] == [utc(2026, 6, 1, 0, m) for m in range(1, 31)]
    for fire in harness.fires("tight"):
        assert fire.scheduled_for is not None
        assert fire.scheduled_for <= fire.created_at <= fire.scheduled_for + timedelta(minutes=1)


def test_unresolved_workflow_records_a_failed_fire_with_the_error(harness: Harness) -> None:
    harness.add_job("lost", {"cron": "0 6 * * *"}, workflow="No such workflow")
    harness.clock.set(utc(2026, 6, 1, 5, 0))
    harness.tick()
    harness.run_until(utc(2026, 6, 1, 7, 0))
    [fire] = harness.fires("lost")
    assert fire.status == "failed"
    assert fire.scheduled_for == utc(2026, 6, 1, 6)
    assert fire.error is not None and "no workflow is named 'No such workflow'" in fire.error
    assert [t.kind for t in harness.transitions] == ["fire_failed"]


def test_planning_error_records_a_failed_fire(harness: Harness) -> None:
    harness.add_job("nowhere", {"cron": "0 6 * * *"}, target={"pool": "no-such-pool"})
    harness.clock.set(utc(2026, 6, 1, 5, 0))
    harness.tick()
    harness.run_until(utc(2026, 6, 1, 7, 0))
    [fire] = harness.fires("nowhere")
    assert (fire.status, fire.error) == ("failed", "job nowhere: its target selects no desktop")


def test_a_job_waits_while_its_workflow_is_not_resolved_yet(harness: Harness) -> None:
    harness.add_job("early", {"cron": "0 6 * * *"})
    harness.clock.set(utc(2026, 6, 1, 5, 0))
    harness.tick()
    # The daemon restarts: a new catalog, loaded but not yet resolved against the API.
    from cyberdesk_runner.catalog import JobCatalog

    catalog = JobCatalog(harness.folder)
    catalog.reload()
    scheduler = harness.new_scheduler(catalog=catalog)
    harness.clock.set(utc(2026, 6, 1, 6, 0, 2))
    scheduler.tick()
    assert harness.fires("early") == []  # not failed, not skipped: not considered yet
    catalog.resolve_workflows({"3f0c2a8e-1c1d-4c36-9a55-1e1d0c0ffee0": WORKFLOW_NAME})
    harness.clock.set(utc(2026, 6, 1, 6, 0, 5))
    scheduler.tick()
    assert harness.started("early") == [utc(2026, 6, 1, 6)]


def test_a_job_without_schedule_never_fires(harness: Harness) -> None:
    harness.add_job("manual", None)
    assert harness.tick() is None
    harness.run_until(utc(2026, 6, 3))
    assert harness.fires("manual") == []


def test_transitions_reported_match_the_records(harness: Harness) -> None:
    harness.add_job("daily", {"cron": "0 6 * * *"}, priority=True)
    harness.clock.set(utc(2026, 6, 1, 5, 0))
    harness.tick()
    harness.run_until(utc(2026, 6, 1, 7, 0))
    [fire] = harness.fires("daily")
    assert harness.transitions == [
        Transition(
            "fire_started",
            "daily",
            fire_id=fire.id,
            data={"trigger": "scheduled", "items": 1, "scheduled_for": "2026-06-01T06:00:00+00:00"},
        )
    ]


def test_tick_returns_the_earliest_next_slot_over_jobs(harness: Harness) -> None:
    harness.add_job("a", {"cron": "0 6 * * *"})
    harness.add_job("b", {"cron": "30 5 * * *"})
    harness.add_job("c", None)
    harness.clock.set(utc(2026, 6, 1, 5, 0))
    assert harness.tick() == utc(2026, 6, 1, 5, 30)
    harness.clock.set(utc(2026, 6, 1, 5, 30))
    assert harness.tick() == utc(2026, 6, 1, 6, 0)


def test_a_job_seen_for_the_first_time_starts_from_now(harness: Harness) -> None:
    harness.clock.set(utc(2026, 6, 1, 12, 0))
    harness.add_job("new", {"cron": "*/5 * * * *"})
    harness.tick()
    assert harness.fires("new") == []  # no catch-up of the morning's slots
    state = harness.store.jobs.get("new")
    assert state is not None and state.last_slot_at == utc(2026, 6, 1, 12, 0)


def test_store_watermark_only_moves_forward(harness: Harness) -> None:
    harness.add_job("w", {"cron": "0 6 * * *"})
    harness.store.jobs.set_last_slots({"w": utc(2026, 6, 2)})
    harness.store.jobs.set_last_slots({"w": utc(2026, 6, 1)})
    state = harness.store.jobs.get("w")
    assert state is not None and state.last_slot_at == utc(2026, 6, 2)


def test_an_items_file_that_breaks_after_loading_fails_the_fire(harness: Harness) -> None:
    data = harness.folder / "items.csv"
    data.write_text("claim\nA-1\nA-2\n")
    harness.add_job("csv", {"cron": "0 6 * * *"}, items_from="items.csv")
    harness.clock.set(utc(2026, 6, 1, 5, 0))
    harness.tick()
    harness.run_until(utc(2026, 6, 1, 6, 0, 1))
    assert [f.items_total for f in harness.fires("csv")] == [2]
    data.unlink()  # read anew at every fire
    harness.run_until(utc(2026, 6, 2, 6, 0, 1))
    failed = harness.fires("csv")[-1]
    assert failed.status == "failed" and failed.scheduled_for == utc(2026, 6, 2, 6)
    assert failed.error is not None and "file not found" in failed.error and "items.csv" in failed.error


def test_a_failure_in_one_job_does_not_stop_the_others(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    harness.add_job("good", {"cron": "0 6 * * *"})
    harness.add_job("bad", {"cron": "0 6 * * *"})
    harness.clock.set(utc(2026, 6, 1, 5, 0))
    harness.tick()
    original = harness.scheduler._schedule

    def broken(job: ActiveJob) -> Schedule:
        if job.name == "bad":
            raise RuntimeError("boom")
        return original(job)

    monkeypatch.setattr(harness.scheduler, "_schedule", broken)
    harness.clock.set(utc(2026, 6, 1, 6, 0, 1))
    harness.tick()
    assert harness.started("good") == [utc(2026, 6, 1, 6)]
    assert harness.fires("bad") == []  # not lost: not considered yet
    monkeypatch.undo()
    harness.clock.set(utc(2026, 6, 1, 6, 0, 5))
    harness.tick()
    assert harness.started("bad") == [utc(2026, 6, 1, 6)]
