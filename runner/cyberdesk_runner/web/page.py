"""What the status page shows, as plain data for its templates: asked of the store by name, and of the daemon's
own snapshot of the fleet for desktops that hold nothing of ours (idle, disconnected).

The deep links (`/fires/{id}`, `/items/{id}`) show the document `cyberdesk-runner show` prints, made by the same
function, so both show the same things and mask sensitive inputs the same way.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import attrs
from pydantic import ValidationError

from cyberdesk_runner.cli.render import iso, seconds_between
from cyberdesk_runner.cli.shapes import attempt_json, fire_json
from cyberdesk_runner.cli.show import collect as show_document
from cyberdesk_runner.cli.status import FRESH_WITHIN
from cyberdesk_runner.fleet import Fleet
from cyberdesk_runner.scheduling.describe import describe_entry
from cyberdesk_runner.scheduling.slots import Schedule
from cyberdesk_runner.spec import JobSpec
from cyberdesk_runner.store import Store
from cyberdesk_runner.store.page import OPEN_FIRE_STATUSES, JobHeader
from cyberdesk_runner.store.records import FireSummary
from cyberdesk_runner.store.views import ATTEMPT_STATUS_GROUPS, AttemptQuery, RefKind

__all__ = ["StatusPage"]

#: Rows of each listing on the overview (the deep links and `/jobs` show the rest). With 1,000 job rows the page
#: was ~357 KB of HTML that Chromium parsed on load and again every 2 s; with 100 (the ones with news) it is ~66 KB.
JOBS_SHOWN = 100
FIRES_SHOWN = 50
FAILURES_SHOWN = 20
DEEP_LINK_LIMIT = 200
#: Several browsers polling at once share one overview this young, instead of asking the store each.
_OVERVIEW_TTL = 1.0
#: A job whose last fire failed this recently is news on the overview.
RECENT_FAILURE = timedelta(hours=24)


@attrs.frozen
class _JobSchedule:
    """A job definition's schedule, parsed once per definition (the definition hash is the key)."""

    descriptions: list[str]
    schedule: Schedule | None
    workflow: str | None
    sensitive: list[str]


class StatusPage:
    def __init__(self, store: Store, fleet: Callable[[], Fleet | None] = lambda: None) -> None:
        self.store = store
        self.fleet = fleet
        self._schedules: dict[str, _JobSchedule] = {}
        self._overview: tuple[float, dict[str, Any]] | None = None
        self._lock = threading.Lock()

    # -- the overview ----------------------------------------------------------------------------------

    def overview(self, now: datetime) -> dict[str, Any]:
        """Everything `/` shows; one copy serves every request of the next second."""
        with self._lock:
            cached = self._overview
            if cached is not None and time.monotonic() - cached[0] < _OVERVIEW_TTL:
                return cached[1]
            document = self._make_overview(now)
            self._overview = (time.monotonic(), document)
            return document

    def _make_overview(self, now: datetime) -> dict[str, Any]:
        in_flight = self.store.page.fires_in_flight(limit=FIRES_SHOWN)
        failures = self.store.queries.attempt_views(
            AttemptQuery(statuses=ATTEMPT_STATUS_GROUPS["failed"], limit=FAILURES_SHOWN)
        )
        jobs = self.jobs(now)
        return {
            "now": iso(now),
            "jobs": sorted(jobs, key=lambda job: _news_first(job, now))[:JOBS_SHOWN],
            "jobs_total": len(jobs),
            "fires": [fire_json(f) for f in in_flight.fires],
            "fires_total": in_flight.total,
            "failures": [attempt_json(a, now) for a in failures],
            "desktops": self.desktops(now),
            "daemons": self.daemons(now),
        }

    def jobs_listing(self, now: datetime, page: int) -> dict[str, Any] | None:
        """Every job by name, `JOBS_SHOWN` a page (`/jobs?page=N`, from 1); None for a page that does not exist."""
        jobs = self.jobs(now)
        pages = max(1, math.ceil(len(jobs) / JOBS_SHOWN))
        if not 1 <= page <= pages:
            return None
        start = (page - 1) * JOBS_SHOWN
        return {
            "jobs": jobs[start : start + JOBS_SHOWN],
            "total": len(jobs),
            "first": start + 1,
            "page": page,
            "pages": pages,
        }

    def jobs(self, now: datetime, only: str | None = None) -> list[dict[str, Any]]:
        headers = [h for h in self.store.page.job_headers() if only is None or h.name == only]
        last_fires = self.store.fires.last_by_job()
        in_flight = self.store.tracking.in_flight_by_job()
        return [self._job(job, last_fires.get(job.name), in_flight.get(job.name, 0), now) for job in headers]

    def _job(self, job: JobHeader, last: FireSummary | None, in_flight: int, now: datetime) -> dict[str, Any]:
        parsed = self._schedule_of(job)
        upcoming = parsed.schedule.next_after(now) if parsed.schedule else None
        return {
            "name": job.name,
            "workflow": parsed.workflow,
            "schedule": parsed.descriptions,
            "next_fire_at": iso(upcoming.at) if upcoming else None,
            "next_fire_utc": f"{upcoming.at:%Y-%m-%d %H:%M} UTC" if upcoming else None,
            "next_fire_local": upcoming.at.astimezone(ZoneInfo(upcoming.timezone)).strftime(
                "%Y-%m-%d %H:%M %Z"
            )
            if upcoming
            else None,
            "paused": job.paused,
            "in_flight": in_flight,
            "sensitive_inputs": parsed.sensitive,
            "last_fire": None
            if last is None
            else {
                "id": last.id,
                "status": last.status,
                "trigger": last.trigger,
                "at": iso(last.finished_at or last.created_at),
                "age_s": seconds_between(last.finished_at or last.created_at, now),
                "reason": last.skip_reason or last.error,
            },
        }

    def _schedule_of(self, job: JobHeader) -> _JobSchedule:
        known = self._schedules.get(job.definition_hash)
        if known is not None:
            return known
        state = self.store.jobs.get(job.name)
        try:
            spec = JobSpec.model_validate(dict(state.definition)) if state is not None else None
        except ValidationError:  # a definition of another version of the runner: show what can be shown
            spec = None
        made = _JobSchedule(
            descriptions=[describe_entry(e) for e in spec.schedule] if spec else [],
            schedule=Schedule(spec.schedule) if spec and spec.schedule else None,
            workflow=spec.workflow if spec else None,
            sensitive=sorted(spec.sensitive_inputs) if spec else [],
        )
        self._schedules[job.definition_hash] = made
        return made

    def desktops(self, now: datetime) -> list[dict[str, Any]]:
        """Every desktop of the fleet and every desktop our runs hold: busy (with what), idle or disconnected."""
        busy = {b.machine_id: b for b in self.store.page.busy_desktops()}
        fleet = self.fleet()
        known = fleet.desktops if fleet is not None else {}
        rows = []
        for desktop_id in sorted(known.keys() | busy.keys(), key=lambda i: (_label(known, busy, i), i)):
            desktop, holder = known.get(desktop_id), busy.get(desktop_id)
            row: dict[str, Any] = {"id": desktop_id, "name": _label(known, busy, desktop_id)}
            if holder is not None:
                row |= {
                    "state": "busy",
                    "job": holder.job_name,
                    "fire_id": holder.fire_id,
                    "item_id": holder.item_id,
                    "run_status": holder.status,
                    "since_s": seconds_between(holder.since, now),
                }
            else:
                row["state"] = "idle" if desktop is not None and desktop.connected else "disconnected"
            rows.append(row)
        return rows

    def daemons(self, now: datetime) -> list[dict[str, Any]]:
        rows = []
        for daemon in self.store.queries.daemon_views(limit=10):
            age = seconds_between(daemon.heartbeat_at, now)
            stale = age is not None and age > FRESH_WITHIN.total_seconds()
            health: Mapping[str, Any] = daemon.health or {}
            rows.append(
                {
                    "id": daemon.id,
                    "host": daemon.host,
                    "pid": daemon.pid,
                    "state": "stopped" if daemon.stopped_at else "silent" if stale else "running",
                    "heartbeat_age_s": age,
                    "api_ok": health.get("api_ok"),
                    "stale_loops": list(health.get("stale_loops") or []),
                    "errors": len(health.get("last_errors") or []),
                }
            )
        return rows

    # -- deep links ------------------------------------------------------------------------------------

    def show(self, kind: RefKind, ref_id: str, now: datetime) -> dict[str, Any] | None:
        """What `cyberdesk-runner show` prints about a fire or item; None if there is no such one."""
        ref = self.store.queries.resolve(ref_id)
        if ref is None or ref.kind != kind:
            return None
        return show_document(self.store, ref, now, DEEP_LINK_LIMIT)

    def job(self, name: str, now: datetime) -> dict[str, Any] | None:
        """A job as `cyberdesk-runner jobs` lists it, with its newest fires."""
        found = self.jobs(now, only=name)
        if not found:
            return None
        fires = self.store.queries.fire_views(job=name, limit=FIRES_SHOWN)
        return found[0] | {"fires": [fire_json(f) for f in fires]}


def _news_first(job: Mapping[str, Any], now: datetime) -> tuple[int, float, str]:
    """The overview's order of jobs: in flight, then failed recently (newest first), then next fire soonest, then
    the rest; by name within each."""
    last = job["last_fire"]
    if job["in_flight"] or (last is not None and last["status"] in OPEN_FIRE_STATUSES):
        return (0, 0.0, job["name"])
    age = last["age_s"] if last is not None else None
    if (
        last is not None
        and last["status"] == "failed"
        and age is not None
        and age <= RECENT_FAILURE.total_seconds()
    ):
        return (1, age, job["name"])
    if job["next_fire_at"] is not None:
        return (2, (datetime.fromisoformat(job["next_fire_at"]) - now).total_seconds(), job["name"])
    return (3, 0.0, job["name"])


def _label(known: Mapping[str, Any], busy: Mapping[str, Any], desktop_id: str) -> str:
    desktop = known.get(desktop_id)
    if desktop is not None:
        return str(desktop.label)
    holder = busy.get(desktop_id)
    return (holder.machine_name if holder is not None else None) or desktop_id


def utc_now() -> datetime:
    return datetime.now(UTC)
