"""Settings of one emulator: fleet, timing, failures, webhooks and injected faults."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, cast

import httpx

from cyberdesk.emulator.clock import Clock

DEFAULT_API_KEY = "cd_emulator_key"

Fixture = str | Path | Mapping[str, Any]


@dataclass(frozen=True)
class DurationRange:
    """Bounds, in simulated seconds, of the uniform draw of a run's duration."""

    low: float
    high: float

    def __post_init__(self) -> None:
        if self.low < 0 or self.high < self.low:
            raise ValueError(f"invalid run duration range {self.low}-{self.high}")

    @classmethod
    def parse(cls, value: str | float | tuple[float, float] | DurationRange) -> DurationRange:
        """Accepts "30-300", "45" (fixed), a number or a (low, high) pair."""
        if isinstance(value, DurationRange):
            return value
        if isinstance(value, tuple):
            return cls(float(value[0]), float(value[1]))
        if isinstance(value, int | float):
            return cls(float(value), float(value))
        low, sep, high = value.strip().partition("-")
        try:
            return cls(float(low), float(high if sep else low))
        except ValueError:
            raise ValueError(f"run duration must look like MIN-MAX (seconds), got {value!r}") from None


@dataclass
class FaultSettings:
    """Probabilities of injected faults; changeable at runtime through POST /_emulator/faults."""

    rate_limit: float = 0.0
    server_errors: float = 0.0
    drop_responses: float = 0.0
    latency_ms: float = 0.0

    def __post_init__(self) -> None:
        for name in ("rate_limit", "server_errors", "drop_responses"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be a probability in [0, 1], got {value}")
        if self.latency_ms < 0:
            raise ValueError("latency_ms must be >= 0")

    def as_dict(self) -> dict[str, float]:
        return {f.name: float(getattr(self, f.name)) for f in fields(self)}


@dataclass(frozen=True)
class WebhookEndpoint:
    url: str
    secret: str


@dataclass
class EmulatorOptions:
    """Everything that shapes an `Emulator`. Times are simulated seconds unless stated otherwise.

    `speed` divides every simulated duration: at speed 600 a five-minute run takes half a second.
    `fixture` is a YAML path or an already-parsed mapping; None loads the built-in demo fleet and
    `{}` gives an empty cloud.
    """

    api_key: str = DEFAULT_API_KEY
    fixture: Fixture | None = None
    speed: float = 1.0
    run_duration: DurationRange = field(default_factory=lambda: DurationRange(30.0, 300.0))
    failure_rate: float = 0.0
    webhooks: list[WebhookEndpoint] = field(default_factory=list)
    faults: FaultSettings = field(default_factory=FaultSettings)
    seed: int | None = None
    clock: Clock | None = None
    # Real seconds between webhook attempts (5 attempts in all, like Svix's first retries, only shorter).
    webhook_retry_delays: tuple[float, ...] = (0.5, 1.0, 2.0, 4.0)
    webhook_timeout: float = 5.0
    # Deliveries in flight at once, like Svix's parallel workers. Bounded so that a dead receiver's retries
    # cannot starve the API the same event loop serves; each waits for the receiver's answer, so a low bound
    # caps the webhook rate at bound / receiver latency (32 / 60 ms held a runner near 500 runs/s).
    webhook_concurrency: int = 256
    # None: httpx-aiohttp (httpx's own async pool caps deliveries near 100/s here); tests pass a MockTransport.
    webhook_transport: httpx.AsyncBaseTransport | None = None
    # At most this many webhook attempts per real second (None: as fast as the receiver answers), to try a
    # receiver whose news comes slowly, as from a busy Svix.
    webhook_rate: float | None = None
    # Real seconds between two passes of the background ticker of a served emulator.
    tick_interval: float = 0.01

    def __post_init__(self) -> None:
        if self.speed <= 0:
            raise ValueError("speed must be > 0")
        if self.webhook_concurrency < 1:
            raise ValueError("webhook_concurrency must be >= 1")
        if self.webhook_rate is not None and self.webhook_rate <= 0:
            raise ValueError(f"webhook_rate must be > 0 deliveries per second, got {self.webhook_rate}")
        if not 0.0 <= self.failure_rate <= 1.0:
            raise ValueError("failure_rate must be a probability in [0, 1]")
        given: object = self.run_duration
        if not isinstance(given, DurationRange):  # "30-300" is accepted too, as on the command line
            self.run_duration = DurationRange.parse(cast(str, given))

    @classmethod
    def build(cls, **options: Any) -> EmulatorOptions:
        """Keyword options with the CLI's flat names (`rate_limit=`, `webhook_url=`...) folded in."""
        fault_names = {f.name for f in fields(FaultSettings)} | {"latency"}
        faults = {k: options.pop(k) for k in list(options) if k in fault_names and options[k] is not None}
        if "latency" in faults:
            faults["latency_ms"] = faults.pop("latency")
        if faults:
            options["faults"] = FaultSettings(
                **{**options.get("faults", FaultSettings()).as_dict(), **faults}
            )
        url, secret = options.pop("webhook_url", None), options.pop("webhook_secret", None)
        if (url is None) != (secret is None):
            raise ValueError("webhook_url and webhook_secret go together")
        if url is not None and secret is not None:
            options["webhooks"] = [*options.get("webhooks", []), WebhookEndpoint(url, secret)]
        if "run_duration" in options:
            options["run_duration"] = DurationRange.parse(options["run_duration"])
        return cls(**options)
