"""Every command of the CLI, registered on the one Typer app."""

from __future__ import annotations

import typer


def register_all(app: typer.Typer) -> None:
    from cyberdesk_runner.cli import emulator, jobs, run, validate

    for module in (run, validate, jobs, emulator):
        module.register(app)
