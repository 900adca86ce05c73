"""`cyberdesk-runner validate`: check the config file and every job file without starting anything.

Unless `--offline`, it also asks the API (the embedded emulator when no key is configured) for its workflows,
pools and desktops, and reports every name a job gives that the API does not have. An API that does not answer
is a warning (the files may still be right); one that refuses the key is a config error.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, NoReturn

import typer

from cyberdesk import CyberdeskError
from cyberdesk_runner.cli.api import ask_api, where
from cyberdesk_runner.config import Config, ConfigError, find_config_path, load_config
from cyberdesk_runner.references import ApiNames, fetch_api_names, unknown_references
from cyberdesk_runner.spec import JobFileError, LoadedJob, SpecError, load_jobs, resolve_sensitive_inputs
from cyberdesk_runner.spec.errors import display_path

__all__ = ["register", "validate"]


def register(app: typer.Typer) -> None:
    """Add the `validate` command to `app`."""
    app.command("validate")(validate)


def validate(
    config: Annotated[
        Path | None,
        typer.Option(
            "--config",
            "-c",
            help="Config file (default: $CYBERDESK_RUNNER_CONFIG, ./config.yaml, ./config.example.yaml).",
            dir_okay=False,
        ),
    ] = None,
    offline: Annotated[
        bool,
        typer.Option(
            "--offline",
            help="Check the files only: do not ask the API whether the workflows, pools and desktops exist.",
        ),
    ] = False,
) -> None:
    """Check the config file and every job file; print each problem as file:line:col: field: message."""
    try:
        settings = load_config(find_config_path(config))
    except ConfigError as exc:
        _fail(exc.errors)
    result = load_jobs(settings.jobs)
    jobs = sorted(result.jobs.values(), key=lambda job: job.name)
    names, names_note = (None, "names not checked (--offline)") if offline else _ask_api(settings)
    errors = list(result.errors)
    if names is not None:
        errors += [error for job in jobs for error in unknown_references(job, names)]
    if errors:
        if names is None and not offline:
            typer.echo(f"warning: {names_note}")
        _fail(sorted(errors, key=lambda e: (str(e.file), e.line or 0, e.column or 0)))
    typer.echo(_config_line(settings))
    typer.echo(f"{len(jobs)} job{'s' if len(jobs) != 1 else ''} OK in {display_path(settings.jobs)}")
    _print_table([_job_row(job) for job in jobs])
    typer.echo(f"{'warning: ' if names is None and not offline else ''}{names_note}")
    for job in jobs:
        # Secrets are read at dispatch time, so a missing one is not an error of the files; say it anyway.
        try:
            resolve_sensitive_inputs(job)
        except JobFileError as exc:
            for error in exc.errors:
                typer.echo(f"warning: {error}")


def _ask_api(settings: Config) -> tuple[ApiNames | None, str]:
    """The API's names and a line saying where they came from, or None and why they could not be had.

    Exits with the config error code when the API refuses the key.
    """
    try:
        names = ask_api(settings, fetch_api_names)
    except CyberdeskError as exc:
        return None, f"names not checked: {where(settings)} did not answer ({exc})"
    counts = f"{len(names.workflows)} workflows, {len(names.pools)} pools, {len(names.machines)} desktops"
    return names, f"names checked against {where(settings)} ({counts})"


def _fail(errors: list[SpecError]) -> NoReturn:
    for error in errors:
        typer.echo(str(error))
    files = len({error.file for error in errors})
    typer.echo(
        f"Found {len(errors)} error{'s' if len(errors) != 1 else ''} in {files} file{'s' if files != 1 else ''}"
    )
    raise typer.Exit(1)


def _config_line(settings: Config) -> str:
    source = display_path(settings.source) if settings.source is not None else "none found, using defaults"
    cloud = "embedded emulator" if settings.uses_emulator else settings.cyberdesk.base_url
    return f"Config {source}: {cloud}, store {settings.store_display}"


def _job_row(job: LoadedJob) -> list[str]:
    spec = job.spec
    triggers = [entry.describe() for entry in spec.schedule]
    if spec.after is not None:
        triggers.append(f"after {spec.after.job} ({spec.after.when})")
    schedule = "; ".join(triggers) or "manual only"
    return [spec.name, " -> ".join(spec.workflows), spec.target.describe(), schedule]


def _print_table(rows: list[list[str]]) -> None:
    if not rows:
        return
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]) - 1)]
    for row in rows:
        cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=False)]
        typer.echo("  " + "  ".join([*cells, row[-1]]))
