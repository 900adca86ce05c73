"""Every command of the CLI, registered on the one Typer app: all of them, or only the one being run.

A command's module imports what it needs (`run` the daemon, uvicorn and the emulator; `alerts` its HTTP
client); registering only the command named on the command line keeps `fires` or `show F` from paying for the
others' imports before printing anything.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence

import typer

#: Command (or group) name -> the module under cyberdesk_runner.cli that registers it; in help order.
COMMAND_MODULES: dict[str, str] = {
    "run": "run",
    "trigger": "run",
    "validate": "validate",
    "jobs": "jobs",
    "fires": "inspect",
    "runs": "inspect",
    "show": "show",
    "results": "results",
    "alerts": "alerts",
    "watch": "watch",
    "status": "status",
    "pause": "control",
    "resume": "control",
    "cancel": "control",
    "retry": "control",
    "emulator": "emulator",
    "db": "db",
    "hash-password": "password",
}


def register_all(app: typer.Typer, argv: Sequence[str] | None = None) -> None:
    """Register every command; with `argv` (the command line's arguments) only the named command's module,
    if it names one (anything else, such as `--help`, gets them all)."""
    named = next((arg for arg in argv or () if not arg.startswith("-")), None)
    if named in COMMAND_MODULES:
        modules = [COMMAND_MODULES[named]]
    else:
        modules = list(dict.fromkeys(COMMAND_MODULES.values()))
    for module in modules:
        importlib.import_module(f"cyberdesk_runner.cli.{module}").register(app)
