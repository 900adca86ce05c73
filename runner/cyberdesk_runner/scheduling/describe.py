"""Schedule entries in words, for listings: `at 06:00 on Monday to Friday, America/New_York`, `every 15
minutes`, `once at 2026-12-01 09:00 UTC`. Expressions too unusual to phrase well fall back to `cron <expr>`."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from cyberdesk_runner.durations import format_duration
from cyberdesk_runner.spec import ScheduleEntry
from cyberdesk_runner.spec.cron import cron_fields

__all__ = ["describe_cron", "describe_entry", "describe_every", "entry_expression", "entry_kind"]

_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")  # the order `cron_fields` writes them in
_DAY_NAMES = dict(
    zip(_DAYS, ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"), strict=True)
)
_MONTHS = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)
_MAX_TIMES = 6  # more times of day than this read better as the expression itself


def entry_kind(entry: ScheduleEntry) -> str:
    return "cron" if entry.cron is not None else "interval" if entry.interval is not None else "at"


def entry_expression(entry: ScheduleEntry) -> str:
    if entry.cron is not None:
        return entry.cron
    if entry.interval is not None:
        return format_duration(entry.interval)
    assert entry.at is not None
    return entry.at.isoformat()


def describe_entry(entry: ScheduleEntry) -> str:
    if entry.at is not None:
        return f"once at {_local(entry, entry.at)} {entry.timezone}"
    if entry.cron is not None:
        text = f"{describe_cron(entry.cron)}, {entry.timezone}"
    else:
        assert entry.interval is not None
        text = describe_every(entry.interval)
    if entry.start is not None:
        text += f", from {_local(entry, entry.start)}"
    if entry.end is not None:
        text += f", until {_local(entry, entry.end)}"
    if entry.interval is not None and (entry.start is not None or entry.end is not None):
        text += f" {entry.timezone}"
    if entry.jitter is not None:
        text += f" (jitter up to {format_duration(entry.jitter)})"
    return text


def describe_every(interval: timedelta) -> str:
    """`every 15 minutes`, `every hour`, `every 1 hour 30 minutes`."""
    total_ms = round(interval.total_seconds() * 1000)
    if total_ms % 1000:
        return f"every {format_duration(interval)}"
    seconds = total_ms // 1000
    parts = []
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60), ("second", 1)):
        count, seconds = divmod(seconds, size)
        if count:
            parts.append((count, unit))
    if len(parts) == 1 and parts[0][0] == 1:
        return f"every {parts[0][1]}"
    return "every " + " ".join(f"{count} {unit}{'s' if count > 1 else ''}" for count, unit in parts)


def describe_cron(expression: str) -> str:
    """A cron expression in words, without its timezone."""
    try:
        fields = cron_fields(expression)
    except ValueError:
        return f"cron {expression}"
    time = _time_part(fields["second"], fields["minute"], fields["hour"])
    days = _day_part(fields["day"], fields["month"], fields["day_of_week"])
    if time is None or days is None:
        return f"cron {expression.strip()}"
    text, is_time_of_day = time
    if days:
        return f"{text} {days}"
    return f"{text} every day" if is_time_of_day else text


def _time_part(second: str, minute: str, hour: str) -> tuple[str, bool] | None:
    """(words, whether they name times of day) or None when too unusual."""
    seconds, minutes, hours = _values(second, 0, 59), _values(minute, 0, 59), _values(hour, 0, 23)
    if seconds is None or minutes is None or hours is None:
        return None
    if not any(f.startswith("*") for f in (second, minute, hour)):
        if len(seconds) * len(minutes) * len(hours) > _MAX_TIMES:
            if seconds != [0] or len(hours) < 2:
                return None
            return f"every hour at {_join([f':{m:02d}' for m in minutes])} {_hours_phrase(hours)}", False
        show_seconds = seconds != [0]
        times = [
            f"{h:02d}:{m:02d}" + (f":{s:02d}" if show_seconds else "")
            for h in hours
            for m in minutes
            for s in seconds
        ]
        return f"at {_join(times)}", True
    frequency = _frequency(second, minute, hour, seconds, minutes)
    if frequency is None:
        return None
    if hour == "*" or (hour.startswith("*/") and not (minute.startswith("*") or second.startswith("*"))):
        return frequency, False
    if minute.startswith("*") or second.startswith("*"):
        return f"{frequency} {_hours_phrase(hours)}", False
    return None


def _frequency(second: str, minute: str, hour: str, seconds: list[int], minutes: list[int]) -> str | None:
    if second.startswith("*"):
        if minute != "*":
            return None
        return _every(second, "second")
    if seconds != [0]:
        return None
    if minute.startswith("*"):
        return _every(minute, "minute")
    at_minutes = _join([f":{m:02d}" for m in minutes])
    if hour == "*":
        return f"every hour at {at_minutes}"
    if hour.startswith("*/"):
        return f"{_every(hour, 'hour')} at {at_minutes}"
    return None


def _every(field: str, unit: str) -> str:
    step = field.partition("/")[2]
    return f"every {step} {unit}s" if step and step != "1" else f"every {unit}"


def _hours_phrase(hours: list[int]) -> str:
    if hours == list(range(hours[0], hours[-1] + 1)):
        return f"from {hours[0]:02d}:00 to {hours[-1]:02d}:59"
    return "during hours " + _join([f"{h:02d}" for h in hours])


def _day_part(day: str, month: str, day_of_week: str) -> str | None:
    """Words for the day, month and weekday fields; "" for every day; None when too unusual."""
    days = _values(day, 1, 31) if day != "*" else []
    months = _values(month, 1, 12) if month != "*" else []
    weekdays = day_of_week.split(",") if day_of_week != "*" else []
    if days is None or months is None or any(w not in _DAYS for w in weekdays):
        return None
    parts = []
    if days and months and len(days) == 1 and len(months) == 1:
        parts.append(f"on {days[0]} {_MONTHS[months[0] - 1]}")
    else:
        if days:
            parts.append(f"on day{'s' if len(days) > 1 else ''} {_join_ranges(days)} of the month")
        if months:
            parts.append("in " + _join_ranges(months, lambda m: _MONTHS[m - 1]))
    if weekdays:
        # With both day and weekday restricted, both must match (the spec's rule, unlike classic cron).
        parts.append(("only " if days else "") + "on " + _weekdays(weekdays))
    return ", ".join(parts)


def _weekdays(names: list[str]) -> str:
    indexes = sorted(_DAYS.index(n) for n in names)
    if 3 <= len(indexes) < 7:
        # A run of days, possibly wrapping over the week's end (crontab `fri-mon`): start where the run starts.
        starts = [i for i in indexes if (i - 1) % 7 not in indexes]
        if len(starts) == 1:
            first = starts[0]
            last = (first + len(indexes) - 1) % 7
            return f"{_DAY_NAMES[_DAYS[first]]} to {_DAY_NAMES[_DAYS[last]]}"
    if len(indexes) == 7:
        return "every day of the week"
    return _join([_DAY_NAMES[_DAYS[i]] for i in indexes])


def _values(field: str, low: int, high: int) -> list[int] | None:
    """The numbers a simple cron field matches (`*`, `5`, `1-5`, `*/15`, `1-30/2`, lists of these); None for
    anything else (`L`, `last fri`, names), which the caller shows as the raw expression."""
    found: set[int] = set()
    for token in field.split(","):
        base, _, step_text = token.partition("/")
        if step_text and not step_text.isdigit():
            return None
        step = int(step_text) if step_text else 1
        if base == "*":
            first, last = low, high
        elif "-" in base:
            a, _, b = base.partition("-")
            if not (a.isdigit() and b.isdigit()):
                return None
            first, last = int(a), int(b)
        elif base.isdigit():
            first = int(base)
            last = high if step_text else first
        else:
            return None
        if step < 1:
            return None
        found.update(range(first, last + 1, step))
    return sorted(found)


def _join_ranges(values: list[int], name: Callable[[int], str] = str) -> str:
    """`1, 15 and 20 to 25`: runs of three or more numbers become ranges."""
    groups: list[list[int]] = []
    for value in values:
        if groups and value == groups[-1][-1] + 1:
            groups[-1].append(value)
        else:
            groups.append([value])
    words: list[str] = []
    for group in groups:
        if len(group) >= 3:
            words.append(f"{name(group[0])} to {name(group[-1])}")
        else:
            words.extend(name(v) for v in group)
    return _join(words)


def _join(words: list[str]) -> str:
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]


def _local(entry: ScheduleEntry, value: datetime) -> str:
    local = entry.localize(value).astimezone(entry.zone)
    return local.strftime("%Y-%m-%d %H:%M:%S" if local.second else "%Y-%m-%d %H:%M")
