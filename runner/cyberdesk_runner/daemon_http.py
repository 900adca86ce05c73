"""The daemon's HTTP server, assembled: the webhook receiver (with its secret), /healthz, /metrics and the status
page on one listening socket; started once the runtime is, stopped letting requests under way finish.

With the embedded emulator and no `tracking.webhook`, the emulator's webhooks are wired to this server with a
secret made for the run.
"""

from __future__ import annotations

import asyncio
import base64
import os
import socket
from collections.abc import Callable
from typing import Any

import attrs
import uvicorn

from cyberdesk_runner.config import Config
from cyberdesk_runner.logs import get_logger, register_secret
from cyberdesk_runner.runtime import Runtime
from cyberdesk_runner.server import bind, build_app, make_server
from cyberdesk_runner.tracking.webhooks import WebhookReceiver
from cyberdesk_runner.web.routes import page_routes

log = get_logger("cyberdesk_runner.daemon")

#: Seconds requests under way get to be answered when the server stops.
_STOP_GRACE = 3.0


@attrs.frozen
class DaemonHttp:
    """A listening HTTP server of the daemon."""

    server: uvicorn.Server
    task: asyncio.Task[None]
    sock: socket.socket
    #: Where the page, /healthz and /metrics are.
    url: str
    #: Where webhooks are received; None without a webhook receiver.
    webhook_url: str | None

    async def stop(self) -> None:
        """Stop taking requests; those under way get up to 3 s to be answered."""
        self.server.should_exit = True
        try:
            await asyncio.wait_for(self.task, timeout=_STOP_GRACE)
        except (TimeoutError, asyncio.CancelledError):
            self.task.cancel()
        self.sock.close()


async def start_http(
    config: Config,
    runtime: Runtime,
    health: Callable[[], tuple[bool, dict[str, Any]]],
    emulator: Any,
) -> DaemonHttp | None:
    """Start the server, or None when nothing is to be served (no `server.listen`, no webhooks)."""
    webhook_settings = config.tracking.webhook
    webhook: WebhookReceiver | None = None
    path = webhook_settings.path if webhook_settings else "/webhooks/cyberdesk"
    listen = config.server.listen
    secret = ""
    if webhook_settings is not None:
        secret = webhook_settings.secret.get_secret_value()
        listen = webhook_settings.listen
    elif emulator is not None:
        # Embedded emulator: wire its webhooks to us, with a secret made for this run.
        secret = "whsec_" + base64.b64encode(os.urandom(24)).decode()
    if secret:
        register_secret(secret)
        webhook = WebhookReceiver(secret=secret, sink=runtime.sink, metrics=runtime.metrics)
    if listen is None and webhook is None:
        return None
    host, port = (listen.host, listen.port) if listen is not None else ("127.0.0.1", 0)
    app = build_app(
        metrics=runtime.metrics,
        health=health,
        webhook=webhook,
        webhook_path=path,
        auth=config.server.auth,
        page_routes=page_routes(runtime.store, fleet=lambda: runtime.fleet if runtime.fleet_loaded else None),
    )
    try:
        sock = bind(host, port)
    except OSError as exc:
        if webhook_settings is not None:
            raise
        # Health and metrics are not worth failing the daemon for (e.g. a second daemon on one host).
        log.warning("http_port_in_use", listen=f"{host}:{port}", error=str(exc), fallback="a free port")
        sock = bind(host, 0)
    bound_host, bound_port = sock.getsockname()[:2]
    server = make_server(app)
    task = asyncio.create_task(server.serve(sockets=[sock]), name="http")
    base = f"http://{bound_host}:{bound_port}"
    webhook_url = base + path if webhook is not None else None
    log.info("http_listening", url=base, webhook=webhook_url)
    if webhook_url is not None and emulator is not None and webhook_settings is None:
        emulator.add_webhook_endpoint(webhook_url, secret)
    return DaemonHttp(server=server, task=task, sock=sock, url=base, webhook_url=webhook_url)
