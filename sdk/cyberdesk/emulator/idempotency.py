"""Stored responses of writes keyed by `Idempotency-Key`, scoped per API key.

A repeat with the same method, path and body replays the first response byte for byte; a repeat with a
different request is a 409 conflict; a repeat while the first is still running is a 409 with
`Idempotency-Status: in_progress`, which clients retry.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from dataclasses import dataclass, field


@dataclass(eq=False)
class StoredResponse:
    fingerprint: str
    done: bool = False
    status: int = 0
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    body: bytes = b""


@dataclass(frozen=True, slots=True)
class Begin:
    """Result of `begin()`: `kind` is new, replay, conflict or in_progress."""

    kind: str
    stored: StoredResponse | None = None


def fingerprint(method: str, path: str, query: bytes, body: bytes) -> str:
    digest = hashlib.sha256(body).hexdigest()
    return f"{method} {path}?{query.decode('latin-1')} {digest}"


class IdempotencyStore:
    def __init__(self, capacity: int = 200_000) -> None:
        self.capacity = capacity
        self._entries: OrderedDict[tuple[str, str], StoredResponse] = OrderedDict()
        self._lock = threading.Lock()
        self.replays = 0
        self.conflicts = 0
        self.in_progress_rejections = 0

    def begin(self, scope: str, key: str, request_fingerprint: str) -> Begin:
        with self._lock:
            stored = self._entries.get((scope, key))
            if stored is None:
                stored = StoredResponse(request_fingerprint)
                self._entries[(scope, key)] = stored
                if len(self._entries) > self.capacity:
                    self._entries.popitem(last=False)
                return Begin("new", stored)
            if stored.fingerprint != request_fingerprint:
                self.conflicts += 1
                return Begin("conflict", stored)
            if not stored.done:
                self.in_progress_rejections += 1
                return Begin("in_progress", stored)
            self.replays += 1
            return Begin("replay", stored)

    def complete(
        self, scope: str, key: str, status: int, headers: list[tuple[bytes, bytes]], body: bytes
    ) -> None:
        with self._lock:
            stored = self._entries.get((scope, key))
            if stored is not None:
                stored.done, stored.status, stored.headers, stored.body = True, status, headers, body

    def abandon(self, scope: str, key: str) -> None:
        """Forgets a request that crashed before answering, so a retry runs it again."""
        with self._lock:
            stored = self._entries.get((scope, key))
            if stored is not None and not stored.done:
                del self._entries[(scope, key)]

    def counters(self) -> dict[str, int]:
        with self._lock:
            return {
                "keys": len(self._entries),
                "replays": self.replays,
                "conflicts": self.conflicts,
                "in_progress": self.in_progress_rejections,
            }
