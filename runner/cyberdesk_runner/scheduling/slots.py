"""Schedule entries -> slots: the UTC instants at which a job is due, without jitter.

Cron expressions are matched by APScheduler 3 (`spec.build_trigger`) against *wall-clock* time, using a trigger
in UTC where no clock ever jumps; each wall-clock match is then turned into instants here. We do not ask
APScheduler for fire times in the entry's own timezone because 3.11 mishandles the repeated hour of a fall-back
day: asked for the next fire after 01:30 EST it answers 01:30 EST again (a caller loops for ever), and `*/30`
goes backwards from 01:00 EST to 01:30 EDT. The DST rules, written down once:

- Fixed-time cron entries (second, minute and hour are values, lists or ranges, e.g. `30 2 * * *`):
  a wall time that does not exist (spring forward) runs as if the clock had not jumped (02:30 -> 03:30 daylight
  time: the offset before the change, PEP 495 fold=0, as APScheduler 3 does); a wall time that happens twice
  (fall back) runs once, at its first occurrence.
- Wildcard cron entries (second, minute or hour starts with `*`, e.g. `0 * * * *`, `*/15 * * * *`) follow
  elapsed time, as Vixie cron does: wall times that do not exist are skipped and repeated ones run at both
  occurrences, so `0 * * * *` runs every real hour (23 times on a spring-forward day, 25 on a fall-back day).
- Intervals count elapsed time from their anchor (`start`, else 1970-01-01T00:00 in the entry's timezone) and
  ignore clock changes: `1d` in New York runs at 00:00 in winter and at 01:00 in summer.
- `at` is one instant; a local time that does not exist or happens twice is read with fold=0.

Slots from several entries are merged; an instant produced by two entries is one slot.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Protocol

import attrs

from cyberdesk_runner.spec import ScheduleEntry, build_trigger
from cyberdesk_runner.spec.cron import cron_fields

__all__ = ["Schedule", "Slot", "SlotWindow", "entry_slots"]

_TICK = timedelta(microseconds=1)
# Every tz database offset change that matters here (DST, zone moves) is at most a few hours; 3h covers them.
_NEAR = timedelta(hours=3)
# A walk ends after a match or two; across a DST change it may look at one more hour of matches (3,600 for an
# every-second cron, once per change). The cap only guards against looping for ever.
_MAX_WALK = 100_000


@attrs.frozen(order=True)
class Slot:
    """One scheduled instant of a job (UTC, without jitter), with the most its fire may be delayed."""

    at: datetime
    jitter: timedelta = attrs.field(default=timedelta(0), order=False)
    #: The IANA timezone of the entry that produced the slot (for display).
    timezone: str = attrs.field(default="UTC", order=False)


class EntrySlots(Protocol):
    def next_after(self, after: datetime) -> datetime | None:
        """The first slot strictly after `after` (UTC), or None when there is none."""


def entry_slots(entry: ScheduleEntry) -> EntrySlots:
    if entry.cron is not None:
        return CronSlots(entry)
    if entry.interval is not None:
        return IntervalSlots(entry)
    return AtSlots(entry)


class AtSlots:
    def __init__(self, entry: ScheduleEntry) -> None:
        assert entry.at is not None
        self.instant = entry.localize(entry.at).astimezone(UTC)

    def next_after(self, after: datetime) -> datetime | None:
        return self.instant if self.instant > after else None


class IntervalSlots:
    def __init__(self, entry: ScheduleEntry) -> None:
        # Jitter is ours to apply (per slot, from an injected rng), never the trigger's.
        self._trigger = build_trigger(entry.model_copy(update={"jitter": None}))

    def next_after(self, after: datetime) -> datetime | None:
        found: datetime | None = self._trigger.get_next_fire_time(None, after + _TICK)
        return found.astimezone(UTC) if found is not None else None


class CronSlots:
    def __init__(self, entry: ScheduleEntry) -> None:
        assert entry.cron is not None
        fields = cron_fields(entry.cron)
        self.fixed = not any(fields[name].startswith("*") for name in ("second", "minute", "hour"))
        self._zone: tzinfo = entry.zone
        # The same expression evaluated on wall-clock time: a trigger in UTC, without start, end or jitter.
        self._wall = build_trigger(
            entry.model_copy(update={"timezone": "UTC", "jitter": None, "start": None, "end": None})
        )
        self._start = entry.localize(entry.start).astimezone(UTC) if entry.start is not None else None
        self._end = entry.localize(entry.end).astimezone(UTC) if entry.end is not None else None

    def next_after(self, after: datetime) -> datetime | None:
        if self._start is not None and after < self._start:
            after = self._start - _TICK  # start is inclusive
        o_after = self._offset(after)
        begin = self._wall_of(after)
        behind = self._offset(after - _NEAR)
        if self.fixed and behind < o_after:
            # Just after a spring-forward: wall times in the gap map to instants after the change, which may
            # still be ahead of `after` although their wall time is behind it.
            begin -= o_after - behind
        best = self._walk(begin, after, None, None)
        if not self.fixed and best is not None and self._offset(best) < o_after:
            # A fall-back lies between `after` and `best`: repeated wall times just behind `after` come again.
            best = self._walk(begin - (o_after - self._offset(best)), after, best, begin)
        if best is None or (self._end is not None and best > self._end):
            return None
        return best

    def instants(self, wall: datetime) -> list[datetime]:
        """The instants of one wall-clock match (naive), by the DST rules of the module docstring."""
        first = wall.replace(tzinfo=self._zone, fold=0).astimezone(UTC)
        second = wall.replace(tzinfo=self._zone, fold=1).astimezone(UTC)
        if first == second:
            return [first]
        exists = first.astimezone(self._zone).replace(tzinfo=None) == wall
        if exists:  # repeated (fall back): first < second
            return [first] if self.fixed else [first, second]
        return [first] if self.fixed else []  # skipped (spring forward): fold=0 is the pre-change offset

    def _walk(
        self, begin: datetime, after: datetime, best: datetime | None, until: datetime | None
    ) -> datetime | None:
        """The earliest instant > `after` of wall matches from `begin` on (up to `until`), starting from `best`."""
        wall = self._wall_match(begin)
        for _ in range(_MAX_WALK):
            if wall is None or (until is not None and wall > until):
                return best
            for instant in self.instants(wall):
                if instant > after and (best is None or instant < best):
                    best = instant
            # Later wall times map to instants of at least wall - (largest offset between after and best).
            if (
                best is not None
                and wall.replace(tzinfo=UTC) - max(self._offset(after), self._offset(best)) >= best
            ):
                return best
            wall = self._wall_match(wall + _TICK)
        raise RuntimeError(f"cron walk did not settle after {_MAX_WALK} wall-clock matches")

    def _wall_match(self, at_or_after: datetime) -> datetime | None:
        found: datetime | None = self._wall.get_next_fire_time(None, at_or_after.replace(tzinfo=UTC))
        return found.replace(tzinfo=None) if found is not None else None

    def _wall_of(self, instant: datetime) -> datetime:
        return instant.astimezone(self._zone).replace(tzinfo=None)

    def _offset(self, instant: datetime) -> timedelta:
        offset = instant.astimezone(self._zone).utcoffset()
        assert offset is not None
        return offset


@attrs.frozen
class SlotWindow:
    """The newest slots of a range, and a count of the older ones that did not fit."""

    slots: list[Slot]
    #: The oldest slot of the range when some did not fit in `slots`, else None.
    older_first: Slot | None = None
    #: How many slots did not fit (counted up to a cap; see `older_capped`).
    older_count: int = 0
    older_capped: bool = False
    #: The first slot after the range, if any (the one the walk stopped at).
    following: Slot | None = None


class Schedule:
    """All entries of one job, merged: `next_after`, `between`, `newest`."""

    def __init__(self, entries: Sequence[ScheduleEntry]) -> None:
        self._parts = [
            (entry_slots(entry), entry.jitter or timedelta(0), entry.timezone) for entry in entries
        ]

    def __bool__(self) -> bool:
        return bool(self._parts)

    def next_after(self, after: datetime) -> Slot | None:
        best: Slot | None = None
        for slots, jitter, zone in self._parts:
            at = slots.next_after(after)
            if at is None:
                continue
            if best is None or at < best.at:
                best = Slot(at, jitter, zone)
            elif at == best.at and jitter < best.jitter:
                best = Slot(
                    at, jitter, best.timezone
                )  # the same instant from two entries: act on the earliest
        return best

    def between(self, after: datetime, until: datetime) -> Iterator[Slot]:
        """Slots in (after, until], oldest first."""
        slot = self.next_after(after)
        while slot is not None and slot.at <= until:
            yield slot
            slot = self.next_after(slot.at)

    def newest(self, after: datetime, until: datetime, limit: int, count_cap: int = 1000) -> SlotWindow:
        """The newest `limit` slots in (after, until], without walking a long backlog slot by slot.

        The window is searched backwards from `until` with growing spans, so a year of every-second slots costs
        a few thousand trigger calls, not millions. Older slots are counted up to `count_cap`.
        """
        span = timedelta(minutes=1)
        while True:
            low = max(after, until - span)
            newest: deque[Slot] = deque(maxlen=limit)
            total = 0
            following = self.next_after(low)
            while following is not None and following.at <= until:  # `between`, keeping where it stopped
                newest.append(following)
                total += 1
                following = self.next_after(following.at)
            if total >= limit or low == after:
                break
            span *= 8
        slots = list(newest)
        if low == after and total <= limit:
            return SlotWindow(slots, following=following)  # every slot of the range is in `slots`
        first = self.next_after(after)
        if not slots or first is None or first.at >= slots[0].at:
            return SlotWindow(slots, following=following)
        count = 0
        for _ in self.between(after, slots[0].at - _TICK):
            count += 1
            if count >= count_cap:
                return SlotWindow(slots, first, count, older_capped=True, following=following)
        return SlotWindow(slots, first, count, following=following)
