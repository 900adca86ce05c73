"""`serve(options)`: run an emulator in the foreground until Ctrl-C (used by `cyberdesk-runner emulator`)."""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass

import uvicorn

from cyberdesk.emulator.app import create_app
from cyberdesk.emulator.emulator import Emulator
from cyberdesk.emulator.options import DEFAULT_API_KEY, EmulatorOptions
from cyberdesk.emulator.server import bind, config, install_log_filter


@dataclass
class ServeOptions:
    """The command-line flags; `latency` is in milliseconds, probabilities in [0, 1]."""

    host: str = "127.0.0.1"
    port: int = 8765
    api_key: str = DEFAULT_API_KEY
    fixture: str | None = None
    speed: float = 1.0
    run_duration: str = "30-300"
    failure_rate: float = 0.0
    webhook_url: str | None = None
    webhook_secret: str | None = None
    webhook_rate: float | None = None
    rate_limit: float = 0.0
    server_errors: float = 0.0
    drop_responses: float = 0.0
    latency: float = 0.0
    seed: int | None = None
    log_level: str = "info"

    def emulator_options(self) -> EmulatorOptions:
        return EmulatorOptions.build(
            api_key=self.api_key,
            fixture=self.fixture,
            speed=self.speed,
            run_duration=self.run_duration,
            failure_rate=self.failure_rate,
            webhook_url=self.webhook_url,
            webhook_secret=self.webhook_secret,
            webhook_rate=self.webhook_rate,
            rate_limit=self.rate_limit,
            server_errors=self.server_errors,
            drop_responses=self.drop_responses,
            latency=self.latency,
            seed=self.seed,
        )


def banner(em: Emulator, base_url: str) -> str:
    world = em.world
    opts = em.options
    lines = [
        f"Cyberdesk emulator listening on {base_url}",
        f"  api key:   {opts.api_key}",
        f"  fleet:     {len(world.machines)} desktops, {len(world.pools)} pools, {len(world.workflows)} workflows"
        + ("" if opts.fixture is None else f" (fixture {opts.fixture})"),
        f"  runs:      {opts.run_duration.low:g}-{opts.run_duration.high:g} simulated s at speed {opts.speed:g},"
        f" failure rate {opts.failure_rate:g}",
    ]
    faults = opts.faults
    if faults.rate_limit or faults.server_errors or faults.drop_responses or faults.latency_ms:
        lines.append(
            f"  faults:    rate_limit {faults.rate_limit:g}, server_errors {faults.server_errors:g},"
            f" drop_responses {faults.drop_responses:g}, latency {faults.latency_ms:g} ms"
        )
    for endpoint in em.webhooks.endpoints:
        lines.append(f"  webhooks:  {endpoint.url}")
    if opts.webhook_rate is not None:
        lines.append(f"  webhooks:  at most {opts.webhook_rate:g} deliveries per second")
    lines.append(f"  control:   {base_url}/_emulator/stats, {base_url}/_emulator/runs, {base_url}/docs")
    return "\n".join(lines)


def serve(options: ServeOptions, echo: Callable[[str], None] = print) -> None:
    """Serves until interrupted (uvicorn handles SIGINT/SIGTERM and shuts down gracefully)."""
    emulator = Emulator(options.emulator_options())
    sock = bind(options.host, options.port)
    host = f"[{options.host}]" if ":" in options.host else options.host
    echo(banner(emulator, f"http://{host}:{sock.getsockname()[1]}"))
    sys.stdout.flush()
    install_log_filter()
    try:
        uvicorn.Server(config(create_app(emulator), options.log_level)).run(sockets=[sock])
    except KeyboardInterrupt:
        # uvicorn re-raises the Ctrl-C it handled after shutting down gracefully: nothing left to do.
        pass
    finally:
        sock.close()
