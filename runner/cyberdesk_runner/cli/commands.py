"""Every command of the CLI, registered on the one Typer app."""

from __future__ import annotations

import typer


def register_all(app: typer.Typer) -> None:
    from cyberdesk_runner.cli.emulator import register as register_emulator
    from cyberdesk_runner.cli.jobs import register as register_jobs
    from cyberdesk_runner.cli.run import register as register_run
    from cyberdesk_runner.cli.validate import register as register_validate

    for register in (register_run, register_validate, register_jobs, register_emulator):
        register(app)
