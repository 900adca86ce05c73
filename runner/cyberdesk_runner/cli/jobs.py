"""`cyberdesk-runner jobs`: every job with its schedule in words, next fire, pause state, last fire, runs in
flight and usage (tokens, billed minutes). Reads the job files and the store only, so it works whether or not a
daemon runs.

A job whose file is broken is shown with its errors and, when the store knows it, with the last good version
the daemon keeps running.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any
from zoneinfo import ZoneInfo

import attrs
import sqlalchemy as sa
import typer
from pydantic import ValidationError
from sqlalchemy.exc import SQLAlchemyError

from cyberdesk_runner.cli.common import ConfigOption, ExitCode, config_or_exit, err, fail, out
from cyberdesk_runner.cli.shapes import usage_json, usage_text
from cyberdesk_runner.config import Config
from cyberdesk_runner.scheduling.describe import describe_entry, entry_expression, entry_kind
from cyberdesk_runner.scheduling.slots import Schedule
from cyberdesk_runner.spec import JobSpec, SpecError, load_jobs
from cyberdesk_runner.store import Store
from cyberdesk_runner.store.records import FireSummary, JobState
from cyberdesk_runner.store.usage import UsageSum

__all__ = ["JobListing", "collect", "register"]


def register(app: typer.Typer) -> None:
    """Add the `jobs` command to `app`."""
    app.command("jobs")(jobs)


def jobs(
    config: ConfigOption = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print a JSON list (stable shape) for scripts.")
    ] = False,
) -> None:
    """List every job: schedule in words, next fire (local and UTC), paused, last fire, runs in flight."""
    settings = config_or_exit(config)
    try:
        listings, stray = collect(settings, _now())
    except SQLAlchemyError as exc:
        fail(
            f"cannot read the store {settings.store_display}: {exc.__class__.__name__}: {exc}",
            ExitCode.CONFIG,
        )
    for error in stray:
        err.print(str(error), markup=False, soft_wrap=True)
    if as_json:
        typer.echo(json.dumps([listing.as_json() for listing in listings], indent=2))
        return
    if not listings:
        out.print(f"No jobs in {settings.jobs}", markup=False)
    for index, listing in enumerate(listings):
        if index:
            out.print()
        for line in listing.lines():
            out.print(line, markup=False, soft_wrap=True)


@attrs.frozen
class JobListing:
    name: str
    workflow: str | None
    spec: JobSpec | None
    next_fire_at: datetime | None
    next_fire_zone: str | None
    paused: bool
    last_fire: FireSummary | None
    in_flight: int
    errors: list[str]
    #: What the job's runs cost, over the history the store keeps, and over its last fire.
    usage: UsageSum | None = None
    last_fire_usage: UsageSum | None = None

    def as_json(self) -> dict[str, Any]:
        entries = self.spec.schedule if self.spec is not None else ()
        last = self.last_fire
        return {
            "name": self.name,
            "workflow": self.workflow,
            "schedule": [
                {
                    "kind": entry_kind(e),
                    "expression": entry_expression(e),
                    "timezone": e.timezone,
                    "description": describe_entry(e),
                }
                for e in entries
            ],
            "next_fire_at": _iso_utc(self.next_fire_at),
            "next_fire_local": self._next_local().isoformat() if self.next_fire_at is not None else None,
            "paused": self.paused,
            "last_fire": None
            if last is None
            else {
                "id": last.id,
                "status": last.status,
                "trigger": last.trigger,
                "scheduled_for": _iso_utc(last.scheduled_for),
                "finished_at": _iso_utc(last.finished_at),
                "usage": usage_json(self.last_fire_usage),
            },
            "in_flight": self.in_flight,
            "usage": usage_json(self.usage),
            "errors": self.errors,
        }

    def lines(self) -> list[str]:
        lines = [f"{self.name}  ({self.workflow})" if self.workflow else self.name]
        entries = self.spec.schedule if self.spec is not None else ()
        schedule = [describe_entry(e) for e in entries] or (
            ["manual only"] if self.spec is not None else ["?"]
        )
        lines.append(f"  schedule   {schedule[0]}")
        lines += [f"             {text}" for text in schedule[1:]]
        if self.next_fire_at is not None:
            local = self._next_local()
            text = f"{local:%Y-%m-%d %H:%M:%S %Z}"
            if local.utcoffset() or self.next_fire_zone != "UTC":
                text += f" ({self.next_fire_at:%Y-%m-%d %H:%M:%S} UTC)"
            lines.append(f"  next fire  {text}")
        elif entries:
            lines.append("  next fire  none (the schedule has ended)")
        lines.append(f"  state      {'PAUSED' if self.paused else 'active'}")
        lines.append(f"  last fire  {_describe_fire(self.last_fire)}")
        if last_usage := usage_text(usage_json(self.last_fire_usage)):
            lines.append(f"             used {last_usage}")
        if total := usage_text(usage_json(self.usage)):
            lines.append(f"  usage      {total} (all fires kept)")
        lines.append(f"  in flight  {self.in_flight} run{'s' if self.in_flight != 1 else ''}")
        lines += [f"  error      {error}" for error in self.errors]
        return lines

    def _next_local(self) -> datetime:
        assert self.next_fire_at is not None
        return self.next_fire_at.astimezone(ZoneInfo(self.next_fire_zone or "UTC"))


def collect(settings: Config, now: datetime) -> tuple[list[JobListing], list[SpecError]]:
    """The listing of every job, by name, and the errors of files that belong to no known job."""
    result = load_jobs(settings.jobs)
    states, last_fires, in_flight, usage = _read_store(settings.store)
    errors_by_file: dict[Path, list[SpecError]] = {}
    for error in result.errors:
        errors_by_file.setdefault(error.file.resolve(), []).append(error)

    specs: dict[str, JobSpec | None] = {name: job.spec for name, job in result.jobs.items()}
    errors: dict[str, list[str]] = {}
    stray: list[SpecError] = []
    for file, file_errors in errors_by_file.items():
        # A broken file the daemon knows: it keeps running the last good version, kept in the store.
        state = next((s for s in states.values() if Path(s.source_path).resolve() == file), None)
        if state is None or state.name in result.jobs:
            stray += file_errors
            continue
        specs[state.name] = _spec_from_store(state.definition)
        errors[state.name] = [str(e) for e in file_errors]

    listings = []
    for name in sorted(specs):
        spec, state = specs[name], states.get(name)
        upcoming = Schedule(spec.schedule).next_after(now) if spec is not None else None
        listings.append(
            JobListing(
                name=name,
                workflow=spec.workflow if spec is not None else None,
                spec=spec,
                next_fire_at=upcoming.at if upcoming is not None else None,
                next_fire_zone=upcoming.timezone if upcoming is not None else None,
                paused=state.paused if state is not None else False,
                last_fire=last_fires.get(name),
                in_flight=in_flight.get(name, 0),
                errors=errors.get(name, []),
                usage=usage.jobs.get(name),
                last_fire_usage=usage.fires.get(last.id) if (last := last_fires.get(name)) else None,
            )
        )
    return listings, stray


@attrs.frozen
class _Usage:
    jobs: Mapping[str, UsageSum] = attrs.field(factory=dict)
    fires: Mapping[str, UsageSum] = attrs.field(factory=dict)


def _read_store(
    url: str,
) -> tuple[dict[str, JobState], Mapping[str, FireSummary], Mapping[str, int], _Usage]:
    """What the store knows; nothing when no daemon has created it yet (never creates a store file)."""
    parsed = sa.make_url(url)
    database = parsed.database or ""
    on_disk = database not in ("", ":memory:") and not database.startswith("file:")
    if parsed.get_backend_name() == "sqlite" and on_disk and not Path(database).exists():
        return {}, {}, {}, _Usage()
    store = Store(url)
    try:
        if not store.is_initialised():
            return {}, {}, {}, _Usage()
        states = {s.name: s for s in store.jobs.all()}
        last = store.fires.last_by_job()
        usage = _Usage(store.usage.by_job(), store.usage.by_fire([f.id for f in last.values()]))
        return states, last, store.tracking.in_flight_by_job(), usage
    finally:
        store.close()


def _spec_from_store(definition: Mapping[str, Any]) -> JobSpec | None:
    try:
        return JobSpec.model_validate(dict(definition))
    except ValidationError:
        return None


def _describe_fire(fire: FireSummary | None) -> str:
    if fire is None:
        return "none yet"
    text = f"{fire.status} ({fire.trigger}"
    if fire.scheduled_for is not None:
        text += f", slot {fire.scheduled_for:%Y-%m-%d %H:%M:%S} UTC"
    if fire.finished_at is not None:
        text += f", finished {fire.finished_at:%Y-%m-%d %H:%M:%S} UTC"
    text += f") {fire.id}"
    reason = fire.skip_reason or fire.error
    return f"{text}: {reason}" if reason else text


def _now() -> datetime:
    return datetime.now(UTC)


def _iso_utc(value: datetime | None) -> str | None:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z") if value is not None else None
