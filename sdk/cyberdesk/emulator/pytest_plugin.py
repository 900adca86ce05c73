"""Pytest fixtures serving a fresh emulator on a free port (registered as the `cyberdesk_emulator` plugin).

`cyberdesk_emulator` -> a handle on a default emulator (demo fleet, speed 1);
`cyberdesk_emulator_factory(**options)` -> start one with `EmulatorOptions.build` options, e.g.
`factory(speed=600, seed=1, rate_limit=0.2, webhook_url=..., webhook_secret=..., fixture="fleet.yaml")`.
Handles expose `.base_url`, `.api_key`, `.emulator` (state to inspect or steer) and `.headers`.
Emulator imports are deferred so loading the plugin costs nothing in sessions that never use it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    import httpx

    from cyberdesk.emulator.emulator import Emulator
    from cyberdesk.emulator.server import EmulatorServer


@dataclass
class EmulatorHandle:
    base_url: str
    api_key: str
    emulator: Emulator
    server: EmulatorServer

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"}

    def client(self, **kwargs: Any) -> httpx.Client:
        """A plain httpx client with base URL and auth set (for tests that poke the wire directly)."""
        import httpx

        return httpx.Client(base_url=self.base_url, headers=self.headers, **kwargs)

    def stop(self) -> None:
        self.server.stop()


EmulatorFactory = Callable[..., EmulatorHandle]


@pytest.fixture
def cyberdesk_emulator_factory() -> Iterator[EmulatorFactory]:
    from cyberdesk.emulator.emulator import Emulator
    from cyberdesk.emulator.options import EmulatorOptions
    from cyberdesk.emulator.server import EmulatorServer

    started: list[EmulatorServer] = []

    def start(**options: Any) -> EmulatorHandle:
        emulator = Emulator(EmulatorOptions.build(**options))
        server = EmulatorServer(emulator).start()
        started.append(server)
        return EmulatorHandle(server.base_url, emulator.api_key, emulator, server)

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def cyberdesk_emulator(cyberdesk_emulator_factory: EmulatorFactory) -> EmulatorHandle:
    return cyberdesk_emulator_factory()
