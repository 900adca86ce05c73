"""The console script registers only the command it runs: `fires` or `show F` do not load the daemon (uvicorn,
the emulator), svix, APScheduler (the job files' schedules), the store's write paths or PostgreSQL's dialect (the
store here is SQLite) before printing; `--help` and an unknown command still see every command."""

from __future__ import annotations

import importlib
import pkgutil
import subprocess
import sys

import pytest
import typer

import cyberdesk_runner.cli as cli
from cyberdesk_runner.cli.commands import COMMAND_MODULES

_PROGRAM = """
import sys
sys.argv = ["cyberdesk-runner", *sys.argv[1:]]
from cyberdesk_runner.cli import main
try:
    main()
except SystemExit as exit:
    heavy = ("cyberdesk_runner.daemon", "uvicorn", "svix", "apscheduler", "cyberdesk_runner.store.tracking",
             "sqlalchemy.dialects.postgresql")
    loaded = sorted(m.split(".")[-1] for m in heavy if m in sys.modules)
    print("LOADED", ",".join(loaded), file=sys.stderr)
    raise
"""


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", _PROGRAM, *args], capture_output=True, text=True, timeout=120, check=False
    )


def _loaded(result: subprocess.CompletedProcess[str]) -> set[str]:
    """Which of the heavy modules the command loaded (the last part of their names)."""
    return set(filter(None, result.stderr.rsplit("LOADED ", 1)[1].strip().split(",")))


@pytest.mark.parametrize("command", ["fires", "runs", "show", "results", "jobs", "status"])
def test_a_reading_command_loads_neither_the_daemon_nor_svix(command: str) -> None:
    result = _cli(command, "--help")
    assert result.returncode == 0, result.stderr
    assert f"cyberdesk-runner {command}" in result.stdout
    assert not {"daemon", "uvicorn", "svix"} & _loaded(result)


@pytest.mark.parametrize("command", ["fires", "runs", "show", "results"])
def test_a_command_reading_history_loads_no_schedules_nor_the_stores_write_paths(command: str) -> None:
    result = _cli(command, "--help")
    assert result.returncode == 0, result.stderr
    assert _loaded(result) == set()


def test_help_lists_every_command() -> None:
    result = _cli("--help")
    assert result.returncode == 0, result.stderr
    for command in COMMAND_MODULES:
        assert f" {command} " in result.stdout


def test_an_unknown_command_is_refused_with_every_command_known() -> None:
    result = _cli("nosuch")
    assert result.returncode == 2
    assert "No such command 'nosuch'" in result.stderr


def test_every_command_module_is_mapped_by_the_commands_it_registers() -> None:
    """A command module missing from COMMAND_MODULES would be missing from the CLI altogether."""
    registered: dict[str, str] = {}
    for info in pkgutil.iter_modules(cli.__path__):
        module = importlib.import_module(f"cyberdesk_runner.cli.{info.name}")
        if info.name == "commands" or not callable(getattr(module, "register", None)):
            continue
        app = typer.Typer()
        module.register(app)
        names = [c.name for c in app.registered_commands] + [g.name for g in app.registered_groups]
        registered |= {str(name): info.name for name in names}
    assert registered == COMMAND_MODULES
