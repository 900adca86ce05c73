"""Wire format: status codes, auth, error bodies, pagination, required keys, formats, every route."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

import httpx
import pytest

from cyberdesk.emulator import Emulator

from .conftest import asgi_client, create_run, mid, wf

UNKNOWN = "00000000-0000-4000-8000-000000000000"
UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")


def assert_aware(value: str) -> None:
    assert datetime.fromisoformat(value).tzinfo is not None, value


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic x"}])
async def test_missing_or_wrong_key_is_401(em: Emulator, headers: dict[str, str]) -> None:
    async with asgi_client(em, headers=headers) as client:
        response = await client.get("/v1/runs")
        assert response.status_code == 401
        assert response.json() == {"detail": "Invalid or missing API key"}
        assert (await client.get("/v1/health")).status_code == 200  # health needs no key


async def test_unknown_ids_are_404_with_detail(client: httpx.AsyncClient) -> None:
    expected = {
        f"/v1/runs/{UNKNOWN}": "Run not found",
        f"/v1/machines/{UNKNOWN}": "Machine not found",
        f"/v1/pools/{UNKNOWN}": "Pool not found",
        f"/v1/workflows/{UNKNOWN}": "Workflow not found",
        f"/v1/connections/{UNKNOWN}": "Connection not found",
        f"/v1/trajectories/{UNKNOWN}": "Trajectory not found",
        "/v1/computer/nope/display/dimensions": "Machine not found",
    }
    for path, detail in expected.items():
        response = await client.get(path)
        assert (response.status_code, response.json()) == (404, {"detail": detail}), path
    assert (await client.delete(f"/v1/runs/{UNKNOWN}")).status_code == 404


async def test_validation_errors_are_fastapi_422s(em: Emulator, client: httpx.AsyncClient) -> None:
    cases = [
        client.post("/v1/runs", json={"workflow_id": "not-a-uuid"}),
        client.get("/v1/runs/not-a-uuid"),
        client.get("/v1/runs", params={"status": "done"}),
        client.get("/v1/runs", params={"fields": "bogus"}),
        client.get("/v1/runs", params={"limit": 0}),
        client.post("/v1/workflows", json={"name": "no prompt"}),
        client.patch(f"/v1/machines/{mid(em, 'bos-desk-01')}", json={"status": "active"}),
        client.post(
            "/v1/trajectories", json={"workflow_id": wf(em), "trajectory_data": [], "dimensions": {}}
        ),
    ]
    for call in cases:
        response = await call
        assert response.status_code == 422, response.request.url
        detail = response.json()["detail"]
        assert isinstance(detail, list) and detail
        assert {"loc", "msg", "type"} <= set(detail[0])


async def test_pagination_envelope(em: Emulator, client: httpx.AsyncClient) -> None:
    page = (await client.get("/v1/machines")).json()
    assert (page["total"], page["skip"], page["limit"], len(page["items"])) == (12, 0, 100, 12)
    assert page["included"] is None
    assert [m["name"] for m in page["items"]][:2] == ["bos-desk-01", "bos-desk-02"]
    second = (await client.get("/v1/machines", params={"skip": 10, "limit": 5})).json()
    assert (second["total"], second["skip"], second["limit"], len(second["items"])) == (12, 10, 5, 2)
    connections = (await client.get("/v1/connections")).json()
    assert set(connections) == {"items", "total", "skip", "limit"}  # no `included` on this one
    for _ in range(3):
        await create_run(client, wf(em))
    runs = (await client.get("/v1/runs", params={"limit": 2, "sort_mode": "created_at_desc"})).json()
    assert (runs["total"], len(runs["items"])) == (3, 2)


async def test_run_list_filters_projection_and_includes(em: Emulator, client: httpx.AsyncClient) -> None:
    desk = mid(em, "bos-desk-01")
    pinned = [
        await create_run(client, wf(em), machine_id=desk, input_values={"claim_id": f"C-{i}"})
        for i in range(3)
    ]
    other = await create_run(client, wf(em, "Reconcile invoices"), start_session=True)
    em.process_due()

    async def ids(**params: Any) -> list[str]:
        response = await client.get("/v1/runs", params=params)
        assert response.status_code == 200, response.text
        return [r["id"] for r in response.json()["items"]]

    assert set(await ids(machine_id=desk)) == {r["id"] for r in pinned}
    assert await ids(status="running", workflow_id=wf(em)) == [pinned[0]["id"]]
    assert await ids(session_id=other["id"]) == [other["id"]]
    assert await ids(search="c-2") == [pinned[2]["id"]]
    assert await ids(sort_mode="created_at_desc") == [other["id"], *[r["id"] for r in reversed(pinned)]]
    em.advance(100)
    # activity: active runs first (newest first), then the most recently ended.
    assert await ids() == [pinned[2]["id"], pinned[1]["id"], other["id"], pinned[0]["id"]]
    assert await ids(created_at_from="2026-01-01T00:00:00+00:00", created_at_to="2026-01-01T00:00:00Z") != []
    assert await ids(created_at_from="2026-01-02T00:00:00+00:00") == []
    projected = (await client.get("/v1/runs", params=[("fields", "error"), ("fields", "output_data")])).json()
    assert set(projected["items"][0]) == {
        "id",
        "workflow_id",
        "machine_id",
        "status",
        "created_at",
        "error",
        "output_data",
    }
    included = (await client.get("/v1/runs", params={"include": "workflow,machine.pools"})).json()["included"]
    assert {i["type"] for i in included} == {"workflow", "machine", "pool"}
    assert len({(i["type"], i["id"]) for i in included}) == len(included)  # de-duplicated
    single = (await client.get(f"/v1/runs/{pinned[0]['id']}", params={"include": "machine"})).json()
    assert single["included"][0]["type"] == "machine" and single["included"][0]["name"] == "bos-desk-01"


async def test_literal_routes_win_over_ids(em: Emulator, client: httpx.AsyncClient) -> None:
    assert (await client.post("/v1/runs/bulk", json={"workflow_id": wf(em), "count": 1})).status_code == 201
    assert (await client.post("/v1/runs/chain", json={"steps": [{"workflow_id": wf(em)}]})).status_code == 201


async def test_required_keys_and_formats(em: Emulator, client: httpx.AsyncClient) -> None:
    run = await create_run(client, wf(em))
    assert run["machine_id"] is None and "machine_id" in run
    assert UUID_RE.match(run["id"]) and UUID_RE.match(run["workflow_id"])
    assert_aware(run["created_at"])
    machine = (await client.get(f"/v1/machines/{mid(em, 'bos-desk-01')}")).json()
    for key in ("id", "unkey_key_id", "status", "is_available", "alerts_enabled", "created_at", "last_seen"):
        assert key in machine
    assert_aware(machine["last_seen"])
    connection = (await client.get("/v1/connections", params={"machine_id": machine["id"]})).json()["items"][
        0
    ]
    assert connection["disconnected_at"] is None and connection["status"] == "connected"
    pool = (await client.get("/v1/pools")).json()["items"][0]
    assert {"id", "name", "organization_id", "created_at", "updated_at"} <= set(pool)
    assert pool["machine_count"] == 8


async def test_every_route_answers_with_its_documented_code(em: Emulator, client: httpx.AsyncClient) -> None:
    desk = mid(em, "bos-desk-01")
    # machines
    created = await client.post("/v1/machines", json={"fingerprint": "f", "unkey_key_id": "k", "name": "m"})
    assert created.status_code == 201
    machine_id = created.json()["id"]
    assert (await client.get("/v1/machines", params={"include": "pools"})).json()["included"]
    assert (await client.patch(f"/v1/machines/{machine_id}", json={"alerts_enabled": True})).json()[
        "alerts_enabled"
    ]
    pools = await client.get(f"/v1/machines/{desk}/pools")
    assert [p["name"] for p in pools.json()] == ["claims-team"]
    billing = em.pool("billing").id
    moved = await client.put(f"/v1/machines/{machine_id}/pools", json={"pool_ids": [billing]})
    assert moved.status_code == 200 and moved.json()["id"] == machine_id
    # pools
    pool = await client.post("/v1/pools", json={"name": "night-shift", "description": "d"})
    assert pool.status_code == 201
    pool_id = pool.json()["id"]
    added = await client.post(f"/v1/pools/{pool_id}/machines", json={"machine_ids": [machine_id, desk]})
    assert added.status_code == 200 and len(added.json()["machines"]) == 2
    assert (await client.get(f"/v1/pools/{pool_id}", params={"include": "machines"})).json()["included"]
    assert (await client.get(f"/v1/pools/{pool_id}", params={"include_machines": "true"})).json()["machines"]
    assert (await client.patch(f"/v1/pools/{pool_id}", json={"name": "late"})).json()["name"] == "late"
    removed = await client.request("DELETE", f"/v1/pools/{pool_id}/machines", json={"machine_ids": [desk]})
    assert (removed.status_code, removed.content) == (204, b"")
    assert (await client.get("/v1/pools", params={"include": "machines"})).json()["total"] == 3
    assert (await client.delete(f"/v1/pools/{pool_id}")).status_code == 204
    # workflows
    workflow = await client.post(
        "/v1/workflows",
        json={
            "main_prompt": "Do {x}",
            "name": "w",
            "includes_file_exports": False,
            "is_webhooks_enabled": False,
        },
    )
    assert workflow.status_code == 201
    workflow_id = workflow.json()["id"]
    assert (await client.get(f"/v1/workflows/{workflow_id}")).json()["tags"] == []
    updated = await client.patch(f"/v1/workflows/{workflow_id}", json={"main_prompt": "Do {y}"})
    assert updated.json()["old_versions"][0]["main_prompt"] == "Do {x}"
    assert (await client.get(f"/v1/workflows/{workflow_id}/versions")).json()[0]["main_prompt"] == "Do {x}"
    copy = await client.post(f"/v1/workflows/{workflow_id}/duplicate", json={"include_trajectories": False})
    assert copy.status_code == 201 and copy.json()["name"] == "(Copy) w"
    listing = (await client.get("/v1/workflows", params={"include_tags": "false"})).json()
    assert listing["items"][0]["id"] == copy.json()["id"]  # most recently updated first
    assert (await client.get(f"/v1/workflows/{workflow_id}/latest-trajectory")).status_code == 404
    # trajectories
    trajectory = await client.post(
        "/v1/trajectories",
        json={
            "workflow_id": workflow_id,
            "trajectory_data": [{"action": "click"}],
            "dimensions": {"width": 1, "height": 1},
            "is_approved": False,
        },
    )
    assert trajectory.status_code == 201
    trajectory_id = trajectory.json()["id"]
    assert (await client.get(f"/v1/workflows/{workflow_id}/latest-trajectory")).json()["id"] == trajectory_id
    approved = await client.patch(f"/v1/trajectories/{trajectory_id}", json={"is_approved": True})
    assert approved.json()["has_been_approved"] is True
    dup = await client.post(f"/v1/trajectories/{trajectory_id}/duplicate")
    assert dup.status_code == 201 and dup.json()["is_approved"] is False
    assert (await client.get("/v1/trajectories", params={"is_generated": "false"})).json()["total"] == 2
    assert (await client.get("/v1/trajectories", params={"is_generated": "true"})).json()["total"] == 0
    assert (await client.get(f"/v1/trajectories/{trajectory_id}", params={"include": "workflow"})).json()[
        "included"
    ]
    assert (await client.delete(f"/v1/trajectories/{dup.json()['id']}")).status_code == 204
    # runs + their trajectory
    run = await create_run(client, workflow_id)
    assert (await client.get(f"/v1/runs/{run['id']}/trajectory")).status_code == 404
    await client.post(
        "/v1/trajectories",
        json={
            "workflow_id": workflow_id,
            "run_id": run["id"],
            "trajectory_data": [{}],
            "dimensions": {"width": 1},
        },
    )
    assert (await client.get(f"/v1/runs/{run['id']}/trajectory")).json()["run_id"] == run["id"]
    assert (await client.post(f"/v1/runs/{run['id']}/generate-trajectory")).json()["is_generated"] is True
    # connections
    conn = await client.post("/v1/connections", json={"websocket_id": "ws-1", "machine_id": machine_id})
    assert conn.status_code == 201 and conn.json()["disconnected_at"] is None
    conn_id = conn.json()["id"]
    assert (await client.get(f"/v1/connections/{conn_id}")).json()["websocket_id"] == "ws-1"
    closed = await client.patch(
        f"/v1/connections/{conn_id}",
        json={"status": "disconnected", "disconnected_at": "2026-01-01T00:00:00Z"},
    )
    assert closed.json()["status"] == "disconnected" and closed.json()["disconnected_at"].startswith(
        "2026-01-01"
    )
    assert (await client.get("/v1/connections", params={"status": "disconnected"})).json()["total"] == 1
    assert (await client.delete(f"/v1/connections/{conn_id}")).status_code == 204
    # computer
    shot = await client.get(f"/v1/computer/{desk}/display/screenshot")
    assert shot.status_code == 200 and shot.headers["content-type"] == "image/png"
    assert shot.content.startswith(b"\x89PNG\r\n\x1a\n") and len(shot.content) < 50_000
    assert (await client.get(f"/v1/computer/{desk}/display/dimensions")).json() == {
        "width": 1024,
        "height": 768,
    }
    # deletes cascade
    assert (await client.delete(f"/v1/workflows/{workflow_id}")).status_code == 204
    assert (await client.get(f"/v1/runs/{run['id']}")).status_code == 404
    assert (await client.delete(f"/v1/machines/{machine_id}")).status_code == 204
    assert (await client.get(f"/v1/machines/{machine_id}")).status_code == 404
    # health
    health = (await client.get("/v1/health")).json()
    assert health["status"] == "healthy" and all(isinstance(v, str) for v in health.values())


async def test_screenshot_png_is_valid() -> None:
    import struct
    import zlib

    from cyberdesk.emulator.png import screenshot_png

    data = screenshot_png()
    width, height = struct.unpack(">II", data[16:24])
    assert (width, height) == (1024, 768)
    idat_len = struct.unpack(">I", data[33:37])[0]
    raw = zlib.decompress(data[41 : 41 + idat_len])
    assert len(raw) == height * (1 + 3 * width)


async def test_deleting_a_machine_keeps_its_runs(em: Emulator, client: httpx.AsyncClient) -> None:
    desk = mid(em, "nyc-desk-01")
    running = await create_run(client, wf(em), machine_id=desk)
    em.process_due()
    assert (await client.delete(f"/v1/machines/{desk}")).status_code == 204
    kept = (await client.get(f"/v1/runs/{running['id']}")).json()
    assert kept["machine_id"] is None and kept["status"] == "error"


async def test_stats_and_timeline(em: Emulator, client: httpx.AsyncClient) -> None:
    body = {"workflow_id": wf(em), "is_priority": False, "start_session": False}
    created = await client.post("/v1/runs", json=body, headers={"Idempotency-Key": "key-of-the-run"})
    run = created.json()
    await client.get(f"/v1/runs/{run['id']}")
    await client.get(f"/v1/runs/{run['id']}")
    em.advance(100)
    stats = (await client.get("/_emulator/stats")).json()
    assert stats["requests"]["GET /v1/runs/{run_id}"] == {"200": 2}
    assert stats["requests"]["POST /v1/runs"] == {"201": 1}
    assert stats["runs"]["by_status"] == {"success": 1}
    assert stats["duplicates"] == [] and stats["overlaps"] == 0
    assert set(stats["webhooks"]) >= {"delivered", "failed"}
    timeline = (await client.get("/_emulator/runs")).json()
    entry = timeline["runs"][0]
    assert entry["machine_name"] == "bos-desk-01"
    assert entry["idempotency_key"] == "key-of-the-run"  # which create call made it
    assert entry["started_at"] and entry["ended_at"] and entry["executions"][0]["status"] == "success"
    assert timeline["overlaps"] == []
    advanced = (await client.post("/_emulator/advance", json={"seconds": 60})).json()
    assert advanced["now"] == "2026-01-01T00:02:40+00:00"
    assert (await client.get("/docs")).status_code == 200
    assert "/v1/runs/bulk" in (await client.get("/openapi.json")).json()["paths"]
