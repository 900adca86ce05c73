"""Plain async calls on the default pool skip httpx (_direct.py): the server sees the very request httpx would
send, and the caller gets the same answer, retries and errors. Against a loopback aiohttp server."""

import gzip
import json
from collections.abc import AsyncIterator
from typing import Any
from uuid import UUID

import httpx
import pytest
from aiohttp import web
from httpx_aiohttp import AiohttpTransport

from cyberdesk import CyberdeskClient, ErrorKind, RetryConfig, RunCreate

from .helpers import API_KEY, MID, PID, RID, WID, Sleeps, run_json


class Recorder:
    """What the server received, and the answers it gives in turn (the last one repeats)."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.answers: list[web.Response] = []

    async def handle(self, request: web.Request) -> web.Response:
        self.requests.append(
            {
                "method": request.method,
                "target": request.path_qs,
                "headers": sorted((k.lower(), v) for k, v in request.headers.items()),
                "body": await request.read(),
            }
        )
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        # A Response is sent once: hand aiohttp a copy, keep the original for the next request.
        return web.Response(body=answer.body, status=answer.status, headers=answer.headers)


@pytest.fixture
async def recorder() -> AsyncIterator[tuple[Recorder, str]]:
    recorder = Recorder()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", recorder.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    yield recorder, f"http://127.0.0.1:{runner.addresses[0][1]}"
    await runner.cleanup()


def answer(status: int, body: Any, **headers: str) -> web.Response:
    return web.Response(
        body=json.dumps(body).encode(), status=status, headers={"Content-Type": "application/json", **headers}
    )


def clients(base_url: str, **kw: Any) -> tuple[CyberdeskClient, CyberdeskClient]:
    """The default client (direct lane) and one sending through httpx over the same kind of aiohttp pool."""
    return (
        CyberdeskClient(API_KEY, base_url=base_url, **kw),
        CyberdeskClient(API_KEY, base_url=base_url, async_transport=AiohttpTransport(), **kw),
    )


async def test_the_direct_lane_is_used_for_plain_calls(recorder: tuple[Recorder, str]) -> None:
    server, base_url = recorder
    server.answers = [answer(200, {"status": "ok"})]
    direct, through_httpx = clients(base_url)
    assert (await direct.health.check()).data == {"status": "ok"}
    assert (await through_httpx.health.check()).data == {"status": "ok"}
    assert direct._core._direct is not None and through_httpx._core._direct is None
    await direct.aclose()
    await through_httpx.aclose()
    assert direct._core._direct is None


async def test_the_server_receives_what_httpx_would_send(recorder: tuple[Recorder, str]) -> None:
    server, base_url = recorder
    run = run_json()
    server.answers = [answer(201, run)]
    body = RunCreate(workflow_id=WID, machine_id=MID, input_values={"n": 1, "text": "é"})
    for client in clients(base_url):
        async with client:
            assert (await client.runs.create(body, idempotency_key="key-1")).data is not None
            await client.runs.list(limit=5, status="success", search="a b&c", fields=["id", "status"])
            await client.runs.get(RID)
            await client.runs.delete(RID, idempotency_key="key-2")
            await client.workflow_tags.unarchive(RID, idempotency_key="key-3")  # a POST without a body
    direct, through_httpx = server.requests[:5], server.requests[5:]
    assert [r["method"] for r in direct] == ["POST", "GET", "GET", "DELETE", "POST"]
    assert direct == through_httpx
    assert dict(direct[0]["headers"])["idempotency-key"] == "key-1"
    assert json.loads(direct[0]["body"])["input_values"] == {"n": 1, "text": "é"}


async def test_answers_retries_and_encodings_are_the_same(recorder: tuple[Recorder, str]) -> None:
    server, base_url = recorder
    sleeps = Sleeps()
    retry = RetryConfig(max_retries=2, sleep=sleeps.sleep, async_sleep=sleeps.async_sleep)
    gzipped = web.Response(
        body=gzip.compress(json.dumps(run_json(status="running")).encode()),
        headers={"Content-Type": "application/json", "Content-Encoding": "gzip"},
    )
    results = []
    for client in clients(base_url, retry=retry):
        server.answers = [answer(429, {"detail": "slow down"}, **{"Retry-After": "3"}), gzipped]
        async with client:
            got = await client.runs.get(RID)
            server.answers = [
                answer(422, {"detail": [{"loc": ["body", "x"], "msg": "bad", "type": "value_error"}]})
            ]
            refused = await client.runs.get(RID)
        assert got.data is not None and got.data.status == "running"
        assert refused.error is not None
        results.append((got.data, refused.error))
    assert results[0] == results[1]
    assert sleeps.delays == [3.0, 3.0]  # the server's Retry-After, on each path


async def test_an_answer_parsed_as_it_arrives_streams_through_httpx(recorder: tuple[Recorder, str]) -> None:
    """`pools.get_machine_ids` reads its answer in pieces (httpx over the same aiohttp pool), not whole on the lane."""
    server, base_url = recorder
    members = [str(UUID(int=i + 1)) for i in range(2_000)]
    pool = {
        "id": PID,
        "name": "p",
        "included": [{"type": "machine", "id": m, "note": "x" * 100} for m in members],
    }
    server.answers = [answer(200, {"status": "ok"}), answer(200, pool)]
    direct, _ = clients(base_url)
    async with direct:
        assert (await direct.health.check()).data == {"status": "ok"}
        lane = direct._core._direct
        assert lane is not None
        lane_calls = []
        lane.send = lambda *args: lane_calls.append(args)  # type: ignore[method-assign, assignment, func-returns-value]
        got = await direct.pools.get_machine_ids(PID)
    assert got.error is None and got.data == members
    assert lane_calls == []
    assert server.requests[1]["target"] == f"/v1/pools/{PID}?include=machines"


async def test_a_refused_connection_is_the_same_error_on_both_paths() -> None:
    errors = []
    for client in clients("http://127.0.0.1:9", retry=RetryConfig(max_retries=0)):
        async with client:
            errors.append((await client.runs.get(RID)).error)
    assert errors[0] is not None and errors[0].kind in (ErrorKind.NETWORK, ErrorKind.TIMEOUT)
    assert errors[0] == errors[1]


async def test_an_answer_without_encoding_reads_as_httpx_reads_it() -> None:
    """The lane builds such answers itself (`_direct._answer`): the same status, headers, body, JSON and state as
    httpx's, whether the server sent a Content-Length or chunks."""
    body = json.dumps({"status": "ok", "text": "é"}).encode()

    async def sized(_: web.Request) -> web.StreamResponse:
        return web.Response(body=body, status=201, content_type="application/json")

    async def chunked(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(status=201, headers={"Content-Type": "application/json"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        await response.write(body[:5])
        await response.write(body[5:])
        await response.write_eof()
        return response

    app = web.Application()
    app.router.add_get("/sized", sized)
    app.router.add_get("/chunked", chunked)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    base_url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    try:
        async with (
            CyberdeskClient(API_KEY, base_url=base_url) as client,
            httpx.AsyncClient(transport=AiohttpTransport()) as plain,
        ):
            await client.health.check()  # makes the pool and its lane
            lane = client._core._direct
            assert lane is not None
            for path in ("/sized", "/chunked"):
                ours = await lane.send("GET", base_url + path, (), None, {})
                theirs = await plain.get(base_url + path)
                await theirs.aread()
                # What httpx's constructor makes of the same answer (what the lane built before `_answer`).
                built = httpx.Response(theirs.status_code, headers=theirs.headers.raw, content=theirs.content)
                assert ours.status_code == built.status_code == 201
                skip = {"date"}  # the only header that may differ between two answers
                assert [h for h in ours.headers.multi_items() if h[0] not in skip] == [
                    h for h in built.headers.multi_items() if h[0] not in skip
                ]
                assert (ours.content, ours.json(), ours.text) == (theirs.content, theirs.json(), theirs.text)
                assert (
                    ours.is_closed
                    and ours.is_stream_consumed
                    and ours.extensions["reason_phrase"] == b"Created"
                )
            assert (
                "content-length",
                str(len(body)),
            ) in ours.headers.multi_items()  # added to chunks, as httpx does
    finally:
        await runner.cleanup()


async def test_the_lane_is_off_when_httpx_reads_answers_otherwise(
    recorder: tuple[Recorder, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import cyberdesk._direct as direct_module

    server, base_url = recorder
    server.answers = [answer(200, {"status": "ok"})]
    assert direct_module._answers_as_httpx()
    monkeypatch.setattr(direct_module, "_answer", lambda *_: httpx_response_without_body())
    assert not direct_module._answers_as_httpx()
    async with CyberdeskClient(API_KEY, base_url=base_url) as client:
        assert (await client.health.check()).data == {"status": "ok"}
        assert client._core._direct is None  # every call went through httpx


def httpx_response_without_body() -> Any:
    return httpx.Response(200)
