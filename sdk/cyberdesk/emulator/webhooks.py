"""Svix-style delivery of `run_complete` events: signed, retried with backoff, logged and counted.

Deliveries run on whatever event loop calls `deliver_due()` (the served emulator's ticker), never inside
request handling. Backoff is in real seconds: it paces a misbehaving receiver, not the simulation. They go
out through aiohttp (httpx-aiohttp) unless a transport is given: httpx's own async pool caps them near 100/s
on a loaded machine. `rate` caps attempts per real second, to try a receiver whose news comes slowly.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import json
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
from httpx_aiohttp import HttpxAiohttpClient
from svix.webhooks import Webhook

from cyberdesk.emulator.options import WebhookEndpoint

log = logging.getLogger("cyberdesk.emulator.webhooks")


@dataclass(eq=False)
class Delivery:
    msg_id: str
    endpoint: WebhookEndpoint
    payload: str
    event_id: str
    run_id: str | None
    attempts: int = 0
    next_at: float = 0.0
    state: str = "pending"
    status_codes: list[int | None] = field(default_factory=list)
    last_error: str | None = None


class WebhookDispatcher:
    def __init__(
        self,
        retry_delays: tuple[float, ...],
        timeout: float,
        transport: httpx.AsyncBaseTransport | None = None,
        monotonic: Callable[[], float] = time.monotonic,
        rate: float | None = None,
    ) -> None:
        self.retry_delays = retry_delays
        self.timeout = timeout
        self.transport = transport
        self._monotonic = monotonic
        self._rate = _RateCap(rate, monotonic()) if rate is not None else None
        self._signers: list[tuple[WebhookEndpoint, Webhook]] = []
        self._pending: list[tuple[float, int, Delivery]] = []
        self._seq = itertools.count()
        self._lock = threading.Lock()
        self._in_flight = 0
        self.delivered = 0
        self.failed = 0
        self.attempts = 0
        self.failed_attempts = 0
        self.log: deque[dict[str, Any]] = deque(maxlen=1000)

    @property
    def rate(self) -> float | None:
        """The cap on attempts per second; None when there is none."""
        return None if self._rate is None else self._rate.rate

    @property
    def endpoints(self) -> list[WebhookEndpoint]:
        return [endpoint for endpoint, _ in self._signers]

    def add_endpoint(self, url: str, secret: str) -> WebhookEndpoint:
        """Registers a receiver; a secret svix cannot use (not `whsec_<base64>`) fails here, not later."""
        endpoint = WebhookEndpoint(url, secret)
        with self._lock:
            self._signers.append((endpoint, Webhook(secret)))
        return endpoint

    def remove_endpoint(self, url: str) -> None:
        with self._lock:
            self._signers = [(e, w) for e, w in self._signers if e.url != url]

    def enqueue(self, event: dict[str, Any], msg_id: str) -> None:
        """Queues one delivery of the event per endpoint (nothing when no endpoint is configured)."""
        if not self._signers:
            return
        payload = json.dumps(event, separators=(",", ":"))
        run = event.get("run")
        run_id = run.get("id") if isinstance(run, dict) else None
        now = self._monotonic()
        with self._lock:
            for endpoint, _ in self._signers:
                delivery = Delivery(msg_id, endpoint, payload, str(event["event_id"]), run_id, next_at=now)
                heapq.heappush(self._pending, (now, next(self._seq), delivery))

    @property
    def pending(self) -> int:
        with self._lock:
            return len(self._pending) + self._in_flight

    def next_due_in(self) -> float | None:
        now = self._monotonic()
        with self._lock:
            if not self._pending:
                return None
            wait = max(0.0, self._pending[0][0] - now)
            return wait if self._rate is None else max(wait, self._rate.wait(now))

    def take_due(self, limit: int | None = None) -> list[Delivery]:
        """Deliveries due now, at most `limit` (the caller bounds how many are in flight at once) and at
        most what the rate cap allows."""
        now = self._monotonic()
        due: list[Delivery] = []
        with self._lock:
            if self._rate is not None:
                allowed = self._rate.allowed(now)
                limit = allowed if limit is None else min(limit, allowed)
            while self._pending and self._pending[0][0] <= now and (limit is None or len(due) < limit):
                due.append(heapq.heappop(self._pending)[2])
            if self._rate is not None:
                self._rate.spend(len(due))
            self._in_flight += len(due)
        return due

    async def deliver_due(self, client: httpx.AsyncClient) -> int:
        """Attempts every due delivery concurrently; returns how many were attempted."""
        due = self.take_due()
        if due:
            await asyncio.gather(*(self.attempt(client, d) for d in due))
        return len(due)

    async def drain(self, max_seconds: float = 10.0) -> None:
        """Delivers until nothing is pending, sleeping through backoff: for in-process tests."""
        deadline = self._monotonic() + max_seconds
        async with self.client() as client:
            while self.pending:
                if self._monotonic() > deadline:
                    raise TimeoutError(f"{self.pending} webhook deliveries still pending")
                if not await self.deliver_due(client):
                    await asyncio.sleep(min(self.next_due_in() or 0.01, 0.05))

    def client(self) -> httpx.AsyncClient:
        """The client of one event loop's deliveries (an aiohttp session belongs to the loop that made it)."""
        if self.transport is not None:
            return httpx.AsyncClient(transport=self.transport, timeout=self.timeout)
        return HttpxAiohttpClient(timeout=self.timeout)

    async def attempt(self, client: httpx.AsyncClient, delivery: Delivery) -> None:
        sent_at = datetime.now(UTC)
        try:
            status, error = await self._post(client, delivery, sent_at)
        finally:
            with self._lock:
                self._in_flight -= 1
        delivery.attempts += 1
        delivery.status_codes.append(status)
        delivery.last_error = error
        ok = status is not None and 200 <= status < 300
        with self._lock:
            self.attempts += 1
            if ok:
                delivery.state = "delivered"
                self.delivered += 1
            elif delivery.attempts > len(self.retry_delays):
                delivery.state = "failed"
                self.failed += 1
                self.failed_attempts += 1
            else:
                self.failed_attempts += 1
                delivery.next_at = self._monotonic() + self.retry_delays[delivery.attempts - 1]
                heapq.heappush(self._pending, (delivery.next_at, next(self._seq), delivery))
            self.log.append(self._entry(delivery, sent_at, status, error))
        level = logging.INFO if ok or delivery.state == "failed" else logging.DEBUG
        log.log(
            level,
            "webhook %s to %s attempt %d: %s",
            delivery.msg_id,
            delivery.endpoint.url,
            delivery.attempts,
            status if error is None else error,
        )

    async def _post(
        self, client: httpx.AsyncClient, delivery: Delivery, sent_at: datetime
    ) -> tuple[int | None, str | None]:
        signer = next((w for e, w in self._signers if e is delivery.endpoint), None) or Webhook(
            delivery.endpoint.secret
        )
        headers = {
            "content-type": "application/json",
            "user-agent": "Svix-Webhooks/1.0 (cyberdesk-emulator)",
            "svix-id": delivery.msg_id,
            "svix-timestamp": str(int(sent_at.timestamp())),
            "svix-signature": signer.sign(delivery.msg_id, sent_at, delivery.payload),
        }
        try:
            response = await client.post(delivery.endpoint.url, content=delivery.payload, headers=headers)
        except httpx.HTTPError as exc:
            return None, f"{type(exc).__name__}: {exc}"
        return response.status_code, None

    def _entry(
        self, delivery: Delivery, sent_at: datetime, status: int | None, error: str | None
    ) -> dict[str, Any]:
        return {
            "msg_id": delivery.msg_id,
            "event_id": delivery.event_id,
            "run_id": delivery.run_id,
            "url": delivery.endpoint.url,
            "attempt": delivery.attempts,
            "status_code": status,
            "error": error,
            "state": delivery.state,
            # When the attempt's request went out, and when its answer came (or it failed).
            "sent_at": sent_at.isoformat(),
            "at": datetime.now(UTC).isoformat(),
        }

    def counters(self) -> dict[str, int]:
        with self._lock:
            return {
                "delivered": self.delivered,
                "failed": self.failed,
                "attempts": self.attempts,
                "failed_attempts": self.failed_attempts,
                "pending": len(self._pending) + self._in_flight,
            }


class _RateCap:
    """A token bucket: `rate` attempts per second, with a burst of a tenth of a second's worth (at least one).

    Not thread-safe on its own: the dispatcher calls it under its lock.
    """

    def __init__(self, rate: float, now: float) -> None:
        self.rate = rate
        self.burst = max(1.0, rate / 10)
        self.tokens = self.burst
        self.at = now

    def allowed(self, now: float) -> int:
        self.tokens = min(self.burst, self.tokens + max(0.0, now - self.at) * self.rate)
        self.at = now
        return int(self.tokens)

    def spend(self, count: int) -> None:
        self.tokens -= count

    def wait(self, now: float) -> float:
        """Seconds until the next attempt is allowed."""
        missing = 1.0 - min(self.burst, self.tokens + max(0.0, now - self.at) * self.rate)
        return max(0.0, missing / self.rate)
