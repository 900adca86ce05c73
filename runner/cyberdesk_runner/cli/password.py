"""`cyberdesk-runner hash-password`: a password hash for `server.auth.password_hash` (the config never holds the
password itself)."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from cyberdesk_runner.cli.common import ExitCode, fail
from cyberdesk_runner.passwords import hash_password


def register(app: typer.Typer) -> None:
    app.command("hash-password")(hash_password_command)


def hash_password_command(
    stdin: Annotated[
        bool, typer.Option("--stdin", help="Read the password from the first line of standard input.")
    ] = False,
) -> None:
    """Print a scrypt hash of a password for server.auth.password_hash (asked for twice, not echoed)."""
    if stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    if len(password) < 8:
        fail("the password is too short: use at least 8 characters", ExitCode.USAGE)
    typer.echo(hash_password(password))
