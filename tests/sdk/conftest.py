"""Fixtures of the SDK tests."""

from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest

from cyberdesk import CyberdeskClient

from .helpers import API_KEY, Api, Sleeps, no_wait_retry


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


@pytest.fixture(params=["sync", "async"])
def mode(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def make_client(sleeps: Sleeps) -> AsyncIterator[Callable[..., CyberdeskClient]]:
    """``make_client(api, **kw)``: a client whose sync and async transports are ``api``; closed after the test."""
    clients: list[CyberdeskClient] = []

    def make(api: Api, **kw: Any) -> CyberdeskClient:
        kw.setdefault("retry", no_wait_retry(sleeps))
        client = CyberdeskClient(
            API_KEY, transport=httpx.MockTransport(api), async_transport=httpx.MockTransport(api), **kw
        )
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.aclose()
