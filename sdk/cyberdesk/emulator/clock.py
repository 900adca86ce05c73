"""Clocks of the emulator: wall time that tests can push forward, or time that moves only when told."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Protocol


class Clock(Protocol):
    """Epoch seconds as the emulator sees them; every timestamp and due time comes from here."""

    def now(self) -> float: ...

    def advance(self, seconds: float) -> None: ...


class SystemClock:
    """Wall-clock time plus an offset, so `advance()` can skip ahead without sleeping."""

    def __init__(self) -> None:
        self._offset = 0.0

    def now(self) -> float:
        return time.time() + self._offset

    def advance(self, seconds: float) -> None:
        self._offset += seconds


class ManualClock:
    """Frozen time that moves only through `advance()`: fully deterministic tests."""

    def __init__(self, start: float | None = None) -> None:
        self._now = time.time() if start is None else start

    def now(self) -> float:
        return self._now

    def advance(self, seconds: float) -> None:
        self._now += seconds


def iso(ts: float) -> str:
    """ISO-8601 with an explicit UTC offset, the form the real API answers with."""
    return datetime.fromtimestamp(ts, UTC).isoformat()


def epoch(value: datetime) -> float:
    """A query datetime as epoch seconds; a naive value is taken as UTC (the API documents UTC)."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.timestamp()
