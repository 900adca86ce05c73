"""Catch-up, pause, overlap and jitter decisions, as pure functions of slots, times and the job's settings.

A slot is *due* at its instant plus its jitter delay. A due slot found within `grace` of when it was due is on
time and runs as `scheduled`; one found later was missed (the daemon was down, or stalled) and the job's
`catchup` decides:

- `none`: every missed slot is skipped.
- `latest` (default): the most recent missed slot runs as `catchup` if it is at most `max_delay` old, unless an
  on-time slot runs in the same pass; every other missed slot is skipped.
- `all`: every missed slot at most `max_delay` old runs as `catchup`; older ones are skipped.

Every skipped slot is recorded with its reason. The scheduler hands at most `MAX_SLOTS_PER_TICK` slots per job
to `decide` at once (the newest); older ones are recorded as one summary (see `summary_reason`), so a long
downtime never turns into a storm of runs or of records.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Literal

import attrs

from cyberdesk_runner.durations import format_duration
from cyberdesk_runner.scheduling.slots import Slot

__all__ = [
    "DEFAULT_GRACE",
    "MAX_SLOTS_PER_TICK",
    "Decision",
    "DueSlot",
    "Run",
    "Skip",
    "decide",
    "draw_delay",
    "format_age",
    "format_instant",
    "overlap_skip_reason",
    "summary_reason",
    "supersede_for_replace",
]

#: How late a slot may be found and still count as on time: a tick stalled by a slow database or a long
#: garbage collection must not turn a due fire into a missed one. Prefect marks runs Late after 15s too.
DEFAULT_GRACE = timedelta(seconds=15)
#: The most slots of one job decided one by one in one tick; older ones are summarised in one record.
MAX_SLOTS_PER_TICK = 100

Catchup = Literal["none", "latest", "all"]


@attrs.frozen
class DueSlot:
    slot: Slot
    #: When the slot is acted on: its instant plus its jitter delay.
    due_at: datetime

    @property
    def at(self) -> datetime:
        return self.slot.at


@attrs.frozen
class Run:
    due: DueSlot
    trigger: Literal["scheduled", "catchup"]


@attrs.frozen
class Skip:
    due: DueSlot
    reason: str
    #: How the slot would have run: `scheduled` when on time, `catchup` when missed.
    trigger: Literal["scheduled", "catchup"] = "scheduled"


Decision = Run | Skip


def draw_delay(slot: Slot, next_slot: Slot | None, rng: random.Random) -> timedelta:
    """The jitter delay of `slot`: uniform in [0, jitter], and never past the next slot, so fires stay in order."""
    if slot.jitter <= timedelta(0):
        return timedelta(0)
    limit = slot.jitter
    if next_slot is not None:
        limit = min(limit, next_slot.at - slot.at)
    # Whole microseconds: the store keeps microseconds, and equal inputs must give equal delays.
    return timedelta(microseconds=int(rng.uniform(0, limit.total_seconds()) * 1_000_000))


def decide(
    due: Sequence[DueSlot],
    *,
    now: datetime,
    catchup: Catchup,
    max_delay: timedelta,
    grace: timedelta = DEFAULT_GRACE,
    paused: bool = False,
) -> list[Decision]:
    """What to do with each due slot (oldest first), by pause state and catch-up policy."""
    on_time = [d for d in due if now - d.due_at <= grace]
    missed = [d for d in due if now - d.due_at > grace]
    if paused:
        return [Skip(d, "job paused", "scheduled" if d in on_time else "catchup") for d in due]
    decisions: dict[DueSlot, Decision] = {d: Run(d, "scheduled") for d in on_time}
    if catchup == "none":
        for d in missed:
            decisions[d] = _missed(
                d, f"missed by {format_age(now - d.at)} while the daemon was down or stalled; catchup: none"
            )
    elif catchup == "latest":
        for d in missed:
            decisions[d] = _missed(
                d, "missed while the daemon was down; catchup: latest runs only the most recent missed fire"
            )
        if missed:
            latest = missed[-1]
            if on_time:
                decisions[latest] = _missed(
                    latest,
                    f"missed while the daemon was down; catchup: latest, and the fire of "
                    f"{format_instant(on_time[0].at)} runs on time instead",
                )
            elif now - latest.at > max_delay:
                decisions[latest] = _missed(latest, _too_late(now - latest.at, max_delay))
            else:
                decisions[latest] = Run(latest, "catchup")
    else:
        for d in missed:
            late = now - d.at
            decisions[d] = _missed(d, _too_late(late, max_delay)) if late > max_delay else Run(d, "catchup")
    return [decisions[d] for d in due]


def supersede_for_replace(decisions: Sequence[Decision]) -> list[Decision]:
    """With `overlap: replace`, of several runs decided in one pass only the newest starts; starting each to
    cancel it at once would only make noise."""
    runs = [d for d in decisions if isinstance(d, Run)]
    if len(runs) < 2:
        return list(decisions)
    newest = runs[-1]
    reason = f"superseded by the fire of {format_instant(newest.due.at)} (overlap: replace)"
    return [
        Skip(d.due, reason, d.trigger) if isinstance(d, Run) and d is not newest else d for d in decisions
    ]


def overlap_skip_reason(fire_ids: Sequence[str]) -> str:
    shown = ", ".join(fire_ids[:3]) + (f" and {len(fire_ids) - 3} more" if len(fire_ids) > 3 else "")
    return f"the previous fire ({shown}) still has work in flight; overlap: forbid"


def summary_reason(
    *, count: int, capped: bool, first: datetime, last_before: datetime, paused: bool, catchup: Catchup
) -> str:
    """The reason of the one record that stands for slots too many to record one by one."""
    many = f"more than {count}" if capped else str(count)
    span = f"{many} slots from {format_instant(first)} to before {format_instant(last_before)}"
    if paused:
        return f"job paused; this record stands for {span}"
    return (
        f"{span} were missed while the daemon was down, more than {MAX_SLOTS_PER_TICK} at once; this record stands "
        f"for all of them and none ran (catchup: {catchup} considers only the {MAX_SLOTS_PER_TICK} most recent)"
    )


def format_age(age: timedelta) -> str:
    return format_duration(timedelta(seconds=round(age.total_seconds())))


def format_instant(at: datetime) -> str:
    return at.strftime("%Y-%m-%dT%H:%M:%SZ") if not at.microsecond else at.isoformat()


def _missed(due: DueSlot, reason: str) -> Skip:
    return Skip(due, reason, "catchup")


def _too_late(late: timedelta, max_delay: timedelta) -> str:
    return f"missed by {format_age(late)}, more than max_delay {format_duration(max_delay)}"
