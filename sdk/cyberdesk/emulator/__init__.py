"""A local Cyberdesk cloud: the same HTTP API on the real wire format, backed by a simulated fleet.

In-process: `httpx.ASGITransport(app=create_app(Emulator()))`. Served: `EmulatorServer(Emulator()).start()`.
Tests: the `cyberdesk_emulator` / `cyberdesk_emulator_factory` pytest fixtures. CLI: `cyberdesk-runner emulator`.
"""

from cyberdesk.emulator.app import create_app
from cyberdesk.emulator.clock import Clock, ManualClock, SystemClock
from cyberdesk.emulator.emulator import Emulator
from cyberdesk.emulator.errors import Conflict, EmulatorError, NotFound
from cyberdesk.emulator.fleet import FixtureError, Fleet, load_fixture
from cyberdesk.emulator.middleware import ResponseDropped
from cyberdesk.emulator.options import (
    DEFAULT_API_KEY,
    DurationRange,
    EmulatorOptions,
    FaultSettings,
    WebhookEndpoint,
)
from cyberdesk.emulator.server import EmulatorServer

__all__ = [
    "DEFAULT_API_KEY",
    "Clock",
    "Conflict",
    "DurationRange",
    "Emulator",
    "EmulatorError",
    "EmulatorOptions",
    "EmulatorServer",
    "FaultSettings",
    "FixtureError",
    "Fleet",
    "ManualClock",
    "NotFound",
    "ResponseDropped",
    "SystemClock",
    "WebhookEndpoint",
    "create_app",
    "load_fixture",
]
