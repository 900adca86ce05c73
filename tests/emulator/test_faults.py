"""Fault injection: deterministic per seed, never on the control plane, switchable at runtime."""

from __future__ import annotations

from collections.abc import Callable

import httpx

from cyberdesk.emulator import Emulator, ResponseDropped

from .conftest import asgi_client, wf


async def _statuses(em: Emulator, n: int = 60) -> list[int | str]:
    seen: list[int | str] = []
    async with asgi_client(em) as client:
        for i in range(n):
            try:
                response = await client.post(
                    "/v1/runs", json={"workflow_id": wf(em)}, headers={"Idempotency-Key": f"k{i}"}
                )
                seen.append(response.status_code)
            except ResponseDropped:
                seen.append("dropped")
    return seen


async def test_same_seed_same_sequence(make_emulator: Callable[..., Emulator]) -> None:
    faults = {"rate_limit": 0.2, "server_errors": 0.2, "drop_responses": 0.2}
    first = await _statuses(make_emulator(seed=3, **faults))
    second = await _statuses(make_emulator(seed=3, **faults))
    other = await _statuses(make_emulator(seed=4, **faults))
    assert first == second
    assert first != other
    assert {429, 500, 503, 201, "dropped"} <= set(first)


async def test_rate_limit_reply(make_emulator: Callable[..., Emulator]) -> None:
    em = make_emulator(rate_limit=1.0)
    async with asgi_client(em) as client:
        response = await client.get("/v1/runs")
        assert response.status_code == 429
        assert response.headers["retry-after"] == "1"
        assert isinstance(response.json()["detail"], str)
        # Never on the control plane or health.
        assert (await client.get("/v1/health")).status_code == 200
        assert (await client.get("/_emulator/stats")).status_code == 200
        stats = (await client.get("/_emulator/stats")).json()
    assert stats["faults"]["rate_limited"] == 1
    assert stats["requests"]["GET /v1/runs"] == {"429": 1}


async def test_server_errors_are_not_applied(make_emulator: Callable[..., Emulator]) -> None:
    em = make_emulator(server_errors=1.0)
    async with asgi_client(em) as client:
        response = await client.post(
            "/v1/runs", json={"workflow_id": wf(em)}, headers={"Idempotency-Key": "k"}
        )
        assert response.status_code in (500, 503)
        assert em.world.runs == {}
        em.set_faults(server_errors=0.0)
        # The key was not consumed by the rejected attempt: the retry runs for real.
        retry = await client.post("/v1/runs", json={"workflow_id": wf(em)}, headers={"Idempotency-Key": "k"})
        assert retry.status_code == 201 and len(em.world.runs) == 1


async def test_faults_switch_at_runtime(em: Emulator, client: httpx.AsyncClient) -> None:
    assert (await client.get("/v1/machines")).status_code == 200
    response = await client.post("/_emulator/faults", json={"rate_limit": 1.0})
    assert response.json()["rate_limit"] == 1.0
    assert (await client.get("/v1/machines")).status_code == 429
    await client.post("/_emulator/faults", json={"rate_limit": 0})
    assert (await client.get("/v1/machines")).status_code == 200
    invalid = await client.post("/_emulator/faults", json={"rate_limit": 2})
    assert invalid.status_code == 422
    assert (await client.get("/_emulator/faults")).json() == {
        "rate_limit": 0.0,
        "server_errors": 0.0,
        "drop_responses": 0.0,
        "latency_ms": 0.0,
    }
