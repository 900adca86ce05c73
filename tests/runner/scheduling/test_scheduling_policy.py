"""Pure decisions: catch-up policies, grace, pause, replace, jitter delays, reasons."""

from __future__ import annotations

import random
from datetime import timedelta

import pytest
from sched_helpers import utc

from cyberdesk_runner.scheduling.policy import (
    DueSlot,
    Run,
    Skip,
    decide,
    draw_delay,
    format_age,
    overlap_skip_reason,
    summary_reason,
    supersede_for_replace,
)
from cyberdesk_runner.scheduling.slots import Slot

NOW = utc(2026, 6, 1, 12, 0)


def due(*minutes_ago: float) -> list[DueSlot]:
    return [DueSlot(Slot(NOW - timedelta(minutes=m)), NOW - timedelta(minutes=m)) for m in minutes_ago]


def outcome(decisions: list[Run | Skip]) -> list[str]:
    return [d.trigger if isinstance(d, Run) else f"skip:{d.trigger}" for d in decisions]


def test_on_time_slots_run_as_scheduled() -> None:
    slots = [DueSlot(Slot(NOW - timedelta(seconds=15)), NOW - timedelta(seconds=15))]
    assert outcome(decide(slots, now=NOW, catchup="none", max_delay=timedelta(hours=1))) == ["scheduled"]


def test_grace_is_measured_from_the_jittered_due_time() -> None:
    slot = Slot(NOW - timedelta(minutes=9), jitter=timedelta(minutes=10))
    late_jitter = DueSlot(slot, NOW - timedelta(seconds=5))
    assert outcome(decide([late_jitter], now=NOW, catchup="none", max_delay=timedelta(hours=1))) == [
        "scheduled"
    ]


@pytest.mark.parametrize(
    ("catchup", "max_delay", "expected"),
    [
        ("none", timedelta(hours=1), ["skip:catchup", "skip:catchup", "skip:catchup"]),
        ("latest", timedelta(hours=1), ["skip:catchup", "skip:catchup", "catchup"]),
        ("latest", timedelta(minutes=5), ["skip:catchup", "skip:catchup", "skip:catchup"]),
        ("all", timedelta(hours=1), ["skip:catchup", "catchup", "catchup"]),
        ("all", timedelta(hours=3), ["catchup", "catchup", "catchup"]),
    ],
)
def test_catchup_policies(catchup: str, max_delay: timedelta, expected: list[str]) -> None:
    decisions = decide(due(90, 30, 10), now=NOW, catchup=catchup, max_delay=max_delay)  # type: ignore[arg-type]
    assert outcome(decisions) == expected


def test_reasons() -> None:
    none = decide(due(90), now=NOW, catchup="none", max_delay=timedelta(hours=1))
    assert isinstance(none[0], Skip)
    assert none[0].reason == "missed by 1h30m while the daemon was down or stalled; catchup: none"
    latest = decide(due(90, 30), now=NOW, catchup="latest", max_delay=timedelta(minutes=20))
    assert [d.reason for d in latest if isinstance(d, Skip)] == [
        "missed while the daemon was down; catchup: latest runs only the most recent missed fire",
        "missed by 30m, more than max_delay 20m",
    ]
    superseded = decide([*due(30), *due(0.1)], now=NOW, catchup="latest", max_delay=timedelta(hours=1))
    assert outcome(superseded) == ["skip:catchup", "scheduled"]
    assert isinstance(superseded[0], Skip)
    assert superseded[0].reason.endswith("the fire of 2026-06-01T11:59:54Z runs on time instead")


def test_paused_skips_everything_and_keeps_the_trigger() -> None:
    decisions = decide([*due(30), *due(0)], now=NOW, catchup="all", max_delay=timedelta(hours=1), paused=True)
    assert outcome(decisions) == ["skip:catchup", "skip:scheduled"]
    assert {d.reason for d in decisions if isinstance(d, Skip)} == {"job paused"}


def test_supersede_for_replace_keeps_only_the_newest_run() -> None:
    decisions = decide(due(30, 20, 10), now=NOW, catchup="all", max_delay=timedelta(hours=1))
    replaced = supersede_for_replace(decisions)
    assert outcome(replaced) == ["skip:catchup", "skip:catchup", "catchup"]
    assert isinstance(replaced[0], Skip)
    assert replaced[0].reason == "superseded by the fire of 2026-06-01T11:50:00Z (overlap: replace)"
    single = decide(due(10), now=NOW, catchup="all", max_delay=timedelta(hours=1))
    assert supersede_for_replace(single) == single


def test_draw_delay_bounds_and_determinism() -> None:
    slot = Slot(NOW, jitter=timedelta(minutes=10))
    rng = random.Random(5)
    delays = [draw_delay(slot, None, rng) for _ in range(200)]
    assert all(timedelta(0) <= d <= timedelta(minutes=10) for d in delays)
    assert max(delays) > timedelta(minutes=9) and min(delays) < timedelta(minutes=1)
    again = random.Random(5)
    assert delays == [draw_delay(slot, None, again) for _ in range(200)]
    nxt = Slot(NOW + timedelta(minutes=1))
    assert all(draw_delay(slot, nxt, rng) <= timedelta(minutes=1) for _ in range(100))
    assert draw_delay(Slot(NOW), None, rng) == timedelta(0)


def test_small_texts() -> None:
    assert format_age(timedelta(hours=3, seconds=0.4)) == "3h"
    assert format_age(timedelta(seconds=125.6)) == "2m6s"
    assert (
        overlap_skip_reason(["fire_a"])
        == "the previous fire (fire_a) still has work in flight; overlap: forbid"
    )
    assert overlap_skip_reason(["a", "b", "c", "d", "e"]).startswith("the previous fire (a, b, c and 2 more)")
    assert (
        summary_reason(
            count=7,
            capped=False,
            first=utc(2026, 6, 1),
            last_before=utc(2026, 6, 1, 1),
            paused=True,
            catchup="latest",
        )
        == "job paused; this record stands for 7 slots from 2026-06-01T00:00:00Z to before 2026-06-01T01:00:00Z"
    )
