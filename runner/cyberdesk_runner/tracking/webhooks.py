"""The webhook endpoint: verify the Svix signature, then record the run's news. Forged deliveries change nothing.

A plain ASGI app rather than a Starlette route: it answers one request per run, and the framework's routing,
middleware and request objects cost more than the signature check does.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from cyberdesk import RunCompletedEvent
from cyberdesk.webhooks import SIGNATURE_HEADERS, WebhookVerificationError, WebhookVerifier
from cyberdesk_runner.logs import get_logger
from cyberdesk_runner.metrics import Metrics
from cyberdesk_runner.tracking.news import observation, unknown_statuses
from cyberdesk_runner.tracking.sink import ObservationSink

log = get_logger(__name__)

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]

#: Largest delivery read; a run's event with its output is far smaller.
MAX_BODY_BYTES = 16 * 1024 * 1024
#: The signature's headers as ASGI names them (lower case, bytes).
_SIGNATURE = frozenset(name.encode("latin-1") for name in SIGNATURE_HEADERS)


class WebhookReceiver:
    def __init__(self, *, secret: str, sink: ObservationSink, metrics: Metrics) -> None:
        # The secret decoded once (and the signature checker imported now, not in the first delivery's latency).
        self._verifier = WebhookVerifier(secret)
        self._sink = sink
        # The counters' children, looked up once rather than by label on every delivery.
        self._accepted = metrics.webhooks.labels("accepted")
        self._rejected = metrics.webhooks.labels("rejected")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["method"] != "POST":
            await _respond(send, 405, {"detail": "Method Not Allowed"}, (b"allow", b"POST"))
            return
        payload = await _body(receive)
        if payload is None:  # the sender hung up: nobody to answer
            return
        if len(payload) > MAX_BODY_BYTES:
            self._rejected.inc()
            await _respond(send, 413, {"detail": "webhook body too large"})
            return
        # Only the signature's headers matter to `verify` (ASGI gives header names in lower case).
        headers = {
            name.decode("latin-1"): value.decode("latin-1")
            for name, value in scope["headers"]
            if name in _SIGNATURE
        }
        try:
            event = self._verifier.verify(payload, headers)
        except WebhookVerificationError as exc:
            self._rejected.inc()
            client = scope.get("client")
            log.warning(
                "webhook_rejected",
                reason=str(exc),
                rejection=str(exc.reason),
                remote=client[0] if client else None,
            )
            await _respond(send, 400, {"detail": "invalid webhook"})
            return
        # A status the SDK does not know is no news (the run stays in flight; polling settles it).
        if isinstance(event, RunCompletedEvent) and unknown_statuses.is_known(event.run):
            await self._sink.record([observation(event.run, "webhook")])
        self._accepted.inc()
        await send({"type": "http.response.start", "status": 200, "headers": list(_OK_HEADERS)})
        await send({"type": "http.response.body", "body": _OK})


async def _body(receive: Receive) -> bytes | None:
    """The request body (cut short past MAX_BODY_BYTES), or None if the client disconnected."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return None
        chunk = message.get("body", b"")
        size += len(chunk)
        chunks.append(chunk)
        if size > MAX_BODY_BYTES or not message.get("more_body", False):
            return b"".join(chunks)


def _json_headers(content: bytes) -> list[tuple[bytes, bytes]]:
    return [(b"content-type", b"application/json"), (b"content-length", str(len(content)).encode())]


async def _respond(send: Send, status: int, body: dict[str, Any], *extra: tuple[bytes, bytes]) -> None:
    content = json.dumps(body, separators=(",", ":")).encode()
    await send(
        {"type": "http.response.start", "status": status, "headers": [*_json_headers(content), *extra]}
    )
    await send({"type": "http.response.body", "body": content})


#: The answer to every accepted delivery, encoded once.
_OK = json.dumps({"ok": True}, separators=(",", ":")).encode()
_OK_HEADERS = tuple(_json_headers(_OK))
