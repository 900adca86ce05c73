"""`pause`, `resume`, `cancel` and `retry`: they write to the store; the running daemon acts on it.

A daemon reads the store on every round: paused jobs get no scheduled fires from its next schedule tick, new
pending items are dispatched on its next dispatch round, and runs flagged for cancellation are cancelled in
Cyberdesk by its next reap round. Without a daemon the change waits for the next one started.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from typing import Annotated

import typer

from cyberdesk_runner import bulk
from cyberdesk_runner.cli.access import open_store, require_job, require_ref
from cyberdesk_runner.cli.common import (
    ConfigOption,
    ExitCode,
    StopSignals,
    config_or_exit,
    err,
    fail,
    out,
    stop_signals,
)
from cyberdesk_runner.cli.render import print_json
from cyberdesk_runner.cli.shapes import fire_json
from cyberdesk_runner.cli.status import fresh_daemons
from cyberdesk_runner.cli.waiting import TimeoutOption, WaitOption, report, wait_for_fire
from cyberdesk_runner.store import Store
from cyberdesk_runner.store.views import Ref

JsonOption = Annotated[bool, typer.Option("--json", help="Print the result as JSON.")]
JobArgument = Annotated[str, typer.Argument(metavar="JOB", help="The job's name.")]
IdArgument = Annotated[
    str, typer.Argument(metavar="ID", help="A fire_…, item_… or att_… id, or a Cyberdesk run id.")
]


def register(app: typer.Typer) -> None:
    app.command("pause")(pause)
    app.command("resume")(resume)
    app.command("cancel")(cancel)
    app.command("retry")(retry)


def pause(job: JobArgument, config: ConfigOption = None, as_json: JsonOption = False) -> None:
    """Pause JOB's schedule: its slots are skipped (and recorded as skipped) until `resume`.

    Runs in flight go on, and `trigger` still starts manual fires."""
    _set_paused(job, True, config, as_json)


def resume(job: JobArgument, config: ConfigOption = None, as_json: JsonOption = False) -> None:
    """Resume JOB's schedule from its next slot (slots missed meanwhile follow the job's `catchup`)."""
    _set_paused(job, False, config, as_json)


def _set_paused(job: str, paused: bool, config: ConfigOption, as_json: bool) -> None:
    settings = config_or_exit(config)
    with open_store(settings) as store:
        require_job(store, job)
        if not store.jobs.set_paused(job, paused, datetime.now(UTC)):  # removed between the two calls
            fail(f"no job named {job!r}", ExitCode.NOT_FOUND)
    if as_json:
        print_json({"job": job, "paused": paused})
    elif paused:
        out.print(
            f"{job} paused: scheduled fires are skipped until `cyberdesk-runner resume {job}`", markup=False
        )
    else:
        out.print(f"{job} resumed", markup=False)


def cancel(
    ref: IdArgument,
    reason: Annotated[
        str, typer.Option("--reason", help="Recorded with the cancellation.")
    ] = "cancelled by a user",
    config: ConfigOption = None,
    as_json: JsonOption = False,
) -> None:
    """Cancel a fire (all its items), an item, or a run (its item).

    Pending items are cancelled at once; runs in flight are flagged, and the daemon cancels them in Cyberdesk
    on its next round. A big fire is cancelled by chunks; stopped midway (Ctrl-C), the same command run again,
    or any daemon, finishes it."""
    settings = config_or_exit(config)
    now = datetime.now(UTC)
    with open_store(settings) as store, stop_signals() as stop:
        target = require_ref(store, ref)
        kinds, finished = _cancel(store, target, reason, stop)
        fire = store.queries.fire_view(target.fire_id)
        daemons = len(fresh_daemons(store, now))
    result = {
        "id": target.id,
        "kind": target.kind,
        "cancelled_items": kinds["item_cancelled"],
        "cancel_requested_runs": kinds["cancel_requested"],
        "fire_id": target.fire_id,
        "fire_status": fire.status if fire is not None else None,
    }
    if not finished:
        result["finished"] = False
    if as_json:
        print_json(result)
    elif not (
        kinds["item_cancelled"] or kinds["cancel_requested"] or kinds["fire_cancelled"] or not finished
    ):
        out.print(f"nothing to cancel: {target.kind} {target.id} is {target.status}", markup=False)
    else:
        lines = []
        if kinds["item_cancelled"]:
            lines.append(f"{kinds['item_cancelled']} pending item(s) cancelled")
        if kinds["cancel_requested"]:
            lines.append(
                f"{kinds['cancel_requested']} run(s) in flight flagged: the daemon cancels them in Cyberdesk"
            )
        if fire is not None:
            lines.append(f"fire {fire.id} is {fire.status}")
        out.print("; ".join(lines), markup=False, soft_wrap=True)
        if kinds["cancel_requested"] and not daemons:
            err.print("note: no daemon is running; the runs are cancelled when one starts", markup=False)
    if not finished:
        err.print(
            f"stopped before every item was cancelled: its items get no new run; `cyberdesk-runner cancel "
            f"{target.id}` again, or a running daemon, cancels the rest",
            markup=False,
            soft_wrap=True,
        )
        raise typer.Exit(stop.exit_code)


def _cancel(store: Store, target: Ref, reason: str, stop: StopSignals) -> tuple[Counter[str], bool]:
    """What the cancel did (transitions by kind), and whether it got to the end (False: stopped by a signal)."""
    if target.kind == "fire":
        outcome = bulk.cancel_fire(store, target.id, reason, _now, stopping=stop.requested)
        return outcome.kinds, outcome.finished
    assert target.item_id is not None
    transitions = store.control.cancel_pending_items(None, reason, _now(), item_ids=[target.item_id])
    return Counter(t.kind for t in transitions), True


def retry(
    ref: IdArgument,
    wait: WaitOption = False,
    timeout: TimeoutOption = None,
    config: ConfigOption = None,
    as_json: JsonOption = False,
) -> None:
    """Run a failed item, or every failed item of a fire, again as a new fire (trigger `retry`).

    The new items keep the inputs and desktops of the old ones. A fire that failed before it had items (its
    planning failed) is planned again. While a fire's retry runs, retrying that fire again answers with it. A big
    fire's failed items are copied by chunks; stopped midway (Ctrl-C), the same command run again, or any daemon,
    finishes the copy (each failed item is retried once)."""
    settings = config_or_exit(config)
    with open_store(settings) as store, stop_signals() as stop:
        target = require_ref(store, ref)
        require_job(store, target.job_name)
        if target.kind == "fire":
            outcome = bulk.retry_fire(store, target.fire_id, _now, stopping=stop.requested)
        else:
            assert target.item_id is not None
            item_retry = store.control.retry_failed(target.item_id, _now())
            outcome = bulk.RetryOutcome(item_retry, finished=True)
        fire_id = outcome.fire_id
        if fire_id is None:
            what = (
                f"fire {target.id} has no failed item"
                if target.kind == "fire"
                else (f"item {target.item_id} is {_item_status(store, target)}, not failed")
            )
            fail(f"nothing to retry: {what}", ExitCode.FAILED)
        view = store.queries.fire_view(fire_id)
        assert view is not None
        if not as_json:
            _say_retry(outcome, fire_id, target.fire_id, view.items_total)
        if not outcome.finished and stop.signal is not None:
            if as_json:
                print_json(fire_json(view) | {"finished": False})
            raise typer.Exit(stop.exit_code)
        if wait:
            view = wait_for_fire(store, fire_id, timeout)
        code = report(view, fire_id, timeout) if wait else ExitCode.OK
    if as_json:
        print_json(fire_json(view) if view is not None else {"id": fire_id})
    raise typer.Exit(int(code))


def _say_retry(outcome: bulk.RetryOutcome, fire_id: str, retried: str, items: int) -> None:
    """What `retry` did, in one line (and where it stopped, on stderr)."""
    if outcome.replan:
        out.print(f"fire {fire_id} plans {retried} again (it failed before it had items)", markup=False)
        return
    if outcome.created:
        again = ""
    elif outcome.copied:
        again = f" (a retry left midway: {outcome.copied} more copied now)"
    else:
        again = " (its retry already under way: nothing new to retry)"
    if outcome.finished:
        out.print(
            f"fire {fire_id} retries {items} failed item(s) of {retried}{again}", markup=False, soft_wrap=True
        )
    elif outcome.busy:
        out.print(
            f"fire {fire_id} retries the failed items of {retried}: another process is copying them now "
            f"({items} failed item(s)); it, or a daemon, finishes",
            markup=False,
            soft_wrap=True,
        )
    else:
        out.print(
            f"fire {fire_id} retries {items} failed item(s) of {retried}{again}", markup=False, soft_wrap=True
        )
        err.print(
            f"stopped after copying {outcome.copied} item(s) into it: `cyberdesk-runner retry {retried}` again, "
            "or a running daemon, copies the rest (none twice)",
            markup=False,
            soft_wrap=True,
        )


def _now() -> datetime:
    return datetime.now(UTC)


def _item_status(store: Store, target: Ref) -> str:
    item = store.queries.item_view(target.item_id or "")
    return item.status if item is not None else "gone"
