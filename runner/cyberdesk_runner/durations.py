"""Durations written as `30s`, `15m`, `2h`, `1d`, `1h30m` or `500ms`, and the pydantic type `Duration`.

Only strings are accepted: a bare number would leave the unit to guesswork (seconds? minutes?).
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Any

from pydantic import PlainSerializer, PlainValidator, WithJsonSchema

__all__ = ["DURATION_PATTERN", "Duration", "format_duration", "parse_duration"]

# Units in decreasing order, each at most once. `m(?!s)` keeps the `m` of `ms` from being read as minutes.
DURATION_PATTERN = r"^(?=\d)(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m(?!s))?(?:(\d+)s)?(?:(\d+)ms)?$"
_DURATION_RE = re.compile(DURATION_PATTERN)
_EXPECTED = "expected a duration like 30s, 15m or 2h"
_UNITS_MS = (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1_000), ("ms", 1))


def parse_duration(text: str) -> timedelta:
    """`"1h30m"` -> `timedelta(hours=1, minutes=30)`; raises ValueError on anything else."""
    match = _DURATION_RE.match(text.strip())
    if match is None:
        raise ValueError(f"{_EXPECTED}, got {text!r}")
    days, hours, minutes, seconds, millis = (int(group or 0) for group in match.groups())
    return timedelta(days=days, hours=hours, minutes=minutes, seconds=seconds, milliseconds=millis)


def format_duration(value: timedelta) -> str:
    """The shortest string `parse_duration` reads back as `value` (to the millisecond), e.g. `1h30m`."""
    remaining = round(value.total_seconds() * 1000)
    if remaining <= 0:
        return "0s"
    parts: list[str] = []
    for unit, size in _UNITS_MS:
        count, remaining = divmod(remaining, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts)


def _validate(value: Any) -> timedelta:
    if isinstance(value, timedelta):  # from Python code, not from a file
        parsed = value
    elif isinstance(value, str):
        parsed = parse_duration(value)
    elif isinstance(value, int | float) and not isinstance(value, bool):
        raise ValueError(f"{_EXPECTED}, got {value!r} (a number needs a unit, e.g. {value}s or {value}m)")
    else:
        raise ValueError(f"{_EXPECTED}, got {_kind(value)}")
    if parsed <= timedelta(0):
        raise ValueError(f"must be longer than 0s, got {format_duration(parsed)!r}")
    return parsed


def _kind(value: Any) -> str:
    if value is None:
        return "an empty value"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list | tuple):
        return "a list"
    return repr(value)


Duration = Annotated[
    timedelta,
    PlainValidator(_validate),
    PlainSerializer(format_duration, return_type=str, when_used="json"),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": DURATION_PATTERN,
            "examples": ["30s", "15m", "2h", "1d", "1h30m", "500ms"],
        }
    ),
]
"""A positive duration given as a string like `30s`, `15m`, `2h`, `1d`, `1h30m` or `500ms`."""
