"""Injected faults, drawn from a seeded RNG in request arrival order so a seed replays the same failures."""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass
from typing import Any

from cyberdesk.emulator.options import FaultSettings


@dataclass(frozen=True, slots=True)
class FaultDecision:
    """What happens to one request: rejected before the handler, delayed, and/or its reply dropped."""

    reject_status: int | None = None
    latency_s: float = 0.0
    drop_response: bool = False


NO_FAULT = FaultDecision()


class FaultInjector:
    def __init__(self, settings: FaultSettings, seed: int | None) -> None:
        self.settings = settings
        self._rng = random.Random(None if seed is None else f"faults:{seed}")
        self._lock = threading.Lock()
        self.counts = {"rate_limited": 0, "server_errors": 0, "dropped": 0, "delayed": 0}

    def update(self, **changes: Any) -> FaultSettings:
        """Changes some probabilities at runtime; unknown names raise TypeError, bad values ValueError."""
        merged = {**self.settings.as_dict(), **changes}
        if "latency" in merged:
            merged["latency_ms"] = merged.pop("latency")
        self.settings = FaultSettings(**merged)
        return self.settings

    def decide(self) -> FaultDecision:
        s = self.settings
        with self._lock:
            # Always three draws per request, whatever the settings, so the sequence depends only on
            # the seed and the number of requests before this one.
            limit_draw, error_draw, drop_draw = self._rng.random(), self._rng.random(), self._rng.random()
            if limit_draw < s.rate_limit:
                self.counts["rate_limited"] += 1
                return FaultDecision(reject_status=429)
            if error_draw < s.server_errors:
                self.counts["server_errors"] += 1
                # Reuse the draw's position inside the band to pick between the two codes.
                return FaultDecision(reject_status=500 if error_draw < s.server_errors / 2 else 503)
            drop = drop_draw < s.drop_responses
            if drop:
                self.counts["dropped"] += 1
            if s.latency_ms:
                self.counts["delayed"] += 1
            if not drop and not s.latency_ms:
                return NO_FAULT
            return FaultDecision(latency_s=s.latency_ms / 1000.0, drop_response=drop)
