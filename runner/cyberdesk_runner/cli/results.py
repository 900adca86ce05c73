"""`cyberdesk-runner results [FIRE|JOB]`: one row per item of a fire, as CSV, JSON Lines or JSON, streamed."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from cyberdesk_runner.cli.access import open_store, require_job, require_ref
from cyberdesk_runner.cli.common import ConfigOption, ExitCode, config_or_exit, fail
from cyberdesk_runner.results.export import export_results
from cyberdesk_runner.results.formats import FORMATS, Format
from cyberdesk_runner.store import Store
from cyberdesk_runner.store.views import Ref

_ITEM_STATUSES = ("pending", "running", "succeeded", "failed", "cancelled")


def register(app: typer.Typer) -> None:
    app.command("results")(results)


def results(
    ref: Annotated[
        str, typer.Argument(metavar="FIRE|JOB", help="A fire_… id, or a job (its latest finished fire).")
    ],
    fmt: Annotated[
        str,
        typer.Option("--format", "-f", metavar="FORMAT", help="csv | jsonl | json.", case_sensitive=False),
    ] = "csv",
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            metavar="FILE",
            help="Write to FILE instead of standard output.",
            show_default=False,
        ),
    ] = None,
    status: Annotated[
        str | None,
        typer.Option("--status", "-s", metavar="S", help="Only items in this status.", show_default=False),
    ] = None,
    config: ConfigOption = None,
) -> None:
    """Print one row per item of a fire: its status, run, inputs (sensitive ones masked), outputs and error."""
    fmt = fmt.lower()
    if fmt not in FORMATS:
        raise typer.BadParameter(f"{fmt!r}: expected one of {', '.join(FORMATS)}", param_hint="--format")
    if status is not None and status not in _ITEM_STATUSES:
        raise typer.BadParameter(
            f"{status!r}: expected one of {', '.join(_ITEM_STATUSES)}", param_hint="--status"
        )
    settings = config_or_exit(config)
    with open_store(settings) as store:
        fire = _fire_of(store, ref)
        if output is None:
            export_results(store, fire.fire_id, fire.job_name, sys.stdout, _format(fmt), status=status)
            sys.stdout.flush()
            return
        try:
            with output.open("w", encoding="utf-8", newline="") as out:
                export_results(store, fire.fire_id, fire.job_name, out, _format(fmt), status=status)
        except OSError as exc:
            fail(f"cannot write {output}: {exc.strerror}", ExitCode.FAILED)


def _format(value: str) -> Format:
    assert value in FORMATS
    return value


def _fire_of(store: Store, ref: str) -> Ref:
    """The fire `ref` names: a fire id, or a job's latest finished fire. Exit 3 when there is none."""
    if ref.startswith("fire_"):
        return require_ref(store, ref)
    job = require_job(store, ref, removed_ok=True)
    fire_id = store.results.latest_finished_fire(job.name)
    if fire_id is None:
        fail(f"job {job.name!r} has no finished fire yet", ExitCode.NOT_FOUND)
    return Ref("fire", fire_id, job.name, fire_id)
