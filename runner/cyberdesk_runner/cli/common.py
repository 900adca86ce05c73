"""What every command shares: the --config option, loading it, exit codes and error output."""

from __future__ import annotations

import contextlib
import enum
import signal
import threading
from collections.abc import Collection, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal, NoReturn

import typer

from cyberdesk_runner.config import Config, find_config_path, load_config
from cyberdesk_runner.spec import JobFileError

if TYPE_CHECKING:
    from rich.console import Console

    #: Standard error and standard output, for people (Rich). Made on first use, below: `results` writes its CSV
    #: without loading Rich, unless it has an error to print.
    err: Console
    out: Console


class ExitCode(enum.IntEnum):
    """Exit codes of every command (documented in the README)."""

    #: Success; for `cancel`, `pause` and `resume` also when there was nothing left to change (idempotent).
    OK = 0
    #: Work failed: an item finally failed, a fire did not succeed (`run --once`, `trigger --wait`,
    #: `retry --wait`, also when --timeout ran out first), a job file is invalid or names what the API does not
    #: have; `trigger --dry-run`: nothing would run; `status`: no daemon has a fresh heartbeat; `retry`: nothing
    #: failed to retry.
    FAILED = 1
    #: Bad usage: unknown option, bad argument value (Typer's own code), a sensitive input given to --input.
    USAGE = 2
    #: The job, fire, item, attempt or run named does not exist.
    NOT_FOUND = 3
    #: The config cannot be loaded, or the store cannot be reached or has not been created by a daemon yet, or
    #: the API refused the API key (`validate`, `run --once`, `run --until-idle`, `trigger --dry-run`).
    CONFIG = 4


ConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--config",
        "-c",
        help="Config file. Default: $CYBERDESK_RUNNER_CONFIG, then ./config.yaml, then ./config.example.yaml.",
        show_default=False,
    ),
]


_consoles: dict[str, Console] = {}


def console(name: Literal["err", "out"]) -> Console:
    """`err` or `out`, made on first use."""
    made = _consoles.get(name)
    if made is None:
        from rich.console import Console

        made = _consoles[name] = globals()[name] = Console(stderr=name == "err", highlight=False)
    return made


if not TYPE_CHECKING:  # to mypy, `err` and `out` are the Consoles declared above

    def __getattr__(name: str) -> Console:
        if name == "err" or name == "out":
            return console(name)
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


#: Set by the console script: the process runs this command alone, so process-wide tuning is ours to do.
#: Programs that call the CLI in-process (the tests) keep their own settings.
STANDALONE = False


def standalone_process() -> bool:
    return STANDALONE


class StopSignals:
    """SIGINT and SIGTERM asked the command to stop (`stop_signals`): work by chunks ends after its chunk."""

    def __init__(self) -> None:
        self.signal: int | None = None

    def requested(self) -> bool:
        return self.signal is not None

    @property
    def exit_code(self) -> int:
        """128 + the signal's number, as a shell reports a program its signal ended."""
        return 128 + (self.signal or 0)


@contextlib.contextmanager
def stop_signals() -> Iterator[StopSignals]:
    """While the block runs, SIGINT and SIGTERM only ask it to stop (a second SIGINT interrupts at once); their
    handlers are put back after. Outside the main thread (programs calling the CLI in-process) nothing changes."""
    stop = StopSignals()
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return

    def asked(signum: int, _frame: object) -> None:
        if stop.signal == signal.SIGINT and signum == signal.SIGINT:
            raise KeyboardInterrupt
        stop.signal = signum

    previous = {sig: signal.signal(sig, asked) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield stop
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def fail(message: str, code: ExitCode) -> NoReturn:
    console("err").print(f"[red]error:[/red] {message}", markup=True, soft_wrap=True)
    raise typer.Exit(int(code))


def refuse_sensitive_inputs(job: str, overrides: Mapping[str, str], sensitive: Collection[str]) -> None:
    """Exit (USAGE) when --input names a sensitive input: a secret on the command line would be stored in the
    clear with the fire, and shown."""
    secret = sorted(overrides.keys() & set(sensitive))
    if secret:
        fail(
            f"--input {', '.join(secret)}: sensitive input(s) of {job}; their values come from the job's "
            "sensitive_inputs references, never from the command line",
            ExitCode.USAGE,
        )


def config_or_exit(path: Path | None) -> Config:
    try:
        found = find_config_path(path)
        return load_config(found)
    except JobFileError as exc:
        for error in exc.errors:
            console("err").print(str(error), markup=False, soft_wrap=True)
        raise typer.Exit(int(ExitCode.CONFIG)) from exc
    except (OSError, ValueError) as exc:
        fail(str(exc), ExitCode.CONFIG)
