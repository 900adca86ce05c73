"""Stores filled by REAL daemons on the embedded emulator, for the inspecting and controlling commands.

- `history`: one daemon run (`run --once` of every job) on a session-wide store, failure rate 0.3, so that some
  items fail and are retried. Read-only tests share it.
- `live`: a daemon running in a background thread (its own event loop) on a store of its own, for the
  commands that change state and must be picked up by a running daemon. One per module, stopped when the
  module ends: a daemon left running would log into the output of later tests (logging config is global).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from cli_support import (
    HISTORY_FLEET,
    HISTORY_JOBS,
    LIVE_FLEET,
    LIVE_JOBS,
    SECRET,
    SECRET_ENV,
    Env,
    HistoryRun,
    LiveDaemon,
    daemon_ready,
    write_env,
)
from daemon_support import ThreadedDaemon, eventually

from cyberdesk_runner.config import load_config
from cyberdesk_runner.daemon import Daemon, RunOptions
from cyberdesk_runner.logs import configure


@pytest.fixture(autouse=True)
def _plain_logs() -> Iterator[None]:
    """Overrides the suite's fixture of that name: the live daemon logs from its thread into whatever stderr a
    command under test has at that moment, so only warnings and errors are logged here."""
    configure("console", "warning")
    yield


@pytest.fixture(scope="session")
def history_run(tmp_path_factory: pytest.TempPathFactory) -> HistoryRun:
    env = write_env(
        tmp_path_factory.mktemp("history"),
        HISTORY_FLEET,
        HISTORY_JOBS,
        'speed: 2000, run_duration: "30-60", failure_rate: 0.3, seed: 7',
    )
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(SECRET_ENV, SECRET)
        daemon = Daemon(load_config(env.config))
        asyncio.run(daemon.run(RunOptions(once=[])))
    return HistoryRun(env, daemon)


@pytest.fixture(scope="session")
def history(history_run: HistoryRun) -> Env:
    return history_run.env


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveDaemon]:
    env = write_env(
        tmp_path_factory.mktemp("live"),
        LIVE_FLEET,
        LIVE_JOBS,
        'speed: 100, run_duration: "10-30", failure_rate: 0, seed: 3',
    )
    running = LiveDaemon(env, ThreadedDaemon(Daemon(load_config(env.config)), RunOptions()))
    eventually(lambda: daemon_ready(env), timeout=20, what="the live daemon to start")
    yield running
    running.stop()  # and fails the module if the daemon raised
