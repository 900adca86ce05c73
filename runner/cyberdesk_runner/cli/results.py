"""`cyberdesk-runner results [FIRE|JOB]`: one row per item of a fire, as CSV, JSON Lines or JSON, streamed;
with `--download DIR`, the fire's output attachments too, once each, into `DIR/<seq>-<item>/<filename>`."""

from __future__ import annotations

import asyncio
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from cyberdesk_runner.cli.access import open_store, require_job, require_ref
from cyberdesk_runner.cli.common import ConfigOption, ExitCode, config_or_exit, console, fail
from cyberdesk_runner.config import Config
from cyberdesk_runner.results.export import export_results
from cyberdesk_runner.results.formats import FORMATS, Format
from cyberdesk_runner.store import Store
from cyberdesk_runner.store.views import Ref

if TYPE_CHECKING:
    from cyberdesk_runner.files.outputs import DownloadRound

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
    download: Annotated[
        Path | None,
        typer.Option(
            "--download",
            metavar="DIR",
            help="Also download the fire's output attachments into DIR/<seq>-<item>/<filename>, once each "
            "(the files column names them); needs cyberdesk.api_key in the config.",
            show_default=False,
            file_okay=False,
        ),
    ] = None,
    config: ConfigOption = None,
) -> None:
    """Print one row per item of a fire: its status, run, inputs (sensitive ones masked), outputs, usage, output
    files and error."""
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
        files = None
        if download is not None:
            # The SDK and its HTTP stack only for --download: plain `results F` prints sooner without them.
            from cyberdesk_runner.files.outputs import planned_paths

            folder = download.expanduser().resolve()
            done = _download(settings, store, fire, folder)
            console("err").print(
                f"{done.downloaded} file(s) downloaded ({done.bytes / 1e6:.1f} MB), {done.existed} already there, "
                f"{done.failed} failed, in {folder}",
                markup=False,
            )
            files = planned_paths(store, fire.fire_id, folder)
        if output is None:
            export_results(
                store, fire.fire_id, fire.job_name, sys.stdout, _format(fmt), status=status, files=files
            )
            sys.stdout.flush()
            return
        try:
            with output.open("w", encoding="utf-8", newline="") as out:
                export_results(
                    store, fire.fire_id, fire.job_name, out, _format(fmt), status=status, files=files
                )
        except OSError as exc:
            fail(f"cannot write {output}: {exc.strerror}", ExitCode.FAILED)


def _download(settings: Config, store: Store, fire: Ref, folder: Path) -> DownloadRound:
    """Record the fire's output attachments as bound for `folder` and download them (each once, even if another
    `results --download` into the same folder runs at the same time)."""
    from cyberdesk import CyberdeskClient
    from cyberdesk_runner.files.outputs import (
        DownloadRound,
        OutputListingError,
        download_round,
        note_fire_outputs,
    )

    if settings.cyberdesk.api_key is None:
        fail(
            "--download needs cyberdesk.api_key in the config (the embedded emulator lives inside the daemon)",
            ExitCode.USAGE,
        )
    client = CyberdeskClient(
        settings.cyberdesk.api_key.get_secret_value(), base_url=str(settings.cyberdesk.base_url)
    )

    async def run() -> DownloadRound:
        try:
            await note_fire_outputs(store, client, fire.fire_id, fire.job_name, folder)
            total = DownloadRound()
            while True:
                done = await download_round(store, client, datetime.now(UTC), folder=folder)
                total = DownloadRound(
                    total.downloaded + done.downloaded,
                    total.existed + done.existed,
                    total.failed + done.failed,
                    total.bytes + done.bytes,
                )
                if done == DownloadRound() or done.failed:
                    return total
        finally:
            await client.aclose()

    try:
        return asyncio.run(run())
    except OutputListingError as exc:
        fail(f"cannot list the fire's output attachments: {exc}", ExitCode.FAILED)


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
