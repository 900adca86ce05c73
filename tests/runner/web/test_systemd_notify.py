"""The daemon under systemd (`Type=notify`): its messages on a real Unix datagram socket given as $NOTIFY_SOCKET;
nothing at all without one."""

from __future__ import annotations

import socket
import textwrap
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from daemon_support import ThreadedDaemon, eventually

from cyberdesk_runner.config import load_config
from cyberdesk_runner.daemon import Daemon
from cyberdesk_runner.systemd import SystemdNotifier


class NotifySocket:
    """What systemd listens on: a Unix datagram socket; `messages` are the datagrams received, in order."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.settimeout(0.05)
        self.messages: list[str] = []

    def receive(self) -> list[str]:
        while True:
            try:
                self.messages.append(self.sock.recv(4096).decode())
            except TimeoutError:
                return self.messages

    def first(self, prefix: str) -> int | None:
        return next((i for i, m in enumerate(self.receive()) if m.startswith(prefix)), None)


@pytest.fixture
def notify_socket(tmp_path: Path) -> Iterator[NotifySocket]:
    # AF_UNIX paths are short (108 bytes): not under pytest's long tmp_path.
    import tempfile

    with tempfile.TemporaryDirectory(prefix="nfy") as folder:
        listener = NotifySocket(Path(folder) / "notify")
        yield listener
        listener.sock.close()


def _daemon(tmp_path: Path, notifier: SystemdNotifier) -> Daemon:
    (tmp_path / "jobs").mkdir()
    config = tmp_path / "config.yaml"
    config.write_text(
        textwrap.dedent("""
        store: sqlite:///store.sqlite
        jobs: jobs
        server: {listen: "127.0.0.1:0"}
        emulator: {speed: 50, seed: 1}
        """)
    )
    return Daemon(load_config(config), notifier=notifier)


def test_the_daemon_says_ready_pets_the_watchdog_and_says_stopping(
    tmp_path: Path, notify_socket: NotifySocket
) -> None:
    # WATCHDOG_USEC of 0.4 s: a pet every 0.2 s.
    notifier = SystemdNotifier({"NOTIFY_SOCKET": str(notify_socket.path), "WATCHDOG_USEC": "400000"})
    running = ThreadedDaemon(_daemon(tmp_path, notifier))
    daemon = running.daemon
    ready_at = eventually(lambda: notify_socket.first("READY=1") is not None, what="READY=1", timeout=30)
    assert ready_at
    ready = next(m for m in notify_socket.messages if m.startswith("READY=1"))
    assert "STATUS=running: 0 jobs, page and health on http://127.0.0.1:" in ready
    # Ready means ready: the store answers (a heartbeat was recorded) and so does the HTTP server.
    assert daemon.http_url is not None
    assert httpx.get(daemon.http_url + "/healthz").status_code == 200
    eventually(
        lambda: notify_socket.receive().count("WATCHDOG=1") >= 3, what="three watchdog pets", timeout=20
    )
    assert not any(m.startswith("STOPPING=1") for m in notify_socket.messages)
    running.stop()
    messages = notify_socket.receive()
    stopping = [i for i, m in enumerate(messages) if m.startswith("STOPPING=1")]
    assert len(stopping) == 1 and stopping[0] > messages.index("WATCHDOG=1")
    assert sum(m.startswith("READY=1") for m in messages) == 1


def test_the_watchdog_is_only_petted_when_meant_for_this_process(
    tmp_path: Path, notify_socket: NotifySocket
) -> None:
    notifier = SystemdNotifier(
        {"NOTIFY_SOCKET": str(notify_socket.path), "WATCHDOG_USEC": "400000", "WATCHDOG_PID": "1"}
    )
    assert notifier.watchdog_interval is None  # meant for another process
    assert SystemdNotifier({"NOTIFY_SOCKET": str(notify_socket.path)}).watchdog_interval is None


def test_without_notify_socket_nothing_is_sent(monkeypatch: pytest.MonkeyPatch) -> None:
    sent: list[object] = []
    monkeypatch.setattr(socket.socket, "sendto", lambda *args: sent.append(args))
    notifier = SystemdNotifier({})
    assert not notifier.enabled
    notifier.ready("running")
    notifier.watchdog()
    notifier.stopping()
    assert sent == []


def test_an_abstract_socket_name_is_sent_to(notify_socket: NotifySocket) -> None:
    name = f"cdr-test-{id(notify_socket)}"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    listener.bind("\0" + name)
    listener.settimeout(5)
    try:
        SystemdNotifier({"NOTIFY_SOCKET": "@" + name}).status("hello")
        assert listener.recv(4096) == b"STATUS=hello"
    finally:
        listener.close()
