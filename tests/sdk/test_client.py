"""Client lifecycle: lazy pools, the default aiohttp transport (against a loopback server), closing."""

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest
from aiohttp import web
from httpx_aiohttp import AiohttpTransport

from cyberdesk import CyberdeskClient, ErrorKind, RetryConfig

from .helpers import API_KEY, Api, Sleeps


@pytest.fixture
async def server() -> AsyncIterator[str]:
    """A real HTTP server on 127.0.0.1 (no network beyond loopback)."""

    async def health(request: web.Request) -> web.Response:
        if request.headers.get("Authorization") != f"Bearer {API_KEY}":
            return web.json_response({"detail": "unauthorized"}, status=401)
        return web.json_response({"status": "ok"})

    app = web.Application()
    app.router.add_get("/v1/health", health)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    yield f"http://127.0.0.1:{port}"
    await runner.cleanup()


async def test_async_calls_go_through_aiohttp_by_default(server: str) -> None:
    async with CyberdeskClient(API_KEY, base_url=server) as client:
        responses = await asyncio.gather(*(client.health.check() for _ in range(20)))
        assert all(r.data == {"status": "ok"} for r in responses)
        pool = client._core._aclient
        assert pool is not None and isinstance(pool._transport, AiohttpTransport)
        assert client._core._aclient is pool  # one pool per client, created once
    assert client._core._aclient is None


async def test_sync_and_async_against_a_real_server(server: str) -> None:
    client = CyberdeskClient(API_KEY, base_url=server)
    assert client._core._client is None and client._core._aclient is None  # lazy
    assert (await asyncio.to_thread(client.health.check_sync)).data == {"status": "ok"}
    assert (await client.health.check()).data == {"status": "ok"}
    await client.aclose()


async def test_connection_refused_is_a_network_error(sleeps: Sleeps) -> None:
    retry = RetryConfig(max_retries=1, sleep=sleeps.sleep, async_sleep=sleeps.async_sleep)
    async with CyberdeskClient(API_KEY, base_url="http://127.0.0.1:9", retry=retry) as client:
        error = (await client.health.check()).error
        assert error is not None and error.kind in (ErrorKind.NETWORK, ErrorKind.TIMEOUT)
        assert error.status_code is None and not error.is_definite_failure
        assert len(sleeps.delays) == 1


async def test_close_after_async_use_asks_for_aclose(server: str) -> None:
    client = CyberdeskClient(API_KEY, base_url=server)
    await client.health.check()
    with pytest.raises(RuntimeError, match="aclose"):
        client.close()
    await client.aclose()


def test_the_aiohttp_pool_belongs_to_one_event_loop() -> None:
    client = CyberdeskClient(API_KEY, base_url="http://127.0.0.1:9", retry=RetryConfig(max_retries=0))
    first, second = asyncio.new_event_loop(), asyncio.new_event_loop()
    try:
        first.run_until_complete(client.health.check())
        with pytest.raises(RuntimeError, match="another event loop"):
            second.run_until_complete(client.health.check())
        first.run_until_complete(client.aclose())
    finally:
        first.close()
        second.close()


def test_sync_context_manager() -> None:
    api = Api(httpx.Response(200, json={"status": "ok"}))
    with CyberdeskClient(API_KEY, transport=httpx.MockTransport(api)) as client:
        assert client.health.check_sync().data == {"status": "ok"}
    assert client._core._client is None
    client.close()  # closing twice is harmless


async def test_cookies_a_server_sets_are_not_sent_back() -> None:
    """The API authenticates by bearer token: a cookie from a proxy or load balancer is not kept and replayed."""
    api = Api(httpx.Response(200, json={"status": "ok"}, headers={"Set-Cookie": "lb=node-7; Path=/"}))
    sync = CyberdeskClient(API_KEY, base_url="http://api.test", transport=httpx.MockTransport(api))
    async_ = CyberdeskClient(API_KEY, base_url="http://api.test", async_transport=httpx.MockTransport(api))
    for _ in range(2):
        assert sync.health.check_sync().data == {"status": "ok"}
        assert (await async_.health.check()).data == {"status": "ok"}
    sync.close()
    await async_.aclose()
    assert len(api.requests) == 4
    assert [r.headers.get("cookie") for r in api.requests] == [None] * 4
    assert {r.headers["authorization"] for r in api.requests} == {f"Bearer {API_KEY}"}
