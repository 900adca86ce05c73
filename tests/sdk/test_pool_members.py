"""``pools.get_machine_ids``, sync and async, at the transport: a pool's answer parsed as it arrives (ijson), in
pieces cut anywhere; what it tolerates (unknown fields, other resources), what it refuses (a malformed or cut
answer: a ``decode`` error quoting none of it), failures mid-body retried, and the memory a big pool takes."""

import json
import tracemalloc
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from cyberdesk import CyberdeskClient, ErrorKind

from .helpers import MID, PID, Api, Chunks, call, machine_json, pool_json

OTHER = "0f3e5d2b-1e4f-4a6b-8c7d-0e1f2a3b4c09"
SECRET = "hunter2-the-desk-password"


def pieces(document: bytes, size: int) -> list[bytes]:
    return [document[i : i + size] for i in range(0, len(document), size)]


def streamed(document: bytes, size: int = 7, fail_after: int | None = None) -> Callable[..., httpx.Response]:
    """A reply whose body arrives in ``size``-byte pieces (a fresh stream per request)."""

    def answer(request: httpx.Request) -> httpx.Response:
        chunks = Chunks(pieces(document, size), fail_after)
        return httpx.Response(200, headers={"Content-Type": "application/json"}, stream=chunks)

    return answer


def member(machine_id: str = MID, **over: Any) -> dict[str, Any]:
    return {"type": "machine", **machine_json(id=machine_id, **over)}


async def machine_ids(make_client: Callable[..., CyberdeskClient], mode: str, reply: Any) -> Any:
    return await call(make_client(Api(reply)), mode, "pools", "get_machine_ids", PID)


@pytest.mark.parametrize("size", [1, 7, 4096])
async def test_ids_come_in_the_answers_order_once_each_whatever_its_pieces(
    size: int, mode: str, make_client: Callable[..., CyberdeskClient]
) -> None:
    document = json.dumps(
        pool_json(
            machines=[machine_json(machine_parameters={"site": "eu", "id": "not-this-one"})],
            included=[
                {"type": "pool", "id": PID, "name": "pool-1"},
                member(OTHER.upper(), name='desk "2" \u00e9\u4e2d'),
                member(),  # in both lists: once
            ],
        )
    ).encode()
    response = await machine_ids(make_client, mode, streamed(document, size))
    assert response.error is None
    assert response.data == [MID, OTHER]


@pytest.mark.parametrize(
    "pool",
    [
        pool_json(),
        pool_json(included=[]),
        pool_json(included=None, machines=None),
        pool_json(included=[{"type": "pool", "id": PID}, "a string", 3, None, [member()]]),
    ],
    ids=["no-lists", "empty", "nulls", "no-machine-resource"],
)
async def test_a_pool_without_machines_has_no_ids(
    pool: dict[str, Any], mode: str, make_client: Callable[..., CyberdeskClient]
) -> None:
    response = await machine_ids(make_client, mode, streamed(json.dumps(pool).encode()))
    assert response.error is None and response.data == []


async def test_unknown_fields_and_look_alike_paths_are_ignored(
    mode: str, make_client: Callable[..., CyberdeskClient]
) -> None:
    pool = pool_json(
        new_field={"included": [member(OTHER)], "id": OTHER},
        included=[member(extra={"id": OTHER, "type": "machine"}, tags=["a"], score=1.5e300)],
    )
    # ijson names a value by its path: neither a dotted key nor an object in place of the array is a machine.
    pool["included.item"] = {"type": "machine", "id": OTHER}
    pool["machines"] = {"item": {"id": OTHER}}
    response = await machine_ids(make_client, mode, streamed(json.dumps(pool).encode()))
    assert response.error is None and response.data == [MID]


BROKEN = {
    "cut-short": json.dumps(pool_json(included=[member(machine_sensitive_parameters={"pw": SECRET})]))[:-3],
    "garbage": '{"included": [{"type": "machine", "id": "' + MID + '", "pw": "' + SECRET + '"} oops',
    "trailing": json.dumps(pool_json()) + ' {"pw": "' + SECRET + '"}',
    "empty-body": "",
    "an-array": json.dumps([member()]),
    "no-id": json.dumps(pool_json(included=[{"type": "machine", "name": "desk-1"}])),
    "null-id": json.dumps(pool_json(machines=[machine_json(id=None)])),
    "number-id": json.dumps(pool_json(included=[member(), {"type": "machine", "id": 7}])),
    "bad-uuid": json.dumps(pool_json(included=[member("not-a-uuid")])),
}


@pytest.mark.parametrize("body", list(BROKEN.values()), ids=list(BROKEN))
async def test_a_malformed_answer_is_a_decode_error_that_quotes_none_of_it(
    body: str, mode: str, make_client: Callable[..., CyberdeskClient]
) -> None:
    api = Api(streamed(body.encode()))
    response = await call(make_client(api), mode, "pools", "get_machine_ids", PID)
    assert response.data is None and response.error is not None
    assert response.error.kind is ErrorKind.DECODE and response.error.status_code == 200
    assert str(response.error.detail).startswith("unexpected response body: ")
    assert SECRET not in str(response.error) and SECRET not in repr(response.error)
    assert len(api.requests) == 1  # not retried: the same answer would come again


async def test_the_error_of_a_malformed_answer_says_what_is_wrong(
    mode: str, make_client: Callable[..., CyberdeskClient]
) -> None:
    cut = await machine_ids(make_client, mode, streamed(BROKEN["cut-short"].encode()))
    assert "malformed JSON" in str(cut.error.detail) and "premature EOF" in str(cut.error.detail)
    array = await machine_ids(make_client, mode, streamed(BROKEN["an-array"].encode()))
    assert "expected an object, got array" in str(array.error.detail)
    no_id = await machine_ids(make_client, mode, streamed(BROKEN["no-id"].encode()))
    assert "a machine without an id" in str(no_id.error.detail)


async def test_reading_stops_at_the_first_malformed_piece(
    mode: str, make_client: Callable[..., CyberdeskClient]
) -> None:
    chunks = Chunks([b'{"included": [}', *[b" " * 100] * 50, b"]}"])
    api = Api(lambda request: httpx.Response(200, stream=chunks))
    response = await call(make_client(api), mode, "pools", "get_machine_ids", PID)
    assert response.error is not None and response.error.kind is ErrorKind.DECODE
    assert chunks.pulled == 1


async def test_a_body_cut_by_the_network_is_retried(
    mode: str, make_client: Callable[..., CyberdeskClient]
) -> None:
    document = json.dumps(pool_json(included=[member(), member(OTHER)])).encode()
    api = Api(streamed(document, 16, fail_after=5), streamed(document, 16))
    response = await call(make_client(api), mode, "pools", "get_machine_ids", PID)
    assert response.error is None and response.data == [MID, OTHER]
    assert len(api.requests) == 2


async def test_an_error_status_keeps_its_body(mode: str, make_client: Callable[..., CyberdeskClient]) -> None:
    response = await machine_ids(make_client, mode, httpx.Response(404, json={"detail": "Pool not found"}))
    assert response.error is not None and response.error.kind is ErrorKind.HTTP_STATUS
    assert response.error.status_code == 404 and response.error.detail == {"detail": "Pool not found"}


def big_pool(machines: int, ids: list[str]) -> Iterator[bytes]:
    """A pool's answer with ``machines`` members, made piece by piece as it is sent (never whole in memory)."""
    yield json.dumps(pool_json())[:-1].encode() + b', "included": ['
    for i in range(machines):
        ids.append(str(uuid.UUID(int=i + 1)))
        separator = b", " if i else b""
        parameters = {"site": "eu", "n": i, "note": "x" * 200}
        yield (
            separator + json.dumps(member(ids[-1], name=f"desk-{i}", machine_parameters=parameters)).encode()
        )
    yield b"]}"


async def test_a_big_pool_is_never_held_whole(mode: str, make_client: Callable[..., CyberdeskClient]) -> None:
    ids: list[str] = []
    sent = 0

    def measured() -> Iterator[bytes]:
        nonlocal sent
        for piece in big_pool(10_000, ids):
            sent += len(piece)
            yield piece

    api = Api(lambda request: httpx.Response(200, stream=Chunks(measured())))
    client = make_client(api)
    tracemalloc.start()
    try:
        response = await call(client, mode, "pools", "get_machine_ids", PID)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert response.error is None and response.data == ids
    assert sent > 5_000_000
    # The ids themselves (10,000 strings, their list and the dict that keeps them once) take about 1.5 MB.
    assert peak < 3_000_000, f"peak {peak / 1e6:.1f} MB while reading {sent / 1e6:.1f} MB"
