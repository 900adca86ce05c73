"""`python -m cyberdesk.emulator [--port 8765] ...`: the emulator without the runner's CLI."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from cyberdesk.emulator.cli import ServeOptions, serve


def parse(argv: Sequence[str] | None = None) -> ServeOptions:
    defaults = ServeOptions()
    p = argparse.ArgumentParser(prog="python -m cyberdesk.emulator", description="A local Cyberdesk cloud.")
    p.add_argument("--host", default=defaults.host)
    p.add_argument("--port", type=int, default=defaults.port)
    p.add_argument("--api-key", default=defaults.api_key)
    p.add_argument("--fixture", default=None, help="YAML fleet file (default: the demo fleet)")
    p.add_argument("--speed", type=float, default=defaults.speed)
    p.add_argument("--run-duration", default=defaults.run_duration, help="MIN-MAX simulated seconds")
    p.add_argument("--failure-rate", type=float, default=defaults.failure_rate)
    p.add_argument("--webhook-url", default=None)
    p.add_argument("--webhook-secret", default=None)
    p.add_argument("--webhook-rate", type=float, default=None, help="at most N webhook deliveries per second")
    p.add_argument("--rate-limit", type=float, default=0.0)
    p.add_argument("--server-errors", type=float, default=0.0)
    p.add_argument("--drop-responses", type=float, default=0.0)
    p.add_argument("--latency", type=float, default=0.0, help="milliseconds added to each request")
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--log-level", default=defaults.log_level)
    return ServeOptions(**vars(p.parse_args(argv)))


if __name__ == "__main__":
    serve(parse())
