"""DST, end to end: a real Scheduler ticking a ManualClock across the spring-forward and fall-back days of
America/New_York and Europe/Berlin (2026). Expected instants are written out in UTC by hand.

The semantics (see `cyberdesk_runner.scheduling.slots`):
- daily fixed times: a skipped wall time runs as if the clock had not jumped (02:30 -> 03:30 daylight time,
  which then coincides with the 03:30 job's instant); a repeated wall time runs once, at its first occurrence;
- wildcard-hour crons (`0 * * * *`) follow elapsed time: every real hour, 23 or 25 of them that day;
- intervals ignore the clock change.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from sched_helpers import Harness, utc

JOBS = {
    "d0130": {"cron": "30 1 * * *"},
    "d0230": {"cron": "30 2 * * *"},
    "d0330": {"cron": "30 3 * * *"},
    "hourly": {"cron": "0 * * * *"},
    "every-hour": {"interval": "1h"},
    "every-30m": {"interval": "30m"},
}


def _hours(day: tuple[int, int, int], first: int, last: int) -> list[datetime]:
    return [utc(*day, h) for h in range(first, last + 1)]


CASES = {
    # zone, window start, window end (UTC), expected per job
    "new-york-spring": (
        "America/New_York",
        utc(2026, 3, 7, 5),
        utc(2026, 3, 9, 12),
        {
            "d0130": [utc(2026, 3, 7, 6, 30), utc(2026, 3, 8, 6, 30), utc(2026, 3, 9, 5, 30)],
            "d0230": [
                utc(2026, 3, 7, 7, 30),
                utc(2026, 3, 8, 7, 30),
                utc(2026, 3, 9, 6, 30),
            ],  # 03:30 EDT on the 8th
            "d0330": [utc(2026, 3, 7, 8, 30), utc(2026, 3, 8, 7, 30), utc(2026, 3, 9, 7, 30)],
        },
        # the change day, 00:00 EST (05:00Z) to 00:00 EDT next day (04:00Z): 23 real hours
        (utc(2026, 3, 8, 5), utc(2026, 3, 9, 4), 23),
    ),
    "new-york-fall": (
        "America/New_York",
        utc(2026, 10, 31, 4),
        utc(2026, 11, 2, 12),
        {
            "d0130": [
                utc(2026, 10, 31, 5, 30),
                utc(2026, 11, 1, 5, 30),
                utc(2026, 11, 2, 6, 30),
            ],  # once: EDT
            "d0230": [utc(2026, 10, 31, 6, 30), utc(2026, 11, 1, 7, 30), utc(2026, 11, 2, 7, 30)],
            "d0330": [utc(2026, 10, 31, 7, 30), utc(2026, 11, 1, 8, 30), utc(2026, 11, 2, 8, 30)],
        },
        (utc(2026, 11, 1, 4), utc(2026, 11, 2, 5), 25),
    ),
    "berlin-spring": (
        "Europe/Berlin",
        utc(2026, 3, 27, 23),
        utc(2026, 3, 30, 6),
        {
            "d0130": [utc(2026, 3, 28, 0, 30), utc(2026, 3, 29, 0, 30), utc(2026, 3, 29, 23, 30)],
            "d0230": [
                utc(2026, 3, 28, 1, 30),
                utc(2026, 3, 29, 1, 30),
                utc(2026, 3, 30, 0, 30),
            ],  # 03:30 CEST
            "d0330": [utc(2026, 3, 28, 2, 30), utc(2026, 3, 29, 1, 30), utc(2026, 3, 30, 1, 30)],
        },
        (utc(2026, 3, 28, 23), utc(2026, 3, 29, 22), 23),
    ),
    "berlin-fall": (
        "Europe/Berlin",
        utc(2026, 10, 23, 22),
        utc(2026, 10, 26, 6),
        {
            "d0130": [utc(2026, 10, 23, 23, 30), utc(2026, 10, 24, 23, 30), utc(2026, 10, 26, 0, 30)],
            "d0230": [
                utc(2026, 10, 24, 0, 30),
                utc(2026, 10, 25, 0, 30),
                utc(2026, 10, 26, 1, 30),
            ],  # once: CEST
            "d0330": [utc(2026, 10, 24, 1, 30), utc(2026, 10, 25, 2, 30), utc(2026, 10, 26, 2, 30)],
        },
        (utc(2026, 10, 24, 22), utc(2026, 10, 25, 23), 25),
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_dst_fires(harness: Harness, case: str) -> None:
    zone, start, end, daily, (day_start, day_end, hours) = CASES[case]
    harness.clock.set(start)
    for name, schedule in JOBS.items():
        harness.add_job(name, {**schedule, "timezone": zone})
    harness.tick()
    harness.run_until(end)
    for name, expected in daily.items():
        assert harness.started(name) == expected, name
        assert {f.trigger for f in harness.fires(name)} == {"scheduled"}, name
    for name in ("hourly", "every-hour"):
        on_the_day = [s for s in harness.started(name) if day_start <= s < day_end]
        assert len(on_the_day) == hours, name
        assert on_the_day == [day_start + (day_end - day_start) * i / hours for i in range(hours)], name
    half_hours = [s for s in harness.started("every-30m") if day_start <= s < day_end]
    assert len(half_hours) == 2 * hours
    for name in JOBS:
        slots = harness.slots(name)
        assert len(slots) == len(set(slots)) and slots == sorted(slots), name


def test_new_york_fall_back_hourly_instants(harness: Harness) -> None:
    harness.clock.set(utc(2026, 11, 1, 3, 30))
    harness.add_job("hourly", {"cron": "0 * * * *", "timezone": "America/New_York"})
    harness.add_job("d0100", {"cron": "0 1 * * *", "timezone": "America/New_York"})
    harness.tick()
    harness.run_until(utc(2026, 11, 1, 8, 30))
    # 00:00 EDT, 01:00 EDT, 01:00 EST, 02:00 EST, 03:00 EST
    assert harness.started("hourly") == _hours((2026, 11, 1), 4, 8)
    assert harness.started("d0100") == [utc(2026, 11, 1, 5)]  # 01:00 EDT only


def test_new_york_spring_forward_hourly_instants(harness: Harness) -> None:
    harness.clock.set(utc(2026, 3, 8, 4, 30))
    harness.add_job("hourly", {"cron": "0 * * * *", "timezone": "America/New_York"})
    harness.add_job("d0200", {"cron": "0 2 * * *", "timezone": "America/New_York"})
    harness.tick()
    harness.run_until(utc(2026, 3, 8, 9, 30))
    # 00:00 EST, 01:00 EST, 03:00 EDT, 04:00 EDT, 05:00 EDT: 02:00 does not exist that day
    assert harness.started("hourly") == _hours((2026, 3, 8), 5, 9)
    assert harness.started("d0200") == [utc(2026, 3, 8, 7)]  # 02:00 runs at 03:00 EDT


def test_restart_inside_the_repeated_hour_does_not_refire(harness: Harness) -> None:
    harness.clock.set(utc(2026, 11, 1, 4, 0))
    harness.add_job("d0130", {"cron": "30 1 * * *", "timezone": "America/New_York"}, catchup="all")
    harness.add_job("q", {"cron": "*/15 * * * *", "timezone": "America/New_York"}, catchup="all")
    harness.tick()
    harness.run_until(utc(2026, 11, 1, 6, 20))  # into the second 01:xx (EST)
    harness.scheduler = harness.new_scheduler()
    harness.clock.set(utc(2026, 11, 1, 6, 50))
    harness.tick()
    harness.run_until(utc(2026, 11, 1, 7, 10))
    assert harness.slots("d0130") == [utc(2026, 11, 1, 5, 30)]
    # every real quarter hour from 00:15 EDT to 02:00 EST, each once, though the restart fell in the second 01:xx
    assert harness.slots("q") == [utc(2026, 11, 1, 4, 15) + timedelta(minutes=15 * i) for i in range(12)]
