"""How a tick records what it decided: every job's slots in one transaction (a few for many fires), and a job
whose records fail left to the next tick without losing the others. (Daemons ticking at once: test_scheduling_
catchup.py; a crash while recording: there too.)"""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from sched_helpers import Harness, utc

from cyberdesk_runner.catalog import ActiveJob
from cyberdesk_runner.fleet import Fleet
from cyberdesk_runner.planning import items_or_count
from cyberdesk_runner.scheduling import scheduler as scheduler_module
from cyberdesk_runner.store.records import JobSlots, NewItem, RecordedSlots

EVERY_MINUTE = {"cron": "* * * * *"}


def test_a_job_whose_fire_cannot_be_stored_is_left_to_the_next_tick_and_the_others_are_recorded(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    harness.clock.set(utc(2026, 6, 1, 5, 0))
    for name in ("early", "bad", "late"):
        harness.add_job(name, {"cron": "0 6 * * *"})
    harness.tick()

    def unstorable_for_bad(job: ActiveJob, fleet: Fleet, overrides: object) -> list[NewItem] | int:
        if job.name == "bad":
            return [NewItem({"when": object()})]  # nothing the store can write as JSON
        return items_or_count(job, fleet, None)

    monkeypatch.setattr(scheduler_module, "items_or_count", unstorable_for_bad)
    harness.clock.set(utc(2026, 6, 1, 6, 0, 1))
    harness.tick()
    assert harness.started("early") == harness.started("late") == [utc(2026, 6, 1, 6)]
    assert harness.fires("bad") == []
    state = harness.store.jobs.get("bad")
    assert state is not None and state.last_slot_at == utc(2026, 6, 1, 5)  # its slot is not considered yet
    assert {t.job_name for t in harness.transitions if t.kind == "fire_started"} == {"early", "late"}

    monkeypatch.undo()  # fixed: the next tick records the slot, once
    harness.clock.set(utc(2026, 6, 1, 6, 0, 2))
    harness.tick()
    harness.clock.set(utc(2026, 6, 1, 6, 0, 3))
    harness.tick()
    assert harness.started("bad") == [utc(2026, 6, 1, 6)]
    assert [len(harness.fires(name)) for name in ("early", "bad", "late")] == [1, 1, 1]


def test_many_fires_due_at_once_are_recorded_in_bounded_transactions(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    names = [f"job-{i}" for i in range(7)]
    harness.clock.set(utc(2026, 6, 1, 12, 0, 30))
    for name in names:
        harness.add_job(name, EVERY_MINUTE)
    harness.tick()
    calls: list[int] = []
    record_slots = harness.store.fires.record_slots

    def counted(jobs: Sequence[JobSlots], now: object) -> RecordedSlots:
        calls.append(sum(len(job.fires) for job in jobs))
        return record_slots(jobs, now)  # type: ignore[arg-type]

    monkeypatch.setattr(harness.store.fires, "record_slots", counted)
    monkeypatch.setattr(scheduler_module, "FIRES_PER_TRANSACTION", 3)
    harness.clock.set(utc(2026, 6, 1, 12, 1, 5))
    harness.tick()
    assert calls == [3, 3, 1]
    assert all(harness.started(name) == [utc(2026, 6, 1, 12, 1)] for name in names)
