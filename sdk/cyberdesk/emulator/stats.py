"""Counters behind GET /_emulator/stats: what the emulator was asked and what it did."""

from __future__ import annotations

import threading
from collections import defaultdict


class Stats:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.requests: defaultdict[str, defaultdict[str, int]] = defaultdict(lambda: defaultdict(int))
        self.runs_created = 0
        self.run_create_replays = 0
        # (workflow id, idempotency key) -> runs created by single creates with that key.
        self.runs_per_key: dict[tuple[str, str], int] = {}

    def record_request(self, route: str, status: int) -> None:
        with self._lock:
            self.requests[route][str(status)] += 1

    def record_run_created(self, workflow_id: str, idempotency_key: str | None, count: int = 1) -> None:
        with self._lock:
            self.runs_created += count
            if idempotency_key is not None and count == 1:
                key = (workflow_id, idempotency_key)
                self.runs_per_key[key] = self.runs_per_key.get(key, 0) + 1

    def record_run_create_replay(self) -> None:
        with self._lock:
            self.run_create_replays += 1

    def duplicates(self) -> list[dict[str, object]]:
        """Pairs (workflow, Idempotency-Key) that produced more than one run: should always be empty."""
        with self._lock:
            return [
                {"workflow_id": wf, "idempotency_key": key, "runs": n}
                for (wf, key), n in self.runs_per_key.items()
                if n > 1
            ]

    def request_counts(self) -> dict[str, dict[str, int]]:
        with self._lock:
            return {route: dict(codes) for route, codes in sorted(self.requests.items())}
