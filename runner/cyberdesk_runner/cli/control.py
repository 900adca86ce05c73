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

from cyberdesk_runner.cli.access import open_store, require_job, require_ref
from cyberdesk_runner.cli.common import ConfigOption, ExitCode, config_or_exit, err, fail, out
from cyberdesk_runner.cli.render import print_json
from cyberdesk_runner.cli.shapes import fire_json
from cyberdesk_runner.cli.status import fresh_daemons
from cyberdesk_runner.cli.waiting import TimeoutOption, WaitOption, report, wait_for_fire
from cyberdesk_runner.store import Store
from cyberdesk_runner.store.records import Transition
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
    on its next round."""
    settings = config_or_exit(config)
    now = datetime.now(UTC)
    with open_store(settings) as store:
        target = require_ref(store, ref)
        kinds = Counter(t.kind for t in _cancel(store, target, reason, now))
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
    if as_json:
        print_json(result)
        return
    if not (kinds["item_cancelled"] or kinds["cancel_requested"] or kinds["fire_cancelled"]):
        out.print(f"nothing to cancel: {target.kind} {target.id} is {target.status}", markup=False)
        return
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


def _cancel(store: Store, target: Ref, reason: str, now: datetime) -> list[Transition]:
    if target.kind == "fire":
        if target.status == "requested":
            cancelled = store.control.cancel_requested_fire(target.id, reason, now)
            if cancelled:
                return cancelled
        return store.control.cancel_pending_items(None, reason, now, fire_ids=[target.id])
    assert target.item_id is not None
    return store.control.cancel_pending_items(None, reason, now, item_ids=[target.item_id])


def retry(
    ref: IdArgument,
    wait: WaitOption = False,
    timeout: TimeoutOption = None,
    config: ConfigOption = None,
    as_json: JsonOption = False,
) -> None:
    """Run a failed item, or every failed item of a fire, again as a new fire (trigger `retry`).

    The new items keep the inputs and desktops of the old ones. A fire that failed before it had items (its
    planning failed) is planned again."""
    settings = config_or_exit(config)
    with open_store(settings) as store:
        target = require_ref(store, ref)
        require_job(store, target.job_name)
        source = target.fire_id if target.kind == "fire" else target.item_id
        assert source is not None
        fire_id = store.control.retry_failed(source, datetime.now(UTC))
        if fire_id is None:
            what = (
                f"fire {target.id} has no failed item"
                if target.kind == "fire"
                else (f"item {target.item_id} is {_item_status(store, target)}, not failed")
            )
            fail(f"nothing to retry: {what}", ExitCode.FAILED)
        view = store.queries.fire_view(fire_id)
        assert view is not None
        if not as_json and view.items_total:
            out.print(
                f"fire {fire_id} retries {view.items_total} failed item(s) of {target.fire_id}", markup=False
            )
        elif not as_json:
            out.print(
                f"fire {fire_id} plans {target.fire_id} again (it failed before it had items)", markup=False
            )
        if wait:
            view = wait_for_fire(store, fire_id, timeout)
        code = report(view, fire_id, timeout) if wait else ExitCode.OK
    if as_json:
        print_json(fire_json(view) if view is not None else {"id": fire_id})
    raise typer.Exit(int(code))


def _item_status(store: Store, target: Ref) -> str:
    item = store.queries.item_view(target.item_id or "")
    return item.status if item is not None else "gone"
