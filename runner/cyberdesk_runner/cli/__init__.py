"""The `cyberdesk-runner` command: one Typer app; each group of commands lives in its own module."""

from __future__ import annotations

import gc
import sys
from collections.abc import Sequence

import typer

app = typer.Typer(
    name="cyberdesk-runner",
    help="Run Cyberdesk workflows on a fleet of desktops, exactly once, on schedule.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def _group() -> None:
    # A group even when only one command is registered (see build_app): `cyberdesk-runner show F` must not be
    # read as a single-command app's arguments.
    pass


def build_app(argv: Sequence[str] | None = None) -> typer.Typer:
    """The app with every command, or with `argv` (a command line) only the command it names (commands.py)."""
    from cyberdesk_runner.cli.commands import register_all

    if not app.registered_commands and not app.registered_groups:
        register_all(app, argv)
    return app


def main() -> None:
    """The console script: the process is the command's alone (see `cyberdesk_runner.process`)."""
    # Loading the command's modules (SQLAlchemy, SQLModel, the store) makes a few hundred thousand objects that
    # live as long as the process: the collector, run as usual, would walk them again and again while they are
    # made (about a tenth of the CPU `fires` spends before its first line). Collected as usual from the command
    # on, without the imported ones (the daemon collects them once: `process.quiet_garbage_collector`).
    gc.disable()
    try:
        from cyberdesk_runner.cli import common

        common.STANDALONE = True
        app = build_app(sys.argv[1:])
    finally:
        gc.freeze()
        gc.enable()
    app()
