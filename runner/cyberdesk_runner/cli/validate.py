"""`cyberdesk-runner validate`: check the config file and every job file without starting anything."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, NoReturn

import typer

from cyberdesk_runner.config import Config, ConfigError, find_config_path, load_config
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
) -> None:
    """Check the config file and every job file; print each problem as file:line:col: field: message."""
    try:
        settings = load_config(find_config_path(config))
    except ConfigError as exc:
        _fail(exc.errors)
    result = load_jobs(settings.jobs)
    if result.errors:
        _fail(result.errors)
    typer.echo(_config_line(settings))
    jobs = sorted(result.jobs.values(), key=lambda job: job.name)
    typer.echo(f"{len(jobs)} job{'s' if len(jobs) != 1 else ''} OK in {display_path(settings.jobs)}")
    _print_table([_job_row(job) for job in jobs])
    for job in jobs:
        # Secrets are read at dispatch time, so a missing one is not an error of the files; say it anyway.
        try:
            resolve_sensitive_inputs(job)
        except JobFileError as exc:
            for error in exc.errors:
                typer.echo(f"warning: {error}")


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
