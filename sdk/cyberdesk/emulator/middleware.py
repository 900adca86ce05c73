"""The request pipeline around the routes: auth, fresh state, injected faults, idempotency, counters.

One pure-ASGI layer rather than a stack of Starlette middlewares: it is on every request's hot path.
Order: auth (401) -> apply due transitions -> fault draw (429/5xx) -> idempotency (replay / 409) ->
latency -> handler -> store the reply -> maybe drop it. `/_emulator/*` and `/v1/health` skip auth and faults.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import httpx
from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from cyberdesk.emulator.emulator import Emulator
from cyberdesk.emulator.idempotency import fingerprint

_WRITES = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_DOCS_PATHS = frozenset({"/docs", "/openapi.json", "/docs/oauth2-redirect"})
_REJECTIONS = {
    429: "Too many requests (rate limit injected by the emulator)",
    500: "Internal server error (injected by the emulator)",
    503: "Service unavailable (injected by the emulator)",
}


class ResponseDropped(httpx.RemoteProtocolError):
    """Raised after a request was applied, so the server closes the connection instead of replying.

    A subclass of httpx's own network error: in-process (ASGITransport) clients see the same failure
    type as over a socket, where uvicorn turns it into a closed connection.
    """


async def _send_json(
    send: Send, status: int, payload: Any, extra: list[tuple[bytes, bytes]] | None = None
) -> None:
    body = json.dumps(payload).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers + (extra or [])})
    await send({"type": "http.response.body", "body": body})


async def _read_body(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            return b"".join(chunks)


class _Capture:
    """Wraps `send`: records the reply for the idempotency store, and withholds it when it will be dropped."""

    def __init__(self, send: Send, forward: bool, keep: bool) -> None:
        self._send = send
        self.forward = forward
        self.keep = keep or not forward
        self.status = 500
        self.headers: list[tuple[bytes, bytes]] = []
        self.body: list[bytes] = []

    async def send(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.status = message["status"]
            self.headers = list(message.get("headers", []))
        elif self.keep and message["type"] == "http.response.body":
            self.body.append(message.get("body", b""))
        if self.forward:
            await self._send(message)


class EmulatorMiddleware:
    """The emulator's ASGI application; `.emulator` is the state behind it.

    `app` serves what is not a `/v1/<resource>` route (health, /_emulator, 404s) and the lifespan;
    `per_resource` maps a resource name to the app of its routes; `docs` builds the app of /docs.
    """

    def __init__(
        self,
        app: ASGIApp,
        emulator: Emulator,
        per_resource: Mapping[str, ASGIApp] | None = None,
        docs: Callable[[], ASGIApp] | None = None,
        routes: Sequence[BaseRoute] = (),
    ) -> None:
        self.app = app
        self.emulator = emulator
        self.per_resource = dict(per_resource or {})
        self._docs_factory = docs
        self._docs: ASGIApp | None = None
        self._routes = routes
        key = emulator.api_key.encode()
        self._accepted = {b"Bearer " + key, b"bearer " + key}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        em = self.emulator
        path: str = scope["path"]
        if not path.startswith("/v1/") or path == "/v1/health":
            app = self.app
            if path in _DOCS_PATHS and self._docs_factory is not None:
                self._docs = self._docs or self._docs_factory()
                app = self._docs
            with em.lock:
                em.simulation.process_due()
                capture = _Capture(send, forward=True, keep=False)
                await app(scope, receive, capture.send)
            self._record(scope, capture.status)
            return
        await self._api(scope, receive, send)

    async def _api(self, scope: Scope, receive: Receive, send: Send) -> None:
        em = self.emulator
        auth = idem_key = None
        for name, value in scope["headers"]:
            if name == b"authorization":
                auth = value
            elif name == b"idempotency-key":
                idem_key = value.decode("latin-1")
        if auth not in self._accepted:
            await _send_json(
                send, 401, {"detail": "Invalid or missing API key"}, [(b"www-authenticate", b"Bearer")]
            )
            self._record(scope, 401)
            return
        with em.lock:
            em.simulation.process_due()
        decision = em.faults.decide()
        if decision.reject_status is not None:
            extra = [(b"retry-after", b"1")] if decision.reject_status in (429, 503) else []
            await _send_json(
                send, decision.reject_status, {"detail": _REJECTIONS[decision.reject_status]}, extra
            )
            self._record(scope, decision.reject_status)
            return
        method: str = scope["method"]
        app = self.per_resource.get(scope["path"][4:].partition("/")[0], self.app)
        tracked = method in _WRITES and idem_key is not None
        if tracked:
            assert idem_key is not None
            body = await _read_body(receive)
            begin = em.idempotency.begin(
                em.api_key, idem_key, fingerprint(method, scope["path"], scope["query_string"], body)
            )
            if begin.kind != "new":
                await self._answer_repeat(scope, send, begin.kind, begin.stored, decision.drop_response)
                return
            receive = _replay(body, receive)
        if decision.latency_s:
            await asyncio.sleep(decision.latency_s)
        capture = _Capture(send, forward=not decision.drop_response, keep=tracked)
        try:
            with em.lock:
                await app(scope, receive, capture.send)
        except BaseException:
            if tracked:
                assert idem_key is not None
                em.idempotency.abandon(em.api_key, idem_key)
            raise
        if tracked:
            assert idem_key is not None
            if capture.status >= 500:
                em.idempotency.abandon(em.api_key, idem_key)
            else:
                em.idempotency.complete(
                    em.api_key, idem_key, capture.status, capture.headers, b"".join(capture.body)
                )
        self._record(scope, capture.status)
        if decision.drop_response:
            await send({"type": "http.response.start", "status": capture.status, "headers": capture.headers})
            raise ResponseDropped("response dropped by the emulator's fault injection")

    async def _answer_repeat(self, scope: Scope, send: Send, kind: str, stored: Any, drop: bool) -> None:
        if kind == "in_progress":
            detail = "A request with this Idempotency-Key is still being processed"
            await _send_json(send, 409, {"detail": detail}, [(b"idempotency-status", b"in_progress")])
            self._record(scope, 409)
        elif kind == "conflict":
            detail = "This Idempotency-Key was already used with a different request (method, path or body)"
            await _send_json(send, 409, {"detail": detail})
            self._record(scope, 409)
        else:
            headers = [*stored.headers, (b"idempotency-replayed", b"true")]
            if scope["method"] == "POST" and scope["path"] == "/v1/runs":
                self.emulator.stats.record_run_create_replay()
            self._record(scope, stored.status)
            await send({"type": "http.response.start", "status": stored.status, "headers": headers})
            if drop:
                raise ResponseDropped("response dropped by the emulator's fault injection")
            await send({"type": "http.response.body", "body": stored.body})

    def _record(self, scope: Scope, status: int) -> None:
        route = scope.get("route") or self._match(scope)
        template = getattr(route, "path", None) or "unmatched"
        self.emulator.stats.record_request(f"{scope['method']} {template}", status)

    def _match(self, scope: Scope) -> Any:
        """The route a request rejected before routing would have reached (for per-route counters)."""
        for route in self._routes:
            match, _ = route.matches(scope)
            if match is Match.FULL:
                return route
        return None


def _replay(body: bytes, receive: Receive) -> Receive:
    """A `receive` that yields the already-read body once, then defers to the server (disconnects)."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay
