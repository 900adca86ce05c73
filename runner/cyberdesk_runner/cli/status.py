"""`cyberdesk-runner status`: is the runner healthy? The store, the daemons' heartbeats and health, the work.

Everything comes from the store (daemons record their health with every heartbeat), so `status` answers for
daemons on other hosts too. `--probe` also checks from here that each running daemon's webhook endpoint answers.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import httpx
import typer
from rich.console import Group, RenderableType
from rich.text import Text
from sqlalchemy.exc import SQLAlchemyError

from cyberdesk_runner.api_access import API_KEY_REFUSED
from cyberdesk_runner.cli.access import NO_STORE_HINT, store_file_missing
from cyberdesk_runner.cli.common import ConfigOption, ExitCode, config_or_exit
from cyberdesk_runner.cli.render import (
    Column,
    ago,
    details,
    iso,
    plain,
    print_json,
    seconds_between,
    show,
    table,
    when,
)
from cyberdesk_runner.config import Config
from cyberdesk_runner.store import Store
from cyberdesk_runner.store.engine import describe_error
from cyberdesk_runner.store.views import DaemonView

#: A daemon heartbeats every 5 seconds; one silent for longer than this is taken to be gone.
FRESH_WITHIN = timedelta(seconds=30)
_PROBE_TIMEOUT = 2.0

DAEMON_COLUMNS = [
    Column("id", is_id=True),
    Column("host"),
    Column("pid", justify="right"),
    Column("state", style_by_value=True),
    Column("heartbeat_age_s", ago, justify="right"),
    Column("api", lambda v: v or "?"),
    Column("webhook_url"),
    Column("webhook_up", lambda v: {True: "up", False: "DOWN", None: ""}[v]),
    Column("last_poll_at", when),
]


def register(app: typer.Typer) -> None:
    app.command("status")(status)


def status(
    probe: Annotated[
        bool,
        typer.Option(
            "--probe",
            help="Also check that each running daemon's webhook endpoint "
            "answers (an HTTP request from here).",
        ),
    ] = False,
    config: ConfigOption = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print one JSON object (stable shape) for scripts.")
    ] = False,
) -> None:
    """Show the runner's health: store, daemons (heartbeat, API, webhooks, last poll, errors), work in flight.

    Exits 1 when no daemon has sent a heartbeat in the last 30 seconds, 4 when the store cannot be read."""
    settings = config_or_exit(config)
    document = collect(settings, datetime.now(UTC), probe=probe)
    if as_json:
        print_json(document)
    else:
        show(render(document))
    if not document["store"]["reachable"]:
        raise typer.Exit(int(ExitCode.CONFIG))
    if not document["healthy"]:
        raise typer.Exit(int(ExitCode.FAILED))


def fresh_daemons(store: Store, now: datetime) -> list[DaemonView]:
    """Daemons that are running: not stopped, heartbeat within FRESH_WITHIN."""
    return [d for d in store.queries.daemon_views(limit=50) if _state(d, now) == "running"]


def _state(daemon: DaemonView, now: datetime) -> str:
    if daemon.stopped_at is not None:
        return "stopped"
    return "running" if now - daemon.heartbeat_at <= FRESH_WITHIN else "silent"


def collect(settings: Config, now: datetime, *, probe: bool) -> dict[str, Any]:
    document: dict[str, Any] = {
        "checked_at": iso(now),
        "store": {"url": settings.store_display, "reachable": False, "error": None},
        "daemons": [],
        "work": None,
        "healthy": False,
    }
    if store_file_missing(settings.store):
        document["store"]["error"] = f"no store yet: {NO_STORE_HINT}"
        return document
    store = Store(settings.store)
    try:
        if not store.is_initialised():
            document["store"]["error"] = f"the store has no tables yet: {NO_STORE_HINT}"
            return document
        daemons = store.queries.daemon_views(limit=10)
        counts = store.counts.work()
    except SQLAlchemyError as exc:
        document["store"]["error"] = describe_error(exc)
        return document
    finally:
        store.close()
    document["store"]["reachable"] = True
    document["daemons"] = [_daemon_json(d, now, probe) for d in daemons]
    document["work"] = {
        "requested_fires": counts.requested_fires,
        "pending_items": counts.pending_items,
        "running_items": counts.running_items,
        "runs_in_flight": counts.in_flight_attempts,
        "runs_being_created": counts.creating_attempts,
    }
    document["healthy"] = any(d["state"] == "running" for d in document["daemons"])
    return document


def _daemon_json(daemon: DaemonView, now: datetime, probe: bool) -> dict[str, Any]:
    health: Mapping[str, Any] = daemon.health or {}
    state = _state(daemon, now)
    webhook_url = health.get("webhook_url")
    return {
        "id": daemon.id,
        "host": daemon.host,
        "pid": daemon.pid,
        "state": state,
        "started_at": iso(daemon.started_at),
        "heartbeat_at": iso(daemon.heartbeat_at),
        "heartbeat_age_s": seconds_between(daemon.heartbeat_at, now),
        "stopped_at": iso(daemon.stopped_at),
        "api_ok": health.get("api_ok"),
        "api": _api_state(health),
        "webhook_url": webhook_url,
        "webhook_up": _probe(webhook_url) if probe and state == "running" and webhook_url else None,
        "last_poll_at": _iso_text(health.get("last_poll_at")),
        "stale_loops": list(health.get("stale_loops") or []),
        "last_errors": list(health.get("last_errors") or []),
        "job_file_errors": list(health.get("job_file_errors") or []),
    }


def _api_state(health: Mapping[str, Any]) -> str | None:
    """ "ok", "unreachable" or "API key refused" (None before the daemon's first API call)."""
    if isinstance(health.get("api"), str):
        return str(health["api"])
    ok = health.get("api_ok")  # a daemon of an older version says only this
    return None if ok is None else ("ok" if ok else "unreachable")


def _iso_text(value: Any) -> str | None:
    """A time from a daemon's health JSON in the CLI's own format (ISO 8601, UTC, with a Z)."""
    try:
        return iso(datetime.fromisoformat(value)) if isinstance(value, str) else None
    except ValueError:
        return None


def _probe(url: str) -> bool:
    # The endpoint takes POSTs only: any HTTP answer to a GET (405) shows it is listening, without sending it
    # a delivery it would count as rejected.
    try:
        httpx.get(url, timeout=_PROBE_TIMEOUT)
    except httpx.HTTPError:
        return False
    return True


def render(document: dict[str, Any]) -> RenderableType:
    store = document["store"]
    parts: list[RenderableType] = [
        details(
            "Store",
            [
                ("url", store["url"]),
                ("state", "reachable" if store["reachable"] else "UNREACHABLE"),
                ("error", store["error"]),
            ],
        )
    ]
    daemons = document["daemons"]
    if daemons:
        parts += [Text(), table(daemons, DAEMON_COLUMNS, title="Daemons", caption="times in UTC")]
    work = document["work"]
    if work is not None:
        parts += [Text(), details("Work", [(k.replace("_", " "), str(v)) for k, v in work.items()])]
    problems = _problems(daemons)
    if problems:
        parts += [Text(), details("Problems", problems)]
    parts += [Text(), _verdict(document)]
    return Group(*parts)


def _problems(daemons: list[dict[str, Any]]) -> list[tuple[str, Any]]:
    """Recent errors and broken job files of running daemons (a stopped daemon's are history)."""
    problems: list[tuple[str, Any]] = []
    for daemon in daemons:
        if daemon["state"] != "running":
            continue
        for error in daemon["last_errors"][-5:]:
            problems.append(
                (
                    f"{daemon['id']} {error.get('loop', '?')}",
                    f"{when(error.get('at'))} {plain(error.get('error'))}",
                )
            )
        for error in daemon["job_file_errors"]:
            problems.append((f"{daemon['id']} job file", error))
        if daemon["stale_loops"]:
            problems.append((f"{daemon['id']} stalled", ", ".join(daemon["stale_loops"])))
        if daemon["api"] == API_KEY_REFUSED:
            problems.append((f"{daemon['id']} api", "API key refused: the Cyberdesk API answered 401/403"))
        elif daemon["api_ok"] is False:
            problems.append((f"{daemon['id']} api", "the Cyberdesk API did not answer its last request"))
        if daemon["webhook_up"] is False:
            problems.append((f"{daemon['id']} webhook", f"{daemon['webhook_url']} does not answer"))
    return problems


def _verdict(document: dict[str, Any]) -> Text:
    if not document["store"]["reachable"]:
        return Text("The store cannot be read.", style="red")
    daemons = document["daemons"]
    if document["healthy"]:
        running = [d for d in daemons if d["state"] == "running"]
        return Text(f"OK: {len(running)} daemon{'s' if len(running) != 1 else ''} running.", style="green")
    if not daemons:
        return Text(
            "No daemon has run on this store yet: start one with `cyberdesk-runner run`.", style="red"
        )
    last = daemons[0]
    if last["state"] == "stopped":
        return Text(
            f"No daemon is running: the last one ({last['id']}) stopped {ago(last['heartbeat_age_s'])}. "
            "Start one with `cyberdesk-runner run`.",
            style="red",
        )
    return Text(
        f"No daemon has sent a heartbeat in the last {FRESH_WITHIN.seconds}s: {last['id']} was last heard "
        f"from {ago(last['heartbeat_age_s'])} and did not stop cleanly. Is `cyberdesk-runner run` running?",
        style="red",
    )
