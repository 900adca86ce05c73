"""A webhook receiver on loopback for alert tests: answers 503 while `down`, records what it accepted.

With `hold` set, a request is recorded in `held` on arrival and not answered until `release` is set (a daemon
can be stopped while its request is under way); it is then accepted like any other."""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import attrs


@attrs.define
class Delivery:
    path: str
    headers: dict[str, str]
    body: bytes


class Receiver:
    def __init__(self) -> None:
        self.down = False
        self.hold = False
        #: Seconds each answer takes (a slow receiver keeps a sender busy while more alerts come due).
        self.delay = 0.0
        self.release = threading.Event()
        self.held: list[Delivery] = []
        self.accepted: list[Delivery] = []
        self.refused = 0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                delivery = Delivery(self.path, {k.lower(): v for k, v in self.headers.items()}, body)
                time.sleep(receiver.delay)
                if receiver.hold:
                    receiver.held.append(delivery)
                    receiver.release.wait(60)
                if receiver.down:
                    receiver.refused += 1
                    self.send_response(503)
                else:
                    receiver.accepted.append(delivery)
                    self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}{path}"

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()
