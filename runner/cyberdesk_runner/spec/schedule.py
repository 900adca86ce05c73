"""Schedule entries of a job and the APScheduler 3 triggers built from them."""

from __future__ import annotations

import zoneinfo
from datetime import datetime, timedelta, tzinfo
from functools import cache
from typing import Annotated, Any, Self

from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.date import DateTrigger
from apscheduler.triggers.interval import IntervalTrigger
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    WithJsonSchema,
    model_validator,
)

from cyberdesk_runner.durations import Duration, format_duration
from cyberdesk_runner.spec.cron import cron_fields
from cyberdesk_runner.spec.diagnostics import field_error, suggest

__all__ = ["IsoDatetime", "ScheduleEntry", "TimezoneName", "build_trigger"]

# Intervals without `start` count from here, so fire times do not depend on when the daemon started
# (a restart must produce the same slots, or dedup on (job, scheduled_for) cannot work).
_INTERVAL_ANCHOR = datetime(1970, 1, 1)
_ISO_EXAMPLE = "expected an ISO date-time like 2026-01-31T06:00:00"


def _check_timezone(name: str) -> str:
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        hint = suggest(name, _timezone_names()) or "; use an IANA name like America/New_York or UTC"
        raise ValueError(f"unknown timezone {name!r}{hint}") from None
    return name


@cache
def _timezone_names() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


def _require_iso_text(value: Any) -> Any:
    # Only text: a bare number would be read as a Unix timestamp, which nobody writes in a job file.
    if isinstance(value, str | datetime):
        return value
    raise ValueError(f"{_ISO_EXAMPLE}, got {value!r}")


TimezoneName = Annotated[str, AfterValidator(_check_timezone)]
# No `format: date-time` in the schema: it demands an offset, and naive times are fine here.
IsoDatetime = Annotated[
    datetime,
    BeforeValidator(_require_iso_text),
    WithJsonSchema({"type": "string", "examples": ["2026-01-31T06:00:00", "2026-01-31T06:00:00-05:00"]}),
]


class ScheduleEntry(BaseModel):
    """When a job fires: exactly one of `cron`, `interval` or `at`, evaluated in `timezone`."""

    model_config = ConfigDict(extra="forbid", frozen=True, title="Schedule entry")

    cron: str | None = Field(
        None,
        description="Crontab expression: 5 fields `minute hour day month day_of_week` (0 or 7 = Sunday), or 6 "
        "with seconds first, or @hourly/@daily/@weekly/@monthly/@yearly. When both day and day_of_week "
        "are restricted, both must match (classic cron runs when either matches).",
        examples=["0 6 * * 1-5", "*/15 * * * *", "30 0 6 * * mon-fri"],
    )
    interval: Duration | None = Field(
        None,
        description="Fire every this long, counted from `start` (default 1970-01-01T00:00 in `timezone`, so "
        "restarts do not shift the slots). At least 1s.",
    )
    at: IsoDatetime | None = Field(
        None, description="Fire once at this ISO date-time; without an offset it is read in `timezone`."
    )
    timezone: TimezoneName = Field("UTC", description="IANA timezone name the entry is evaluated in.")
    jitter: Duration | None = Field(
        None, description="Delay each fire by a random time up to this long (cron and interval only)."
    )
    start: IsoDatetime | None = Field(
        None, description="No fires before this ISO date-time (without an offset: in `timezone`)."
    )
    end: IsoDatetime | None = Field(
        None, description="No fires after this ISO date-time (without an offset: in `timezone`)."
    )

    @property
    def zone(self) -> tzinfo:
        return zoneinfo.ZoneInfo(self.timezone)

    def localize(self, value: datetime) -> datetime:
        """`value` with this entry's timezone when it has none."""
        return value if value.tzinfo is not None else value.replace(tzinfo=self.zone)

    def describe(self) -> str:
        """Short text for listings, e.g. `cron 0 6 * * 1-5 (America/New_York)`."""
        if self.cron is not None:
            return f"cron {self.cron} ({self.timezone})"
        if self.interval is not None:
            return f"every {format_duration(self.interval)}"
        assert self.at is not None
        return f"at {self.at.isoformat()} ({self.timezone})"

    @model_validator(mode="after")
    def _check(self) -> Self:
        given = [name for name in ("cron", "interval", "at") if getattr(self, name) is not None]
        if not given:
            raise field_error("give one of cron, interval or at")
        if len(given) > 1:
            raise field_error(f"give only one of cron, interval or at, not {' and '.join(given)}", given[1])
        if self.at is not None:
            for name in ("jitter", "start", "end"):
                if getattr(self, name) is not None:
                    raise field_error(f"{name} applies to cron and interval entries, not to at", name)
        if (
            self.start is not None
            and self.end is not None
            and self.localize(self.start) >= self.localize(self.end)
        ):
            raise field_error("end must be later than start", "end")
        if self.interval is not None and self.interval < timedelta(seconds=1):
            raise field_error("must be at least 1s", "interval")
        # Building the trigger is the real test: whatever APScheduler rejects is an error of the file.
        try:
            build_trigger(self)
        except ValueError as exc:
            if self.cron is not None:
                raise field_error(f"invalid cron expression {self.cron!r}: {exc}", "cron") from None
            raise field_error(str(exc), given[0]) from None
        if self.cron is not None and _never_matches(self.cron, self.zone):
            raise field_error(
                f"cron expression {self.cron!r} never matches a date (like 30 February): the job would never "
                "fire",
                "cron",
            )
        return self


def build_trigger(entry: ScheduleEntry) -> BaseTrigger:
    """The APScheduler 3 trigger for `entry` (naive datetimes are read in the entry's timezone)."""
    zone = entry.zone
    start = entry.localize(entry.start) if entry.start is not None else None
    end = entry.localize(entry.end) if entry.end is not None else None
    jitter = entry.jitter.total_seconds() if entry.jitter is not None else None
    if entry.cron is not None:
        fields = cron_fields(entry.cron)
        try:
            return CronTrigger(**fields, timezone=zone, start_date=start, end_date=end, jitter=jitter)
        except ValueError:
            raise ValueError(_cron_field_problem(fields, zone)) from None
    if entry.interval is not None:
        return IntervalTrigger(
            seconds=entry.interval.total_seconds(),
            start_date=start or entry.localize(_INTERVAL_ANCHOR),
            end_date=end,
            timezone=zone,
            jitter=jitter,
        )
    assert entry.at is not None  # the validator requires exactly one of the three
    return DateTrigger(run_date=entry.localize(entry.at), timezone=zone)


#: Every weekday falls on every date of the year within 28 years (2000 is a leap year).
_CALENDAR_CYCLE = (datetime(2000, 1, 1), datetime(2028, 1, 1))


def _never_matches(expression: str, zone: tzinfo) -> bool:
    """Whether a cron expression's dates are impossible (e.g. `0 0 30 2 *`), judged over a whole calendar cycle,
    so the answer does not depend on today's date."""
    first, last = (moment.replace(tzinfo=zone) for moment in _CALENDAR_CYCLE)
    next_fire = CronTrigger(**cron_fields(expression), timezone=zone).get_next_fire_time(None, first)
    return next_fire is None or next_fire >= last


def _cron_field_problem(fields: dict[str, str], zone: tzinfo) -> str:
    """APScheduler's message does not name the field; find it by building one field at a time."""
    for name, value in fields.items():
        try:
            CronTrigger(**{name: value}, timezone=zone)
        except ValueError as exc:
            return f"{name.replace('_', ' ')}: {exc}"
    return "not a valid cron expression"
