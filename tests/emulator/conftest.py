"""Fixtures of the emulator tests: an in-process emulator on a manual clock, and an httpx client on it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest

from cyberdesk.emulator import Emulator, ManualClock, create_app

# 2026-01-01T00:00:00Z: a fixed start keeps timestamps reproducible.
START = 1_767_225_600.0


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(START)


@pytest.fixture
def make_emulator(clock: ManualClock) -> Callable[..., Emulator]:
    """Emulator on the manual clock; runs take exactly 100 simulated seconds unless told otherwise."""

    def make(**options: Any) -> Emulator:
        options.setdefault("seed", 7)
        options.setdefault("run_duration", "100-100")
        options.setdefault("clock", clock)
        return Emulator(**options)

    return make


@pytest.fixture
def em(make_emulator: Callable[..., Emulator]) -> Emulator:
    return make_emulator()


def asgi_client(emulator: Emulator, **kwargs: Any) -> httpx.AsyncClient:
    kwargs.setdefault("headers", {"Authorization": f"Bearer {emulator.api_key}"})
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=create_app(emulator)), base_url="http://emulator", **kwargs
    )


@pytest.fixture
async def client(em: Emulator) -> AsyncIterator[httpx.AsyncClient]:
    async with asgi_client(em) as c:
        yield c


def wf(em: Emulator, name: str = "Submit insurance claim") -> str:
    return em.workflow(name).id


def mid(em: Emulator, name: str) -> str:
    return em.machine(name).id


CLAIM_INPUTS = {"claim_id": "C-1", "patient_name": "Ann Lee", "amount": "120.00"}


async def create_run(client: httpx.AsyncClient, workflow_id: str, **body: Any) -> dict[str, Any]:
    body = {"workflow_id": workflow_id, "is_priority": False, "start_session": False, **body}
    response = await client.post("/v1/runs", json=body)
    assert response.status_code == 201, response.text
    result: dict[str, Any] = response.json()
    return result


async def get_run(client: httpx.AsyncClient, run_id: str) -> dict[str, Any]:
    response = await client.get(f"/v1/runs/{run_id}")
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result
