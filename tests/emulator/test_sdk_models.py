"""Responses of every route parse with the project SDK's models, and the SDK client works in-process."""

from __future__ import annotations

import json
from typing import Any

import httpx

from cyberdesk import (
    ConnectionResponse,
    CyberdeskClient,
    DisplayDimensions,
    HTTPValidationError,
    MachineResponse,
    MachineResponseWithIncludes,
    PoolResponse,
    PoolWithMachines,
    RunBulkCreateResponse,
    RunCompletedEvent,
    RunCreate,
    RunResponse,
    RunResponseWithIncludes,
    TrajectoryResponse,
    WorkflowChainResponse,
    WorkflowResponse,
)
from cyberdesk.emulator import Emulator, create_app
from cyberdesk.models.common import Page

from .conftest import create_run, mid, wf


async def _json(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json()


async def test_every_response_parses_with_the_sdk_models(em: Emulator, client: httpx.AsyncClient) -> None:
    desk = mid(em, "bos-desk-01")
    run = await create_run(
        client, wf(em), input_values={"claim_id": "C-1"}, sensitive_input_values={"t": "x"}
    )
    RunResponse.from_dict(run)
    em.advance(100)
    RunResponseWithIncludes.from_dict(
        await _json(await client.get(f"/v1/runs/{run['id']}?include=machine,workflow"))
    )
    for params in ({}, {"include": "workflow,machine,machine.pools"}, {"fields": "output_data"}):
        page = await _json(await client.get("/v1/runs", params=params))
        Page.from_dict(page, RunResponse.from_dict)
    RunResponse.from_dict(
        await _json(await client.patch(f"/v1/runs/{run['id']}", json={"usage_metadata": {}}))
    )
    RunResponse.from_dict(await _json(await client.post(f"/v1/runs/{run['id']}/retry", json={})))
    bulk = RunBulkCreateResponse.from_dict(
        await _json(await client.post("/v1/runs/bulk", json={"workflow_id": wf(em), "count": 2}), 201)
    )
    assert len(bulk.created_runs) == 2
    WorkflowChainResponse.from_dict(
        await _json(await client.post("/v1/runs/chain", json={"steps": [{"workflow_id": wf(em)}]}), 201)
    )

    Page.from_dict(await _json(await client.get("/v1/machines?include=pools")), MachineResponse.from_dict)
    MachineResponseWithIncludes.from_dict(await _json(await client.get(f"/v1/machines/{desk}?include=pools")))
    MachineResponse.from_dict(
        await _json(await client.patch(f"/v1/machines/{desk}", json={"reserved_session_id": None}))
    )
    for pool in await _json(await client.get(f"/v1/machines/{desk}/pools")):
        PoolResponse.from_dict(pool)
    created = await _json(
        await client.post("/v1/machines", json={"fingerprint": "f", "unkey_key_id": "k", "name": "m"}), 201
    )
    MachineResponse.from_dict(created)

    Page.from_dict(await _json(await client.get("/v1/pools?include=machines")), PoolResponse.from_dict)
    pool = PoolResponse.from_dict(await _json(await client.post("/v1/pools", json={"name": "p"}), 201))
    PoolWithMachines.from_dict(
        await _json(await client.post(f"/v1/pools/{pool.id}/machines", json={"machine_ids": [created["id"]]}))
    )

    Page.from_dict(await _json(await client.get("/v1/workflows")), WorkflowResponse.from_dict)
    WorkflowResponse.from_dict(await _json(await client.get(f"/v1/workflows/{wf(em)}")))
    copy = WorkflowResponse.from_dict(
        await _json(await client.post(f"/v1/workflows/{wf(em)}/duplicate"), 201)
    )

    Page.from_dict(await _json(await client.get("/v1/connections")), ConnectionResponse.from_dict)
    ConnectionResponse.from_dict(
        await _json(await client.post("/v1/connections", json={"websocket_id": "w", "machine_id": desk}), 201)
    )

    trajectory = await _json(
        await client.post(
            "/v1/trajectories",
            json={
                "workflow_id": str(copy.id),
                "run_id": run["id"],
                "trajectory_data": [{"step": 1}],
                "dimensions": {"width": 1024, "height": 768},
            },
        ),
        201,
    )
    TrajectoryResponse.from_dict(trajectory)
    TrajectoryResponse.from_dict(await _json(await client.get(f"/v1/workflows/{copy.id}/latest-trajectory")))
    TrajectoryResponse.from_dict(await _json(await client.get(f"/v1/runs/{run['id']}/trajectory")))
    Page.from_dict(
        await _json(await client.get("/v1/trajectories?is_generated=false")), TrajectoryResponse.from_dict
    )

    DisplayDimensions.from_dict(await _json(await client.get(f"/v1/computer/{desk}/display/dimensions")))
    HTTPValidationError.from_dict(await _json(await client.post("/v1/runs", json={}), 422))


async def test_webhook_event_parses_as_run_completed_event(make_emulator: Any) -> None:
    received: list[bytes] = []

    def handle(request: httpx.Request) -> httpx.Response:
        received.append(request.content)
        return httpx.Response(200)

    em = make_emulator(webhook_transport=httpx.MockTransport(handle))
    em.add_webhook_endpoint("https://hooks.test/", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
    em.create_run(wf(em))
    em.run_until_idle()
    await em.deliver_webhooks()
    event = RunCompletedEvent.from_dict(json.loads(received[0]))
    assert getattr(event.run.status, "value", event.run.status) == "success"


async def test_sdk_client_against_the_in_process_emulator(em: Emulator) -> None:
    client = CyberdeskClient(
        em.api_key, base_url="http://emulator", async_transport=httpx.ASGITransport(app=create_app(em))
    )
    try:
        created = await client.runs.create(RunCreate(workflow_id=wf(em), input_values={"claim_id": "C-1"}))
        assert created.error is None and created.data is not None
        em.advance(100)
        fetched = await client.runs.get(created.data.id)
        assert fetched.error is None and fetched.data is not None
        assert str(fetched.data.id) == str(created.data.id)
        machines = await client.machines.list()
        assert machines.error is None and machines.data is not None and machines.data.total == 12
        seen = [run async for run in client.runs.iter()]
        assert len(seen) == 1
    finally:
        await client.aclose()
