"""Pure slot computation: every schedule kind, merging entries, start/end, the newest-slots window, and the DST
rules checked against an independent brute-force reference (minute by minute in UTC)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from apscheduler.triggers.cron import CronTrigger
from sched_helpers import utc

from cyberdesk_runner.scheduling.slots import CronSlots, Schedule, Slot
from cyberdesk_runner.spec import ScheduleEntry
from cyberdesk_runner.spec.cron import cron_fields


def schedule(*entries: dict[str, object]) -> Schedule:
    return Schedule([ScheduleEntry.model_validate(e) for e in entries])


def instants(sched: Schedule, after: datetime, until: datetime) -> list[datetime]:
    return [s.at for s in sched.between(after, until)]


def test_cron_next_after_is_strictly_after() -> None:
    s = schedule({"cron": "0 6 * * *"})
    assert s.next_after(utc(2026, 6, 1, 5, 59, 59)) == Slot(utc(2026, 6, 1, 6))
    assert s.next_after(utc(2026, 6, 1, 6)) == Slot(utc(2026, 6, 2, 6))
    assert s.next_after(utc(2026, 6, 1, 6) - timedelta(microseconds=1)) == Slot(utc(2026, 6, 1, 6))


def test_crontab_weekday_numbering() -> None:
    s = schedule({"cron": "0 6 * * 1-5", "timezone": "America/New_York"})
    # 2026-06-05 is a Friday: next are Friday 06:00 EDT, then Monday.
    assert instants(s, utc(2026, 6, 5), utc(2026, 6, 9)) == [utc(2026, 6, 5, 10), utc(2026, 6, 8, 10)]


def test_interval_is_anchored_at_1970_in_its_timezone() -> None:
    s = schedule({"interval": "1d", "timezone": "Asia/Tokyo"})
    assert s.next_after(utc(2026, 6, 1, 12)) == Slot(utc(2026, 6, 1, 15), timezone="Asia/Tokyo")  # 00:00 JST


def test_interval_with_milliseconds() -> None:
    s = schedule({"interval": "1s500ms", "start": "2026-06-01T00:00:00"})
    assert instants(s, utc(2026, 6, 1) - timedelta(microseconds=1), utc(2026, 6, 1, 0, 0, 3)) == [
        utc(2026, 6, 1),
        utc(2026, 6, 1) + timedelta(seconds=1.5),
        utc(2026, 6, 1, 0, 0, 3),
    ]


def test_at_with_and_without_offset() -> None:
    assert schedule({"at": "2026-12-01T09:00:00", "timezone": "Europe/Berlin"}).next_after(
        utc(2026, 1, 1)
    ) == Slot(utc(2026, 12, 1, 8), timezone="Europe/Berlin")
    s = schedule({"at": "2026-12-01T09:00:00-05:00", "timezone": "Europe/Berlin"})
    assert s.next_after(utc(2026, 1, 1)) == Slot(utc(2026, 12, 1, 14), timezone="Europe/Berlin")
    assert s.next_after(utc(2026, 12, 1, 14)) is None


def test_start_and_end_are_inclusive() -> None:
    s = schedule({"cron": "0 * * * *", "start": "2026-06-01T10:00:00", "end": "2026-06-01T12:00:00"})
    assert instants(s, utc(2026, 6, 1), utc(2026, 6, 2)) == [
        utc(2026, 6, 1, 10),
        utc(2026, 6, 1, 11),
        utc(2026, 6, 1, 12),
    ]


def test_entries_merge_and_a_shared_instant_takes_the_smallest_jitter() -> None:
    s = schedule(
        {"cron": "0 6 * * *", "jitter": "5m"},
        {"cron": "0 8 * * *", "timezone": "Europe/Berlin", "jitter": "1m"},
        {"interval": "12h"},
    )
    slots = list(s.between(utc(2026, 6, 1), utc(2026, 6, 2)))
    assert [x.at for x in slots] == [utc(2026, 6, 1, 6), utc(2026, 6, 1, 12), utc(2026, 6, 2)]
    assert [x.jitter for x in slots] == [timedelta(minutes=1), timedelta(0), timedelta(0)]
    assert slots[0].timezone == "UTC"  # the first entry's


def test_a_cron_past_its_end_has_no_slot() -> None:
    # (A cron that can never match, like 30 February, is refused when the job file is read.)
    assert schedule({"cron": "0 0 * * *", "end": "2025-06-01T00:00:00"}).next_after(utc(2026, 1, 1)) is None


def test_newest_window_counts_older_slots() -> None:
    s = schedule({"cron": "* * * * * *"})
    window = s.newest(utc(2026, 6, 1), utc(2026, 6, 1, 0, 5), limit=100)
    assert [x.at for x in window.slots] == [
        utc(2026, 6, 1, 0, 3, 21) + timedelta(seconds=i) for i in range(100)
    ]
    assert window.older_first == Slot(utc(2026, 6, 1, 0, 0, 1))
    assert (window.older_count, window.older_capped) == (200, False)
    capped = s.newest(utc(2026, 6, 1), utc(2026, 6, 2), limit=10, count_cap=1000)
    assert (capped.older_count, capped.older_capped) == (1000, True)
    assert s.newest(utc(2026, 6, 1), utc(2026, 6, 1, 0, 0, 5), limit=10).older_first is None
    assert (
        schedule({"cron": "0 6 * * *"}).newest(utc(2026, 6, 1, 7), utc(2026, 6, 1, 8), limit=10).slots == []
    )


@pytest.mark.parametrize(
    ("entries", "after", "until"),
    [
        ([{"cron": "* * * * * *"}], utc(2026, 6, 1, 12, 0, 0), utc(2026, 6, 1, 12, 0, 1)),
        ([{"cron": "0 6 * * *"}], utc(2026, 6, 1, 7), utc(2026, 6, 1, 8)),  # no slot in the range
        ([{"cron": "*/10 * * * *"}], utc(2026, 6, 1), utc(2026, 6, 2, 0, 5)),  # more than the limit
        ([{"cron": "0 6 * * *"}, {"interval": "7m"}], utc(2026, 6, 1, 5, 50), utc(2026, 6, 1, 6, 0)),
        ([{"cron": "30 1 * * *", "timezone": "America/New_York"}], utc(2026, 11, 1), utc(2026, 11, 1, 5, 30)),
        ([{"at": "2026-06-01T06:00:00"}], utc(2026, 6, 1), utc(2026, 6, 1, 6)),  # nothing after
    ],
)
def test_newest_window_knows_the_first_slot_after_its_range(
    entries: list[dict[str, object]], after: datetime, until: datetime
) -> None:
    """The scheduler's next wake-up comes from the window's walk, without asking again."""
    s = schedule(*entries)
    assert s.newest(after, until, limit=10).following == s.next_after(until)


def test_newest_over_a_year_of_seconds_is_cheap() -> None:
    s = schedule({"cron": "* * * * * *"})
    window = s.newest(utc(2025, 6, 1), utc(2026, 6, 1), limit=100)
    assert window.slots[-1].at == utc(2026, 6, 1) and len(window.slots) == 100
    assert window.older_capped


# -- DST: explicit instants ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("zone", "cron", "start", "expected"),
    [
        # America/New_York, 2026-03-08: 02:00 EST -> 03:00 EDT (07:00Z)
        (
            "America/New_York",
            "30 1 * * *",
            utc(2026, 3, 7),
            [utc(2026, 3, 7, 6, 30), utc(2026, 3, 8, 6, 30), utc(2026, 3, 9, 5, 30)],
        ),
        (
            "America/New_York",
            "30 2 * * *",
            utc(2026, 3, 7),
            [utc(2026, 3, 7, 7, 30), utc(2026, 3, 8, 7, 30), utc(2026, 3, 9, 6, 30)],
        ),
        (
            "America/New_York",
            "30 3 * * *",
            utc(2026, 3, 7),
            [utc(2026, 3, 7, 8, 30), utc(2026, 3, 8, 7, 30), utc(2026, 3, 9, 7, 30)],
        ),
        # America/New_York, 2026-11-01: 02:00 EDT -> 01:00 EST (06:00Z)
        (
            "America/New_York",
            "30 1 * * *",
            utc(2026, 10, 31),
            [utc(2026, 10, 31, 5, 30), utc(2026, 11, 1, 5, 30), utc(2026, 11, 2, 6, 30)],
        ),
        (
            "America/New_York",
            "30 2 * * *",
            utc(2026, 10, 31),
            [utc(2026, 10, 31, 6, 30), utc(2026, 11, 1, 7, 30), utc(2026, 11, 2, 7, 30)],
        ),
        (
            "America/New_York",
            "30 3 * * *",
            utc(2026, 10, 31),
            [utc(2026, 10, 31, 7, 30), utc(2026, 11, 1, 8, 30), utc(2026, 11, 2, 8, 30)],
        ),
        # Europe/Berlin, 2026-03-29: 02:00 CET -> 03:00 CEST (01:00Z)
        (
            "Europe/Berlin",
            "30 1 * * *",
            utc(2026, 3, 27, 23),
            [utc(2026, 3, 28, 0, 30), utc(2026, 3, 29, 0, 30), utc(2026, 3, 29, 23, 30)],
        ),
        (
            "Europe/Berlin",
            "30 2 * * *",
            utc(2026, 3, 27, 23),
            [utc(2026, 3, 28, 1, 30), utc(2026, 3, 29, 1, 30), utc(2026, 3, 30, 0, 30)],
        ),
        (
            "Europe/Berlin",
            "30 3 * * *",
            utc(2026, 3, 27, 23),
            [utc(2026, 3, 28, 2, 30), utc(2026, 3, 29, 1, 30), utc(2026, 3, 30, 1, 30)],
        ),
        # Europe/Berlin, 2026-10-25: 03:00 CEST -> 02:00 CET (01:00Z)
        (
            "Europe/Berlin",
            "30 1 * * *",
            utc(2026, 10, 23, 22),
            [utc(2026, 10, 23, 23, 30), utc(2026, 10, 24, 23, 30), utc(2026, 10, 26, 0, 30)],
        ),
        (
            "Europe/Berlin",
            "30 2 * * *",
            utc(2026, 10, 23, 22),
            [utc(2026, 10, 24, 0, 30), utc(2026, 10, 25, 0, 30), utc(2026, 10, 26, 1, 30)],
        ),
        (
            "Europe/Berlin",
            "30 3 * * *",
            utc(2026, 10, 23, 22),
            [utc(2026, 10, 24, 1, 30), utc(2026, 10, 25, 2, 30), utc(2026, 10, 26, 2, 30)],
        ),
    ],
)
def test_dst_daily_instants(zone: str, cron: str, start: datetime, expected: list[datetime]) -> None:
    s = schedule({"cron": cron, "timezone": zone})
    assert instants(s, start, start + timedelta(hours=71)) == expected


# -- DST: brute-force reference --------------------------------------------------------------------------

TRANSITIONS = [
    ("America/New_York", utc(2026, 3, 8, 7)),
    ("America/New_York", utc(2026, 11, 1, 6)),
    ("Europe/Berlin", utc(2026, 3, 29, 1)),
    ("Europe/Berlin", utc(2026, 10, 25, 1)),
    ("Australia/Lord_Howe", utc(2026, 4, 4, 15)),  # 02:00 -> 01:30: a half-hour fall-back
    ("Australia/Lord_Howe", utc(2026, 10, 3, 15, 30)),  # 02:00 -> 02:30: a half-hour gap
]
CRONS = [
    "30 1 * * *",
    "30 2 * * *",
    "0 2 * * *",
    "59 1 * * *",
    "15,45 1-3 * * *",
    "0 * * * *",
    "*/15 * * * *",
    "* 2 * * *",
    "10 */2 * * *",
]


def reference(zone_name: str, cron: str, start: datetime, end: datetime) -> list[datetime]:
    """The rules, computed the other way round: walk real minutes in UTC and look at the local clock."""
    zone = ZoneInfo(zone_name)
    matcher = CronTrigger(**cron_fields(cron), timezone=UTC)
    fixed = not any(cron_fields(cron)[f].startswith("*") for f in ("second", "minute", "hour"))

    def matches(wall: datetime) -> bool:
        probe = wall.replace(tzinfo=UTC)
        return bool(matcher.get_next_fire_time(None, probe) == probe)

    found: list[datetime] = []
    seen_walls: set[datetime] = set()
    minute = start
    previous_wall: datetime | None = None
    while minute <= end:
        wall = minute.astimezone(zone).replace(tzinfo=None)
        if previous_wall is not None and wall - previous_wall > timedelta(minutes=1) and fixed:
            # The clock jumped forward: the wall minutes it skipped run as if it had not jumped.
            skipped = previous_wall + timedelta(minutes=1)
            while skipped < wall:
                if matches(skipped):
                    found.append(minute - timedelta(minutes=1) + (skipped - previous_wall))
                skipped += timedelta(minutes=1)
        if matches(wall) and not (fixed and wall in seen_walls):
            found.append(minute)
        seen_walls.add(wall)
        previous_wall = wall
        minute += timedelta(minutes=1)
    return sorted(set(found))


@pytest.mark.parametrize("cron", CRONS)
@pytest.mark.parametrize(("zone", "change"), TRANSITIONS, ids=[f"{z}-{t:%m-%d}" for z, t in TRANSITIONS])
def test_dst_against_reference(zone: str, change: datetime, cron: str) -> None:
    start, end = change - timedelta(hours=6), change + timedelta(hours=6)
    s = schedule({"cron": cron, "timezone": zone})
    expected = reference(zone, cron, start - timedelta(hours=3), end + timedelta(hours=26))
    expected_in = [e for e in expected if start < e <= end]
    assert instants(s, start, end) == expected_in
    # From any point in the window (including inside a repeated or skipped hour) the next slot is the next one.
    probe = start
    while probe <= end:
        for after in (probe, probe + timedelta(seconds=30)):
            nxt = s.next_after(after)
            want = next(e for e in expected if e > after)
            assert nxt is not None and nxt.at == want, (after, nxt, want)
        probe += timedelta(minutes=7)


def test_wildcard_and_fixed_classification() -> None:
    def fixed(cron: str) -> bool:
        return CronSlots(ScheduleEntry(cron=cron)).fixed

    assert fixed("30 2 * * *") and fixed("0 1-3 * * *") and fixed("0 0 6 * * *")
    assert (
        not fixed("0 * * * *")
        and not fixed("*/15 * * * *")
        and not fixed("* 30 2 * * *")
        and not fixed("@hourly")
    )


def test_every_second_through_a_fall_back_is_every_real_second() -> None:
    s = schedule({"cron": "* * * * * *", "timezone": "America/New_York"})
    seconds = instants(s, utc(2026, 11, 1, 5), utc(2026, 11, 1, 7))
    assert seconds == [utc(2026, 11, 1, 5) + timedelta(seconds=i) for i in range(1, 7201)]
