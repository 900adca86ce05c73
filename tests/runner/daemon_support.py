"""A real daemon running in a thread of its own (its own event loop), as a process would run it, and `eventually`
for waiting on what it does."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from cyberdesk_runner.daemon import Daemon, RunOptions


def eventually(check: Callable[[], Any], *, timeout: float = 10.0, what: str = "the condition") -> Any:
    """Poll `check` until it returns something truthy; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.1)


class ThreadedDaemon:
    """`daemon.run(options)` in a background thread, started at once; what it raises is kept in `errors`."""

    def __init__(self, daemon: Daemon, options: RunOptions | None = None) -> None:
        self.daemon = daemon
        self.errors: list[BaseException] = []
        self.thread = threading.Thread(target=self._main, args=(options,), name="daemon", daemon=True)
        self.thread.start()

    def _main(self, options: RunOptions | None) -> None:
        try:
            asyncio.run(self.daemon.run(options))
        except BaseException as exc:  # surfaced by join(), not lost in the thread
            self.errors.append(exc)

    def request_stop(self) -> None:
        """What SIGTERM does, from this thread."""
        eventually(lambda: self.daemon._event_loop is not None, what="the daemon's event loop")
        loop = self.daemon._event_loop
        assert loop is not None
        loop.call_soon_threadsafe(self.daemon.request_stop)

    def join(self) -> None:
        """Wait for the daemon to end; it must end within 30 s and raise nothing."""
        self.thread.join(timeout=30)
        assert not self.thread.is_alive(), "the daemon did not stop"
        assert self.errors == []

    def stop(self) -> None:
        self.request_stop()
        self.join()
