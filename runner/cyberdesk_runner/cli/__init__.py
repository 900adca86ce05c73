"""The `cyberdesk-runner` command: one Typer app; each group of commands lives in its own module."""

from __future__ import annotations

import typer

app = typer.Typer(
    name="cyberdesk-runner",
    help="Run Cyberdesk workflows on a fleet of desktops, exactly once, on schedule.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def build_app() -> typer.Typer:
    from cyberdesk_runner.cli.commands import register_all

    if not app.registered_commands:
        register_all(app)
    return app


def main() -> None:
    """The console script: the process is the command's alone (see `cyberdesk_runner.process`)."""
    from cyberdesk_runner.cli import common

    common.STANDALONE = True
    build_app()()
