"""`EmulatorServer`: uvicorn serving an emulator from a background thread with its own event loop."""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
import time
from typing import Any

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from cyberdesk.emulator.app import create_app
from cyberdesk.emulator.emulator import Emulator
from cyberdesk.emulator.middleware import ResponseDropped


class _HideDroppedResponses(logging.Filter):
    """A dropped response is an injected fault, not a crash: keep uvicorn from logging a traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        return not isinstance(exc, ResponseDropped)


def install_log_filter() -> None:
    logger = logging.getLogger("uvicorn.error")
    if not any(isinstance(f, _HideDroppedResponses) for f in logger.filters):
        logger.addFilter(_HideDroppedResponses())


def bind(host: str, port: int) -> socket.socket:
    """A listening socket; binding it ourselves is how port 0 gives a known free port."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


class _CoalescingTransport:
    """Joins the writes of one loop iteration into one send.

    uvicorn writes a response's head and body with two `write()` calls; on loopback each is a syscall
    and a wake-up of the client for half a response. Joining them cut the server's CPU per request
    by about a third in bench/emulator_bench.py.
    """

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._buffer: list[bytes] = []

    def write(self, data: bytes) -> None:
        if not self._buffer:
            self._loop.call_soon(self.flush)
        self._buffer.append(data)

    def flush(self) -> None:
        if self._buffer:
            data = b"".join(self._buffer)
            self._buffer.clear()
            if not self._transport.is_closing():
                self._transport.write(data)

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class CoalescingHttpToolsProtocol(HttpToolsProtocol):
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        wrapped: Any = _CoalescingTransport(transport, asyncio.get_running_loop())
        super().connection_made(wrapped)


def config(app: object, log_level: str = "warning") -> uvicorn.Config:
    # httptools + uvloop: the fast uvicorn stack (performance-notes.md).
    return uvicorn.Config(
        app,  # type: ignore[arg-type]
        loop="uvloop",
        http=CoalescingHttpToolsProtocol,
        lifespan="on",
        log_level=log_level,
        access_log=False,
        timeout_keep_alive=30,
        backlog=2048,
    )


class EmulatorServer:
    """Serves `emulator` on host:port (port 0 = a free port) until `stop()`.

    >>> server = EmulatorServer(Emulator(speed=600)).start()
    >>> server.base_url  # e.g. http://127.0.0.1:53817
    """

    def __init__(
        self, emulator: Emulator, host: str = "127.0.0.1", port: int = 0, log_level: str = "warning"
    ) -> None:
        self.emulator = emulator
        self.host = host
        self._requested_port = port
        self._log_level = log_level
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._socket: socket.socket | None = None
        self.port = port

    @property
    def base_url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def start(self, timeout: float = 10.0) -> EmulatorServer:
        """Starts serving and returns once the socket accepts connections."""
        if self._thread is not None:
            raise RuntimeError("server already started")
        install_log_filter()
        self._socket = bind(self.host, self._requested_port)
        self.port = self._socket.getsockname()[1]
        server = uvicorn.Server(config(create_app(self.emulator), self._log_level))
        self._server = server
        sockets = [self._socket]
        self._thread = threading.Thread(
            target=server.run,
            kwargs={"sockets": sockets},
            name=f"cyberdesk-emulator:{self.port}",
            daemon=True,
        )
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not server.started:
            if not self._thread.is_alive():
                raise RuntimeError("emulator server exited during startup")
            if time.monotonic() > deadline:
                self.stop()
                raise TimeoutError(f"emulator server did not start within {timeout}s")
            time.sleep(0.005)
        return self

    def stop(self, timeout: float = 10.0) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout)
        if self._socket is not None:
            self._socket.close()
        self._server = self._thread = self._socket = None

    def __enter__(self) -> EmulatorServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
