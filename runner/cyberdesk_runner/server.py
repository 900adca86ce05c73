"""The daemon's HTTP endpoint: the Cyberdesk webhook, `GET /healthz`, Prometheus `GET /metrics` and the status page.

With `server.auth` set, everything but `/healthz` and the webhook (which carries its own signature) needs it.
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Callable, Generator, Sequence
from typing import Any

import uvicorn
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from cyberdesk_runner.config import ServerAuth
from cyberdesk_runner.metrics import Metrics
from cyberdesk_runner.tracking.webhooks import WebhookReceiver
from cyberdesk_runner.web.auth import AuthGate


def build_app(
    *,
    metrics: Metrics,
    health: Callable[[], tuple[bool, dict[str, Any]]],
    webhook: WebhookReceiver | None,
    webhook_path: str,
    auth: ServerAuth | None = None,
    page_routes: Sequence[BaseRoute] = (),
) -> ASGIApp:
    async def healthz(_request: Request) -> Response:
        alive, details = health()
        return JSONResponse(details, status_code=200 if alive else 503)

    async def metrics_endpoint(_request: Request) -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    app: ASGIApp = Starlette(
        routes=[Route("/healthz", healthz), Route("/metrics", metrics_endpoint), *page_routes]
    )
    if auth is not None:
        app = AuthGate(app, auth, open_paths=frozenset({"/healthz"}))
    if webhook is None:
        return app
    receiver = webhook

    async def with_webhooks(scope: Scope, receive: Receive, send: Send) -> None:
        # Webhooks go straight to their receiver, outside Starlette's routing: one per run adds up.
        if scope["type"] == "http" and scope["path"] == webhook_path:
            await receiver(scope, receive, send)
        else:
            await app(scope, receive, send)

    return with_webhooks


class _Server(uvicorn.Server):
    # The daemon handles SIGINT/SIGTERM itself; uvicorn must not take them over.
    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


def bind(host: str, port: int) -> socket.socket:
    """Bind before serving so the port is known (port 0 picks a free one) and taken before anyone is told it."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(1024)
    except OSError:
        sock.close()  # a port in use must not leak the socket (the caller may fall back to another port)
        raise
    sock.setblocking(False)
    return sock


def make_server(app: ASGIApp) -> uvicorn.Server:
    # No proxy-header rewriting, no Server/Date headers: work on every webhook that nothing here uses.
    config = uvicorn.Config(
        app,
        log_level="warning",
        lifespan="off",
        access_log=False,
        proxy_headers=False,
        server_header=False,
        date_header=False,
    )
    return _Server(config)


def parse_listen(listen: str) -> tuple[str, int]:
    host, _, port = listen.rpartition(":")
    return (host.strip("[]") or "127.0.0.1"), int(port)
