"""Idempotency-Key: replay, conflict, in-progress, and a dropped response retried with the same key."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import httpx
import pytest

from cyberdesk.emulator import Emulator, ResponseDropped

from .conftest import asgi_client, wf


async def test_same_key_same_body_replays_the_original(em: Emulator, client: httpx.AsyncClient) -> None:
    body = {"workflow_id": wf(em), "input_values": {"claim_id": "C-1"}}
    first = await client.post("/v1/runs", json=body, headers={"Idempotency-Key": "key-1"})
    em.advance(100)  # the run moved on; the replay is still the original reply
    second = await client.post("/v1/runs", json=body, headers={"Idempotency-Key": "key-1"})
    assert first.status_code == second.status_code == 201
    assert first.content == second.content
    assert second.headers["idempotency-replayed"] == "true"
    listed = (await client.get("/v1/runs")).json()
    assert listed["total"] == 1
    stats = (await client.get("/_emulator/stats")).json()
    assert stats["runs"]["created"] == 1 and stats["runs"]["create_replays"] == 1
    assert stats["duplicates"] == []


async def test_same_key_different_body_or_path_is_rejected(em: Emulator, client: httpx.AsyncClient) -> None:
    headers = {"Idempotency-Key": "key-2"}
    await client.post("/v1/runs", json={"workflow_id": wf(em)}, headers=headers)
    other_body = await client.post(
        "/v1/runs", json={"workflow_id": wf(em), "is_priority": True}, headers=headers
    )
    assert other_body.status_code == 409
    assert "idempotency-status" not in other_body.headers
    assert "different request" in other_body.json()["detail"]
    other_path = await client.post("/v1/pools", json={"name": "x"}, headers=headers)
    assert other_path.status_code == 409
    assert (await client.get("/v1/runs")).json()["total"] == 1
    assert len(em.world.pools) == 2


async def test_keys_are_scoped_per_write_and_gets_ignore_them(
    em: Emulator, client: httpx.AsyncClient
) -> None:
    for key in ("a", "b"):
        response = await client.post(
            "/v1/runs", json={"workflow_id": wf(em)}, headers={"Idempotency-Key": key}
        )
        assert response.status_code == 201
    assert (await client.get("/v1/runs", headers={"Idempotency-Key": "a"})).status_code == 200
    assert (await client.get("/v1/runs")).json()["total"] == 2


async def test_in_progress_request_gets_409_with_header(em: Emulator, client: httpx.AsyncClient) -> None:
    em.set_faults(latency_ms=200)
    body = {"workflow_id": wf(em)}
    headers = {"Idempotency-Key": "slow"}
    first = asyncio.create_task(client.post("/v1/runs", json=body, headers=headers))
    await asyncio.sleep(0.05)
    concurrent = await client.post("/v1/runs", json=body, headers=headers)
    assert concurrent.status_code == 409
    assert concurrent.headers["idempotency-status"] == "in_progress"
    assert (await first).status_code == 201
    em.set_faults(latency_ms=0)
    replay = await client.post("/v1/runs", json=body, headers=headers)
    assert replay.status_code == 201 and replay.content == (await first).content
    assert len(em.world.runs) == 1


async def test_validation_errors_are_replayed_too(em: Emulator, client: httpx.AsyncClient) -> None:
    headers = {"Idempotency-Key": "bad"}
    first = await client.post("/v1/runs", json={}, headers=headers)
    second = await client.post("/v1/runs", json={}, headers=headers)
    assert first.status_code == second.status_code == 422
    assert first.json() == second.json()


async def test_dropped_response_then_retry_creates_exactly_one_run_in_process(
    make_emulator: Callable[..., Emulator],
) -> None:
    em = make_emulator(drop_responses=1.0)
    body = {"workflow_id": wf(em), "input_values": {"claim_id": "C-1"}}
    headers = {"Idempotency-Key": "dropped"}
    async with asgi_client(em) as client:
        with pytest.raises(ResponseDropped):
            await client.post("/v1/runs", json=body, headers=headers)
        assert len(em.world.runs) == 1  # the request was applied before its reply was lost
        em.set_faults(drop_responses=0.0)
        retry = await client.post("/v1/runs", json=body, headers=headers)
    assert retry.status_code == 201
    assert retry.json()["id"] == next(iter(em.world.runs))
    assert len(em.world.runs) == 1
    assert isinstance(ResponseDropped("x"), httpx.TransportError)  # what clients already retry on
