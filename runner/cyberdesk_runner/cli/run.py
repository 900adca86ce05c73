"""`cyberdesk-runner run` (the daemon) and `cyberdesk-runner trigger` (a manual fire)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated, Any

import typer
from rich import box
from rich.table import Table

from cyberdesk_runner.api_access import ApiKeyRefused
from cyberdesk_runner.cli.common import (
    ConfigOption,
    ExitCode,
    config_or_exit,
    err,
    fail,
    out,
    refuse_sensitive_inputs,
    standalone_process,
)
from cyberdesk_runner.cli.dryrun import dry_run as dry_run_plan
from cyberdesk_runner.cli.render import print_json, show
from cyberdesk_runner.cli.shapes import fire_json
from cyberdesk_runner.cli.waiting import TimeoutOption, WaitOption, report, wait_for_fire
from cyberdesk_runner.daemon import (
    Daemon,
    EmulatorFixtureUnusable,
    RunOptions,
    RunResult,
    StoreUnusable,
    UnknownJobs,
    UnprotectedServer,
)
from cyberdesk_runner.logs import configure
from cyberdesk_runner.process import tune_daemon_process
from cyberdesk_runner.store import Store
from cyberdesk_runner.store.records import JobSummary, NewFire


def register(app: typer.Typer) -> None:
    app.command("run")(run)
    app.command("trigger")(trigger)


def run(
    config: ConfigOption = None,
    until_idle: Annotated[
        bool,
        typer.Option(
            "--until-idle", help="Exit once nothing is pending or in flight (future fires don't count)."
        ),
    ] = False,
    once: Annotated[
        bool,
        typer.Option("--once", help="Trigger the named jobs (all when none are named), then run until idle."),
    ] = False,
    jobs: Annotated[
        list[str] | None, typer.Argument(help="Jobs to trigger with --once.", show_default=False)
    ] = None,
) -> None:
    """Run the daemon: schedule fires, create runs, track them to the end, retry what failed."""
    if jobs and not once:
        fail("job names are only taken with --once", ExitCode.USAGE)
    settings = config_or_exit(config)
    configure(settings.log.format, settings.log.level)
    if standalone_process():
        tune_daemon_process()  # after the imports, before the daemon's threads
    options = RunOptions(until_idle=until_idle, once=list(jobs or []) if once else None)

    async def main() -> RunResult:
        return await Daemon(settings).run(options)

    try:
        with asyncio.Runner(loop_factory=_event_loop_factory()) as runner:
            result = runner.run(main())
    except UnknownJobs as exc:
        fail(str(exc), ExitCode.NOT_FOUND)
    except (StoreUnusable, UnprotectedServer, ApiKeyRefused) as exc:
        fail(str(exc), ExitCode.CONFIG)
    except (
        EmulatorFixtureUnusable
    ) as exc:  # the embedded emulator's fleet fixture: missing, unreadable, malformed
        fail(f"emulator.fixture: {exc}", ExitCode.CONFIG)
    if until_idle or once:
        _print_summary(result)
        if result.failed:
            raise typer.Exit(int(ExitCode.FAILED))


def _event_loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's event loop where it is installed (the lock has it everywhere but Windows and PyPy), else asyncio's.

    Each run costs the daemon's loop a create call, a webhook and a few hops to the store's threads; the loop's
    own share of that (sockets, callbacks, futures handed back by threads) is C in uvloop, Python in asyncio.
    """
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


def _print_summary(result: RunResult) -> None:
    table = Table(title="Summary", title_justify="left", box=box.SIMPLE)
    table.add_column("job", no_wrap=True)
    for column in ("succeeded", "failed", "cancelled", "retried", "runs", "unplanned"):
        table.add_column(column, justify="right", no_wrap=True)
    table.add_column("kind", no_wrap=True)
    for s in result.summaries:
        table.add_row(
            s.job_name,
            str(s.items_succeeded),
            str(s.items_failed),
            str(s.items_cancelled),
            str(s.items_retried),
            str(s.runs_created),
            str(s.fires_failed),
            _kind(s),
        )
    show(table)
    out.print(
        "items: succeeded, failed, cancelled, retried (needed more than one run); runs: runs created (each "
        "step of a chain counts); unplanned: fires that could not start (unknown workflow, no desktop); "
        "kind: steps per item (one chain each), or the job whose fires it follows",
        style="dim",
    )


def _kind(summary: JobSummary) -> str:
    kinds = [f"{summary.steps} steps"] if summary.steps else []
    if summary.after:
        kinds.append(f"after {summary.after}")
    return ", ".join(kinds)


def trigger(
    job: Annotated[str, typer.Argument(help="The job to trigger.")],
    config: ConfigOption = None,
    input: Annotated[
        list[str] | None,
        typer.Option(
            "--input",
            "-i",
            help="key=value merged into every item's inputs (repeatable).",
            show_default=False,
        ),
    ] = None,
    wait: WaitOption = False,
    timeout: TimeoutOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the fire as JSON.")] = False,
    dry_run: Annotated[
        bool,
        typer.Option(
            "--dry-run",
            help="Print the plan (items, inputs, eligible desktops now) from the job file and the API; "
            "record and create nothing.",
        ),
    ] = False,
) -> None:
    """Record a manual fire of JOB; the running daemon (or the next one started) runs it."""
    overrides = _parse_inputs(input or [])
    settings = config_or_exit(config)
    if dry_run:
        if wait:
            fail("--dry-run records nothing to --wait for", ExitCode.USAGE)
        dry_run_plan(settings, job, overrides, as_json=as_json)
        return
    store = Store(settings.store)
    try:
        store.upgrade()
        state = store.jobs.get(job)
        if state is None or state.removed:
            known = ", ".join(j.name for j in store.jobs.all()) or "none recorded yet (start the daemon once)"
            fail(f"no job named {job!r} (known: {known})", ExitCode.NOT_FOUND)
        # A secret given on the command line would be stored in the clear with the fire: refuse it.
        refuse_sensitive_inputs(job, overrides, (state.definition.get("sensitive_inputs") or {}).keys())
        fire_id = store.fires.request(
            NewFire(job, "manual", None, input_overrides=overrides or None), datetime.now(UTC)
        )
        if not as_json:
            out.print(f"fire {fire_id} of {job} requested")
        if state.paused and not as_json:
            err.print(f"note: {job} is paused; that stops its schedule, not this manual fire", markup=False)
        view = wait_for_fire(store, fire_id, timeout) if wait else None
    finally:
        store.close()
    document: dict[str, Any] = {"fire": fire_id, "job": job, "inputs": overrides}
    if wait:
        document["result"] = fire_json(view) if view is not None else None
    if as_json:
        print_json(document)
    if wait:
        raise typer.Exit(int(report(view, fire_id, timeout)))


def _parse_inputs(pairs: list[str]) -> dict[str, str]:
    values: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            fail(f"--input {pair!r}: expected key=value", ExitCode.USAGE)
        values[key.strip()] = value
    return values
