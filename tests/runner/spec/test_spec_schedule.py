"""Schedule entries -> APScheduler 3 triggers, with crontab's weekday numbering."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.date import DateTrigger
from apscheduler.triggers.interval import IntervalTrigger
from spec_helpers import VALID_HEAD

from cyberdesk_runner.spec import ScheduleEntry, build_trigger, load_job_file
from cyberdesk_runner.spec.cron import cron_fields

NEW_YORK = ZoneInfo("America/New_York")
UTC = ZoneInfo("UTC")


def fires(entry: ScheduleEntry, after: datetime, count: int) -> list[datetime]:
    trigger = build_trigger(entry)
    times: list[datetime] = []
    previous = None
    now = after
    for _ in range(count):
        fire = trigger.get_next_fire_time(previous, now)
        times.append(fire)
        previous, now = fire, fire + timedelta(microseconds=1)
    return times


def test_weekdays_use_crontab_numbering() -> None:
    """`1-5` is Monday to Friday, as in crontab (APScheduler 3's own numbering would make it Tue-Sat)."""
    entry = ScheduleEntry(cron="0 6 * * 1-5", timezone="America/New_York")
    saturday = datetime(2026, 6, 6, 12, 0, tzinfo=NEW_YORK)
    assert [t.strftime("%a %H:%M") for t in fires(entry, saturday, 6)] == [
        "Mon 06:00",
        "Tue 06:00",
        "Wed 06:00",
        "Thu 06:00",
        "Fri 06:00",
        "Mon 06:00",
    ]
    assert fires(entry, saturday, 1)[0] == datetime(2026, 6, 8, 6, 0, tzinfo=NEW_YORK)


@pytest.mark.parametrize(
    ("field", "expected"),
    [
        ("*", "*"),
        ("0", "sun"),
        ("7", "sun"),
        ("1-5", "mon,tue,wed,thu,fri"),
        ("mon-fri", "mon,tue,wed,thu,fri"),
        ("5-7", "fri,sat,sun"),
        ("fri-sun", "fri,sat,sun"),
        ("*/2", "tue,thu,sat,sun"),
        ("1/3", "mon,thu"),
        ("0,6", "sat,sun"),
        ("SUN,Wed", "wed,sun"),
    ],
)
def test_day_of_week_translation(field: str, expected: str) -> None:
    assert cron_fields(f"0 6 * * {field}")["day_of_week"] == expected


def test_five_fields_fire_on_the_minute() -> None:
    assert cron_fields("*/15 9-17 * * *") == {
        "second": "0",
        "minute": "*/15",
        "hour": "9-17",
        "day": "*",
        "month": "*",
        "day_of_week": "*",
    }


def test_six_fields_take_seconds_first(write: Callable[..., Path]) -> None:
    job = load_job_file(write("job.yaml", VALID_HEAD + 'schedule:\n  cron: "30 0 6 * * mon-fri"\n'))
    (entry,) = job.spec.schedule
    assert isinstance(build_trigger(entry), CronTrigger)
    monday = datetime(2026, 6, 8, 0, 0, tzinfo=UTC)
    assert fires(entry, monday, 2) == [
        datetime(2026, 6, 8, 6, 0, 30, tzinfo=UTC),
        datetime(2026, 6, 9, 6, 0, 30, tzinfo=UTC),
    ]


def test_macros() -> None:
    assert cron_fields("@daily")["hour"] == "0"
    assert cron_fields("@weekly")["day_of_week"] == "sun"
    assert cron_fields("@HOURLY")["minute"] == "0"


def test_a_list_of_schedule_entries(write: Callable[..., Path]) -> None:
    job = load_job_file(
        write(
            "job.yaml",
            VALID_HEAD
            + """\
schedule:
  - cron: "0 6 * * 1-5"
    timezone: America/New_York
  - interval: 90m
  - at: 2026-12-24T18:00:00
    timezone: Europe/Berlin
""",
        )
    )
    cron, interval, once = job.spec.schedule
    assert isinstance(build_trigger(cron), CronTrigger)
    assert isinstance(build_trigger(interval), IntervalTrigger)
    assert isinstance(build_trigger(once), DateTrigger)
    assert [e.describe() for e in job.spec.schedule] == [
        "cron 0 6 * * 1-5 (America/New_York)",
        "every 1h30m",
        "at 2026-12-24T18:00:00 (Europe/Berlin)",
    ]


def test_at_without_offset_is_read_in_the_entry_timezone() -> None:
    entry = ScheduleEntry.model_validate({"at": "2026-12-24T18:00:00", "timezone": "Europe/Berlin"})
    (fire,) = fires(entry, datetime(2026, 1, 1, tzinfo=UTC), 1)
    assert fire == datetime(2026, 12, 24, 17, 0, tzinfo=UTC)


def test_at_with_offset_keeps_it() -> None:
    entry = ScheduleEntry.model_validate({"at": "2026-12-24T18:00:00+00:00", "timezone": "Europe/Berlin"})
    (fire,) = fires(entry, datetime(2026, 1, 1, tzinfo=UTC), 1)
    assert fire == datetime(2026, 12, 24, 18, 0, tzinfo=UTC)


def test_intervals_do_not_depend_on_when_the_daemon_starts() -> None:
    entry = ScheduleEntry.model_validate({"interval": "1h"})
    one = fires(entry, datetime(2026, 6, 8, 10, 17, 3, tzinfo=UTC), 1)
    other = fires(entry, datetime(2026, 6, 8, 10, 42, 59, tzinfo=UTC), 1)
    assert one == other == [datetime(2026, 6, 8, 11, 0, tzinfo=UTC)]


def test_interval_counts_from_start() -> None:
    entry = ScheduleEntry.model_validate(
        {"interval": "15m", "start": "2026-06-08T09:05:00", "end": "2026-06-08T09:40:00", "timezone": "UTC"}
    )
    trigger = build_trigger(entry)
    assert fires(entry, datetime(2026, 6, 8, 0, 0, tzinfo=UTC), 3) == [
        datetime(2026, 6, 8, 9, 5, tzinfo=UTC),
        datetime(2026, 6, 8, 9, 20, tzinfo=UTC),
        datetime(2026, 6, 8, 9, 35, tzinfo=UTC),
    ]
    assert trigger.get_next_fire_time(None, datetime(2026, 6, 8, 9, 36, tzinfo=UTC)) is None


def test_cron_start_and_end_bound_the_fires() -> None:
    entry = ScheduleEntry.model_validate(
        {"cron": "0 6 * * *", "start": "2026-06-10T00:00:00", "end": "2026-06-11T23:00:00", "timezone": "UTC"}
    )
    assert fires(entry, datetime(2026, 6, 1, tzinfo=UTC), 2) == [
        datetime(2026, 6, 10, 6, 0, tzinfo=UTC),
        datetime(2026, 6, 11, 6, 0, tzinfo=UTC),
    ]
    assert build_trigger(entry).get_next_fire_time(None, datetime(2026, 6, 11, 7, tzinfo=UTC)) is None


def test_jitter_reaches_the_trigger() -> None:
    entry = ScheduleEntry.model_validate({"cron": "0 6 * * *", "jitter": "30s"})
    assert build_trigger(entry).jitter == 30.0
    assert entry.jitter == timedelta(seconds=30)
