"""Bulk creation and chains on one session desktop."""

from __future__ import annotations

import httpx

from cyberdesk.emulator import Emulator

from .conftest import get_run, mid, wf


async def test_bulk_create(em: Emulator, client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/v1/runs/bulk",
        json={
            "workflow_id": wf(em),
            "count": 30,
            "is_priority": False,
            "start_session": False,
            "input_values": {"claim_id": "C-9"},
        },
    )
    assert response.status_code == 201
    body = response.json()
    assert body["failed_count"] == 0 and body["errors"] == []
    runs = body["created_runs"]
    assert len(runs) == 30 and len({r["id"] for r in runs}) == 30
    assert all(r["status"] == "scheduling" and "machine_id" in r for r in runs)
    em.run_until_idle()
    assert all(em.run(r["id"]).status == "success" for r in runs)
    assert em.overlaps() == []
    stats = (await client.get("/_emulator/stats")).json()
    assert stats["runs"]["created"] == 30


async def test_bulk_limits_are_validated(em: Emulator, client: httpx.AsyncClient) -> None:
    for count in (0, 1001):
        response = await client.post("/v1/runs/bulk", json={"workflow_id": wf(em), "count": count})
        assert response.status_code == 422
        assert response.json()["detail"][0]["loc"] == ["body", "count"]
    ok = await client.post("/v1/runs/bulk", json={"workflow_id": wf(em), "count": 1000})
    assert ok.status_code == 201 and len(ok.json()["created_runs"]) == 1000


async def test_bulk_with_session_runs_in_order_on_one_desktop(
    em: Emulator, client: httpx.AsyncClient
) -> None:
    body = (
        await client.post("/v1/runs/bulk", json={"workflow_id": wf(em), "count": 3, "start_session": True})
    ).json()
    runs = body["created_runs"]
    session = runs[0]["session_id"]
    assert session is not None and all(r["session_id"] == session for r in runs)
    em.run_until_idle()
    placed = [em.run(r["id"]) for r in runs]
    assert len({r.machine_id for r in placed}) == 1
    starts = [r.started_at for r in placed]
    assert starts == sorted(starts) and len(set(starts)) == 3


async def test_chain_runs_steps_in_order_on_one_session_desktop(
    em: Emulator, client: httpx.AsyncClient
) -> None:
    desk = mid(em, "chi-desk-04")
    response = await client.post(
        "/v1/runs/chain",
        json={
            "steps": [
                {"workflow_id": wf(em), "session_alias": "claim", "inputs": {"claim_id": "C-5"}},
                {
                    "workflow_id": wf(em, "Update patient record"),
                    "inputs": {"patient_id": {"$ref": "claim.outputs.inputs.claim_id"}},
                },
                {"workflow_id": wf(em, "Reconcile invoices")},
            ],
            "shared_inputs": {"month": "May"},
            "machine_id": desk,
            "is_priority": False,
            "keep_session_after_completion": False,
        },
    )
    assert response.status_code == 201
    body = response.json()
    run_ids = body["run_ids"]
    assert body["session_id"] == run_ids[0] and len(run_ids) == 3
    em.process_due()
    assert [em.run(i).status for i in run_ids] == ["running", "scheduling", "scheduling"]
    assert em.machine(desk).reserved_session_id == body["session_id"]
    em.advance(100)
    assert [em.run(i).status for i in run_ids] == ["success", "running", "scheduling"]
    em.advance(200)
    steps = [await get_run(client, i) for i in run_ids]
    assert [s["status"] for s in steps] == ["success"] * 3
    assert {s["machine_id"] for s in steps} == {desk}
    assert "open patient C-5" in steps[1]["output_data"]["resolved_prompt"]  # $ref to step 1's output
    assert steps[2]["input_values"] == {"month": "May"}
    # keep_session_after_completion=false: the last step released the desktop.
    assert em.machine(desk).reserved_session_id is None


async def test_chain_joining_an_existing_session(em: Emulator, client: httpx.AsyncClient) -> None:
    desk = mid(em, "bos-desk-04")
    first = (
        await client.post("/v1/runs", json={"workflow_id": wf(em), "machine_id": desk, "start_session": True})
    ).json()
    body = (
        await client.post(
            "/v1/runs/chain",
            json={
                "steps": [{"workflow_id": wf(em)}],
                "session_id": first["session_id"],
                "keep_session_after_completion": True,
            },
        )
    ).json()
    assert body["session_id"] == first["id"]
    em.advance(200)
    assert em.run(body["run_ids"][0]).machine_id == desk
    assert em.machine(desk).reserved_session_id == first["id"]


async def test_chain_and_bulk_validate_references(em: Emulator, client: httpx.AsyncClient) -> None:
    unknown = "00000000-0000-4000-8000-000000000000"
    chain = await client.post(
        "/v1/runs/chain", json={"steps": [{"workflow_id": wf(em)}, {"workflow_id": unknown}]}
    )
    assert chain.status_code == 404 and chain.json() == {"detail": "Workflow not found"}
    assert (await client.get("/v1/runs")).json()["total"] == 0  # nothing half-created
    empty = await client.post("/v1/runs/chain", json={"steps": []})
    assert empty.status_code == 422
    bulk = await client.post("/v1/runs/bulk", json={"workflow_id": unknown, "count": 1})
    assert bulk.status_code == 404
