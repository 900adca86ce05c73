"""Schedules in words."""

from __future__ import annotations

from datetime import timedelta

import pytest

from cyberdesk_runner.scheduling.describe import (
    describe_cron,
    describe_entry,
    describe_every,
    entry_expression,
    entry_kind,
)
from cyberdesk_runner.spec import ScheduleEntry


@pytest.mark.parametrize(
    ("cron", "words"),
    [
        ("0 6 * * 1-5", "at 06:00 on Monday to Friday"),
        ("30 2 * * *", "at 02:30 every day"),
        ("0 8,12,18 * * *", "at 08:00, 12:00 and 18:00 every day"),
        ("30 0 6 * * mon-fri", "at 06:00:30 on Monday to Friday"),
        ("0 6 * * 0", "at 06:00 on Sunday"),
        ("0 6 * * 1,3,5", "at 06:00 on Monday, Wednesday and Friday"),
        ("15 10 * * 6,0", "at 10:15 on Saturday and Sunday"),
        ("0 7 * * 5-7", "at 07:00 on Friday to Sunday"),
        ("0 9 1 * *", "at 09:00 on day 1 of the month"),
        ("0 9 1,15 * *", "at 09:00 on days 1 and 15 of the month"),
        ("0 0 1 1 *", "at 00:00 on 1 January"),
        ("0 12 * 1,7 *", "at 12:00 in January and July"),
        ("0 0 1 3-5 *", "at 00:00 on day 1 of the month, in March to May"),
        ("0 6 1-7 * 1", "at 06:00 on days 1 to 7 of the month, only on Monday"),
        ("*/15 * * * *", "every 15 minutes"),
        ("* * * * *", "every minute"),
        ("* * * * * *", "every second"),
        ("*/5 * * * * *", "every 5 seconds"),
        ("0 * * * *", "every hour at :00"),
        ("15,45 * * * *", "every hour at :15 and :45"),
        ("0 */2 * * *", "every 2 hours at :00"),
        ("*/10 9-17 * * 1-5", "every 10 minutes from 09:00 to 17:59 on Monday to Friday"),
        ("0,30 9-17 * * 1-5", "every hour at :00 and :30 from 09:00 to 17:59 on Monday to Friday"),
        ("@daily", "at 00:00 every day"),
        ("@hourly", "every hour at :00"),
        ("0 0 L * *", "cron 0 0 L * *"),
        ("0 0 * * 1#2", "cron 0 0 * * 1#2"),
    ],
)
def test_cron_in_words(cron: str, words: str) -> None:
    assert describe_cron(cron) == words


@pytest.mark.parametrize(
    ("interval", "words"),
    [
        (timedelta(minutes=15), "every 15 minutes"),
        (timedelta(hours=1), "every hour"),
        (timedelta(hours=1, minutes=30), "every 1 hour 30 minutes"),
        (timedelta(days=2), "every 2 days"),
        (timedelta(seconds=1.5), "every 1s500ms"),
    ],
)
def test_intervals_in_words(interval: timedelta, words: str) -> None:
    assert describe_every(interval) == words


def test_entries_in_words() -> None:
    def words(**fields: object) -> str:
        return describe_entry(ScheduleEntry.model_validate(fields))

    assert (
        words(cron="0 6 * * 1-5", timezone="America/New_York")
        == "at 06:00 on Monday to Friday, America/New_York"
    )
    assert words(interval="15m") == "every 15 minutes"
    assert words(interval="15m", jitter="30s") == "every 15 minutes (jitter up to 30s)"
    assert words(at="2026-12-01T09:00:00") == "once at 2026-12-01 09:00 UTC"
    assert (
        words(at="2026-12-01T09:00:00Z", timezone="Europe/Berlin") == "once at 2026-12-01 10:00 Europe/Berlin"
    )
    assert words(cron="0 6 * * *", start="2026-07-01T00:00:00", end="2026-08-01T00:00:00") == (
        "at 06:00 every day, UTC, from 2026-07-01 00:00, until 2026-08-01 00:00"
    )
    assert words(interval="1h", start="2026-07-01T00:30:00", timezone="Asia/Tokyo") == (
        "every hour, from 2026-07-01 00:30 Asia/Tokyo"
    )


def test_kind_and_expression() -> None:
    entries = [
        ScheduleEntry(cron="0 6 * * *"),
        ScheduleEntry.model_validate({"interval": "90m"}),
        ScheduleEntry.model_validate({"at": "2026-12-01T09:00:00"}),
    ]
    assert [(entry_kind(e), entry_expression(e)) for e in entries] == [
        ("cron", "0 6 * * *"),
        ("interval", "1h30m"),
        ("at", "2026-12-01T09:00:00"),
    ]
