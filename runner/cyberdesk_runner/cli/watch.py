"""`cyberdesk-runner watch [JOB]`: runs in flight and work waiting, redrawn in place every second until Ctrl-C."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Annotated, Any

import typer
from rich.console import Group, RenderableType
from rich.live import Live
from rich.text import Text

from cyberdesk_runner.cli.access import open_store, require_job
from cyberdesk_runner.cli.common import ConfigOption, config_or_exit, out
from cyberdesk_runner.cli.render import Column, iso, print_json, show, table, when
from cyberdesk_runner.cli.shapes import WATCH_COLUMNS, attempt_json
from cyberdesk_runner.store import Store
from cyberdesk_runner.store.views import ATTEMPT_STATUS_GROUPS, AttemptQuery

JOB_COLUMNS = [
    Column("job"),
    Column("pending", justify="right"),
    Column("running", justify="right"),
    Column("runs_in_flight", justify="right"),
]


def register(app: typer.Typer) -> None:
    app.command("watch")(watch)


def watch(
    job: Annotated[
        str | None, typer.Argument(metavar="JOB", help="Only this job.", show_default=False)
    ] = None,
    once: Annotated[bool, typer.Option("--once", help="Print the view once and exit.")] = False,
    every: Annotated[
        float, typer.Option("--every", metavar="SECONDS", min=0.2, help="Seconds between redraws.")
    ] = 1.0,
    limit: Annotated[
        int, typer.Option("--limit", "-n", metavar="N", min=1, help="Show at most N runs.")
    ] = 50,
    config: ConfigOption = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print one JSON snapshot (implies --once).")
    ] = False,
) -> None:
    """Watch runs in flight (job, desktop, run id, status, age) and items waiting per job, live until Ctrl-C."""
    settings = config_or_exit(config)
    with open_store(settings) as store:
        if job is not None:
            require_job(store, job, removed_ok=True)
        if once or as_json:
            snapshot = collect(store, job, datetime.now(UTC), limit)
            if as_json:
                print_json(snapshot)
            else:
                show(render(snapshot))
            return
        with Live(
            render(collect(store, job, datetime.now(UTC), limit)), console=out, auto_refresh=False
        ) as live:
            try:
                while True:
                    time.sleep(every)
                    live.update(render(collect(store, job, datetime.now(UTC), limit)), refresh=True)
            except KeyboardInterrupt:
                pass


def collect(store: Store, job: str | None, now: datetime, limit: int) -> dict[str, Any]:
    """A snapshot: runs in flight (oldest first, the newest `limit` of them) and open work per job."""
    attempts = store.queries.attempt_views(
        AttemptQuery(job=job, statuses=ATTEMPT_STATUS_GROUPS["active"], limit=limit)
    )
    open_items = store.queries.open_items_by_job(job)
    in_flight = {k: v for k, v in store.tracking.in_flight_by_job().items() if job is None or k == job}
    names = sorted(open_items.keys() | in_flight.keys())
    return {
        "at": iso(now),
        "job": job,
        "runs": [attempt_json(a, now) for a in reversed(attempts)],
        "jobs": [
            {
                "job": name,
                "pending": open_items[name].pending if name in open_items else 0,
                "running": open_items[name].running if name in open_items else 0,
                "runs_in_flight": in_flight.get(name, 0),
            }
            for name in names
        ],
    }


def render(snapshot: dict[str, Any]) -> RenderableType:
    heading = Text(f"{snapshot['job'] or 'All jobs'} at {when(snapshot['at'])} UTC", style="bold")
    runs = snapshot["runs"]
    in_flight = sum(j["runs_in_flight"] for j in snapshot["jobs"])
    parts: list[RenderableType] = [heading, Text()]
    if runs:
        caption = f"{len(runs)} of {in_flight} runs in flight shown" if in_flight > len(runs) else None
        parts.append(table(runs, WATCH_COLUMNS, title="Runs in flight", caption=caption))
    else:
        parts.append(Text("No runs in flight."))
    if snapshot["jobs"]:
        parts += [Text(), table(snapshot["jobs"], JOB_COLUMNS, title="Items per job")]
    return Group(*parts)
