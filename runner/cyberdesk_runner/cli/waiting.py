"""`--wait` of `trigger` and `retry`: follow a fire in the store with a progress bar until it settles.

The CLI does no work itself: a daemon (this one or another, on this host or not) plans the fire and runs its
items; the CLI only reads the store, so waiting works the same with one daemon or many.
"""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from cyberdesk_runner.cli.common import ExitCode, err
from cyberdesk_runner.cli.shapes import fire_json, items_text
from cyberdesk_runner.durations import format_duration, parse_duration
from cyberdesk_runner.store import Store
from cyberdesk_runner.store.records import FINAL_FIRE_STATUSES
from cyberdesk_runner.store.views import FireView

#: Seconds a fire may stay `requested` before the wait says that no daemon seems to be picking it up.
HINT_AFTER = 5.0
POLL_EVERY = 0.5


def _duration(value: str | None) -> timedelta | None:
    if value is None:
        return None
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None


WaitOption = Annotated[
    bool,
    typer.Option(
        "--wait", "-w", help="Show progress until the fire settles; exit 0 only if every item succeeded."
    ),
]
TimeoutOption = Annotated[
    timedelta | None,
    typer.Option(
        "--timeout",
        metavar="DURATION",
        parser=_duration,
        show_default=False,
        help="With --wait: stop waiting after this long (30s, 10m, 2h) and exit 1.",
    ),
]


def wait_for_fire(store: Store, fire_id: str, timeout: timedelta | None) -> FireView | None:
    """Poll the fire until it is final (returned) or `timeout` passes (its last view is returned)."""
    started = time.monotonic()
    hinted = False
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[note]}"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=err, transient=False) as progress:
        task = progress.add_task(f"fire {fire_id}", total=None, note="waiting to be planned")
        while True:
            view = store.queries.fire_view(fire_id)
            if view is None:
                return None
            elapsed = time.monotonic() - started
            total = max(view.items_total, view.counts.total)
            progress.update(task, total=total or None, completed=view.counts.done, note=_note(view))
            if view.status in FINAL_FIRE_STATUSES:
                return view
            if not hinted and view.status == "requested" and elapsed >= HINT_AFTER:
                progress.console.print(
                    "waiting for a daemon to pick this up (is `cyberdesk-runner run` running?)", markup=False
                )
                hinted = True
            if timeout is not None and elapsed >= timeout.total_seconds():
                return view
            time.sleep(POLL_EVERY)


def _note(view: FireView) -> str:
    if view.status == "requested":
        return "waiting to be planned"
    counts = view.counts
    parts = [
        f"{n} {what}"
        for n, what in (
            (counts.running, "running"),
            (counts.pending, "pending"),
            (counts.failed, "failed"),
            (counts.cancelled, "cancelled"),
        )
        if n
    ]
    return ", ".join(parts)


def settled_ok(view: FireView | None) -> bool:
    """Whether every item of the fire finally succeeded (a fire without items succeeds when nothing failed)."""
    return (
        view is not None and view.status == "succeeded" and not (view.counts.failed or view.counts.cancelled)
    )


def report(view: FireView | None, fire_id: str, timeout: timedelta | None) -> ExitCode:
    """One line on how the wait ended, on stderr (stdout may carry JSON); the exit code to use."""
    if view is None:
        err.print(f"fire {fire_id} disappeared from the store", markup=False)
        return ExitCode.FAILED
    shape = fire_json(view)
    if view.status not in FINAL_FIRE_STATUSES:
        waited = format_duration(timeout) if timeout is not None else "a while"
        err.print(
            f"gave up waiting after {waited}: fire {fire_id} is still {view.status} "
            f"({items_text(shape['items'])}); it goes on without us",
            markup=False,
            soft_wrap=True,
        )
        return ExitCode.FAILED
    line = f"fire {fire_id} {view.status}: {items_text(shape['items'])}"
    if settled_ok(view):
        err.print(line, markup=False, soft_wrap=True)
        return ExitCode.OK
    err.print(line + (f"; {shape['reason']}" if shape["reason"] else ""), markup=False, soft_wrap=True)
    err.print(f"details: cyberdesk-runner show {fire_id}", markup=False)
    return ExitCode.FAILED
