"""``iter()`` / ``iter_sync()``: every item across pages, the filters on every page, errors raised."""

from collections.abc import Callable
from typing import Any
from uuid import UUID, uuid4

import httpx
import pytest

from cyberdesk import CyberdeskClient, CyberdeskError, ErrorKind, RunField, RunResponse

from .helpers import WID, Api, page_json, query_of, run_json

Factory = Callable[..., CyberdeskClient]


def paged(rows: list[dict[str, Any]], total: int | None = None) -> Callable[[httpx.Request], httpx.Response]:
    """Serves ``rows`` by skip/limit like the real API (defaults 0/100)."""

    def serve(request: httpx.Request) -> httpx.Response:
        skip = int(request.url.params.get("skip", 0))
        limit = int(request.url.params.get("limit", 100))
        return httpx.Response(200, json=page_json(rows[skip : skip + limit], total or len(rows), skip, limit))

    return serve


async def collect(client: CyberdeskClient, mode: str, **kw: Any) -> list[RunResponse]:
    if mode == "sync":
        return list(client.runs.iter_sync(**kw))
    return [run async for run in client.runs.iter(**kw)]


ROWS = [run_json(id=str(uuid4())) for _ in range(5)]


async def test_every_item_across_pages(mode: str, make_client: Factory) -> None:
    api = Api(paged(ROWS))
    runs = await collect(make_client(api), mode, workflow_id=WID, fields=[RunField.OUTPUT_DATA], limit=2)
    assert [run.id for run in runs] == [UUID(r["id"]) for r in ROWS]
    assert [query_of(r) for r in api.requests] == [
        [("skip", str(skip)), ("limit", "2"), ("workflow_id", WID), ("fields", "output_data")]
        for skip in (0, 2, 4)
    ]


async def test_default_page_size_is_100_from_skip_0(mode: str, make_client: Factory) -> None:
    api = Api(paged(ROWS))
    assert len(await collect(make_client(api), mode)) == 5
    assert query_of(api.last) == [("skip", "0"), ("limit", "100")]


async def test_skip_is_the_starting_offset(mode: str, make_client: Factory) -> None:
    api = Api(paged(ROWS))
    runs = await collect(make_client(api), mode, skip=3, limit=1)
    assert [run.id for run in runs] == [UUID(r["id"]) for r in ROWS[3:]]
    assert len(api.requests) == 2


async def test_an_empty_page_ends_the_iteration(mode: str, make_client: Factory) -> None:
    api = Api(paged(ROWS, total=50))  # the total is stale: rows were deleted meanwhile
    assert len(await collect(make_client(api), mode, limit=2)) == 5
    assert len(api.requests) == 4


async def test_a_smaller_page_than_asked_does_not_end_it(mode: str, make_client: Factory) -> None:
    def capped(request: httpx.Request) -> httpx.Response:  # a server whose maximum page is 2
        skip = int(request.url.params["skip"])
        return httpx.Response(200, json=page_json(ROWS[skip : skip + 2], len(ROWS), skip, 2))

    api = Api(capped)
    assert len(await collect(make_client(api), mode, limit=10)) == 5
    assert [dict(query_of(r))["skip"] for r in api.requests] == ["0", "2", "4"]


async def test_an_error_mid_way_raises_cyberdesk_error(mode: str, make_client: Factory) -> None:
    api = Api(paged(ROWS), httpx.Response(403, json={"detail": "forbidden"}))
    seen: list[RunResponse] = []
    with pytest.raises(CyberdeskError) as raised:
        if mode == "sync":
            seen.extend(make_client(api).runs.iter_sync(limit=2))
        else:
            async for run in make_client(api).runs.iter(limit=2):
                seen.append(run)
    assert len(seen) == 2
    assert raised.value.error.status_code == 403
    assert str(raised.value) == "GET /v1/runs: 403 Forbidden: {'detail': 'forbidden'}"


async def test_a_malformed_argument_raises_cyberdesk_error_when_iteration_starts() -> None:
    client = CyberdeskClient("key", base_url="http://127.0.0.1:9")  # nothing listens there: nothing is sent
    with pytest.raises(CyberdeskError, match="workflow_id") as raised:
        next(client.runs.iter_sync(workflow_id="bad"))
    assert raised.value.error.kind is ErrorKind.INVALID_ARGUMENT
    with pytest.raises(CyberdeskError, match="workflow_id"):
        await anext(client.runs.iter(workflow_id="bad"))
    await client.aclose()


@pytest.mark.parametrize(
    ("resource", "payload"),
    [
        ("machines", {"id": str(uuid4()), "unkey_key_id": "k", "status": "connected", "is_available": True,
                      "alerts_enabled": False, "created_at": "2024-01-01T00:00:00Z", "last_seen": "2024-01-01T00:00:00Z"}),
        ("pools", {"id": str(uuid4()), "name": "p", "organization_id": "o", "created_at": "2024-01-01T00:00:00Z",
                   "updated_at": "2024-01-01T00:00:00Z"}),
        ("workflows", {"id": str(uuid4()), "main_prompt": "p", "created_at": "2024-01-01T00:00:00Z",
                       "updated_at": "2024-01-01T00:00:00Z"}),
        ("connections", {"id": str(uuid4()), "websocket_id": "w", "machine_id": str(uuid4()),
                         "connected_at": "2024-01-01T00:00:00Z", "disconnected_at": None,
                         "last_ping": "2024-01-01T00:00:00Z", "status": "connected"}),
        ("trajectories", {"id": str(uuid4()), "workflow_id": WID, "trajectory_data": [], "dimensions": {},
                          "is_approved": True, "has_been_approved": True, "is_generated": True, "is_main": False,
                          "created_at": "2024-01-01T00:00:00Z", "updated_at": "2024-01-01T00:00:00Z"}),
    ],
)  # fmt: skip
async def test_every_list_has_iterators(resource: str, payload: dict[str, Any], make_client: Factory) -> None:
    api = Api(paged([payload] * 3))
    client = make_client(api)
    group = getattr(client, resource)
    assert len(list(group.iter_sync(limit=2))) == 3
    assert len([item async for item in group.iter(limit=2)]) == 3
