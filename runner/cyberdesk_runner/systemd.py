"""Telling systemd how the daemon is doing, by the `sd_notify` protocol: datagrams to $NOTIFY_SOCKET.

`READY=1` once the store and the HTTP server are up, `WATCHDOG=1` every half $WATCHDOG_USEC while the loops
are healthy, `STOPPING=1` on the way out, `STATUS=...` lines for `systemctl status`. Without $NOTIFY_SOCKET (not
under systemd with `Type=notify`) nothing is sent. A lost datagram is not worth failing the daemon for.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from datetime import timedelta

from cyberdesk_runner.logs import get_logger

__all__ = ["SystemdNotifier"]

log = get_logger("cyberdesk_runner.systemd")


class SystemdNotifier:
    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        path = env.get("NOTIFY_SOCKET", "")
        # "@name" is a socket in the abstract namespace: a leading NUL byte.
        self._address = ("\0" + path[1:]) if path.startswith("@") else path
        self.watchdog_interval = _watchdog_interval(env)

    @property
    def enabled(self) -> bool:
        return bool(self._address)

    def ready(self, status: str) -> None:
        self.send(f"READY=1\nSTATUS={status}")

    def status(self, status: str) -> None:
        self.send(f"STATUS={status}")

    def watchdog(self) -> None:
        self.send("WATCHDOG=1")

    def stopping(self) -> None:
        self.send("STOPPING=1\nSTATUS=stopping: finishing what is under way")

    def send(self, message: str) -> None:
        if not self._address:
            return
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
                sock.sendto(message.encode(), self._address)
        except OSError as exc:
            log.warning("systemd_notify_failed", error=str(exc))


def _watchdog_interval(env: Mapping[str, str]) -> timedelta | None:
    """Half of $WATCHDOG_USEC (systemd's advice), when the watchdog is on and meant for this process."""
    usec = env.get("WATCHDOG_USEC", "")
    pid = env.get("WATCHDOG_PID", "")
    if not usec.isdigit() or int(usec) == 0 or (pid.isdigit() and int(pid) != os.getpid()):
        return None
    return timedelta(microseconds=int(usec) / 2)
