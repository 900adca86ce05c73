"""`cyberdesk-runner fires` and `cyberdesk-runner runs`: the history, newest first, read from the store."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

import typer

from cyberdesk_runner.cli.access import open_store, parse_since, require_job, require_ref
from cyberdesk_runner.cli.common import ConfigOption, ExitCode, config_or_exit, fail
from cyberdesk_runner.cli.render import UTC_CAPTION, print_listing
from cyberdesk_runner.cli.shapes import FIRE_COLUMNS, RUN_COLUMNS, attempt_json, fire_json, with_steps
from cyberdesk_runner.store.views import ATTEMPT_STATUS_GROUPS, ATTEMPT_STATUSES, AttemptQuery

JsonOption = Annotated[bool, typer.Option("--json", help="Print a JSON list (stable shape) for scripts.")]
SinceOption = Annotated[
    str | None,
    typer.Option(
        "--since",
        metavar="WHEN",
        help="Only since then: a duration back (90m, 24h, 7d) or a time.",
        show_default=False,
    ),
]


def register(app: typer.Typer) -> None:
    app.command("fires")(fires)
    app.command("runs")(runs)


def fires(
    job: Annotated[
        str | None, typer.Argument(metavar="JOB", help="Only this job's fires.", show_default=False)
    ] = None,
    since: SinceOption = None,
    limit: Annotated[
        int, typer.Option("--limit", "-n", metavar="N", min=1, help="Show at most N fires.")
    ] = 20,
    config: ConfigOption = None,
    as_json: JsonOption = False,
) -> None:
    """List fires, newest first: trigger, slot, items by status, usage, and why a fire was skipped or failed."""
    settings = config_or_exit(config)
    start = parse_since(since, datetime.now(UTC))
    with open_store(settings) as store:
        if job is not None:
            require_job(store, job, removed_ok=True)
        views = store.queries.fire_views(job=job, since=start, limit=limit)
        usage = store.usage.by_fire([v.id for v in views])
    rows = [fire_json(v, usage.get(v.id)) for v in views]
    print_listing(
        rows,
        FIRE_COLUMNS,
        as_json=as_json,
        caption=_caption(len(rows), limit, "fires"),
        empty=f"No fires{f' of {job}' if job else ''}{f' since {since}' if since else ''}.",
    )


def runs(
    job: Annotated[
        str | None,
        typer.Option("--job", "-j", metavar="JOB", help="Only this job's runs.", show_default=False),
    ] = None,
    fire: Annotated[
        str | None,
        typer.Option("--fire", "-f", metavar="FIRE_ID", help="Only this fire's runs.", show_default=False),
    ] = None,
    status: Annotated[
        list[str] | None,
        typer.Option(
            "--status",
            "-s",
            metavar="STATUS",
            help="Only runs in this status (repeatable): "
            f"{', '.join(ATTEMPT_STATUSES)}, or 'active' or 'failed' for several.",
            show_default=False,
        ),
    ] = None,
    machine: Annotated[
        str | None,
        typer.Option(
            "--machine",
            "-m",
            metavar="DESKTOP",
            help="Only runs on this desktop (name or id).",
            show_default=False,
        ),
    ] = None,
    since: SinceOption = None,
    limit: Annotated[
        int, typer.Option("--limit", "-n", metavar="N", min=1, help="Show at most N runs.")
    ] = 50,
    config: ConfigOption = None,
    as_json: JsonOption = False,
) -> None:
    """List runs (attempts), newest first: Cyberdesk run id, desktop, attempt number, status, duration, errors."""
    settings = config_or_exit(config)
    now = datetime.now(UTC)
    query = AttemptQuery(
        job=job,
        fire_id=fire,
        statuses=_statuses(status),
        machine=machine,
        since=parse_since(since, now),
        limit=limit,
    )
    with open_store(settings) as store:
        if job is not None:
            require_job(store, job, removed_ok=True)
        if fire is not None and require_ref(store, fire).kind != "fire":
            fail(f"{fire!r} is not a fire id (try `runs` without --fire, or `show {fire}`)", ExitCode.USAGE)
        views = store.queries.attempt_views(query)
    rows = with_steps(
        [attempt_json(v, now) for v in views], store.steps.of_attempts([v.id for v in views]), now
    )
    print_listing(
        rows,
        RUN_COLUMNS,
        as_json=as_json,
        caption=_caption(len(rows), limit, "runs"),
        empty="No runs match." if (job or fire or status or machine or since) else "No runs yet.",
    )


def _statuses(given: list[str] | None) -> tuple[str, ...] | None:
    if not given:
        return None
    statuses: list[str] = []
    for name in given:
        if name in ATTEMPT_STATUS_GROUPS:
            statuses += ATTEMPT_STATUS_GROUPS[name]
        elif name in ATTEMPT_STATUSES:
            statuses.append(name)
        else:
            choices = ", ".join([*ATTEMPT_STATUSES, *ATTEMPT_STATUS_GROUPS])
            raise typer.BadParameter(f"{name!r} is not one of {choices}", param_hint="--status")
    return tuple(dict.fromkeys(statuses))


def _caption(shown: int, limit: int, what: str) -> str:
    more = f"; the newest {limit} {what} shown, --limit N for more" if shown == limit else ""
    return UTC_CAPTION + more
