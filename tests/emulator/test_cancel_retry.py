"""Cancel (PATCH status, clearing a session) and retry in place."""

from __future__ import annotations

import httpx

from cyberdesk.emulator import Emulator

from .conftest import create_run, get_run, mid, wf


async def test_patch_cancel_running_and_scheduling(em: Emulator, client: httpx.AsyncClient) -> None:
    desk = mid(em, "bos-desk-01")
    running = await create_run(client, wf(em), machine_id=desk)
    waiting = await create_run(client, wf(em), machine_id=desk)
    em.advance(5)
    response = await client.patch(f"/v1/runs/{running['id']}", json={"status": "cancelled"})
    assert response.status_code == 200
    assert response.json()["status"] == "cancelled"
    assert response.json()["ended_at"] == "2026-01-01T00:00:05+00:00"
    assert (await get_run(client, waiting["id"]))["status"] == "running"  # the desktop was freed
    cancelled = await client.patch(f"/v1/runs/{waiting['id']}", json={"status": "cancelled"})
    assert cancelled.json()["status"] == "cancelled"
    em.advance(500)
    assert em.run(running["id"]).status == "cancelled"  # its old completion never fires
    assert em.overlaps() == []


async def test_patch_to_non_terminal_status_is_a_conflict(em: Emulator, client: httpx.AsyncClient) -> None:
    run = await create_run(client, wf(em))
    assert (await get_run(client, run["id"]))["status"] == "running"
    response = await client.patch(f"/v1/runs/{run['id']}", json={"status": "scheduling"})
    assert response.status_code == 409
    assert isinstance(response.json()["detail"], str)


async def test_patch_other_fields_leaves_status(em: Emulator, client: httpx.AsyncClient) -> None:
    run = await create_run(client, wf(em))
    body = (await client.patch(f"/v1/runs/{run['id']}", json={"usage_metadata": {"tokens": 5}})).json()
    assert body["usage_metadata"] == {"tokens": 5} and body["status"] == "running"


async def test_start_session_reserves_and_clearing_cancels(em: Emulator, client: httpx.AsyncClient) -> None:
    desk = mid(em, "chi-desk-01")
    first = await create_run(client, wf(em), machine_id=desk, start_session=True)
    assert first["session_id"] == first["id"]
    em.process_due()
    machine = (await client.get(f"/v1/machines/{desk}")).json()
    assert machine["reserved_session_id"] == first["id"] and machine["is_available"] is False
    follow_up = await create_run(client, wf(em), session_id=first["id"])
    outsider = await create_run(client, wf(em), machine_id=desk)
    em.advance(100)
    assert em.run(follow_up["id"]).status == "running"
    assert em.run(follow_up["id"]).machine_id == desk
    em.advance(100)
    assert em.run(outsider["id"]).status == "scheduling"  # the desktop stays reserved for its session

    response = await client.patch(f"/v1/machines/{desk}", json={"reserved_session_id": None})
    assert response.status_code == 200 and response.json()["reserved_session_id"] is None
    # Clearing cancels the scheduling/running runs on that desktop, then matching resumes.
    assert em.run(outsider["id"]).status == "cancelled"
    newcomer = await create_run(client, wf(em), machine_id=desk)
    assert (await get_run(client, newcomer["id"]))["status"] == "running"


async def test_clear_session_cancels_the_running_run(em: Emulator, client: httpx.AsyncClient) -> None:
    desk = mid(em, "chi-desk-02")
    run = await create_run(client, wf(em), machine_id=desk, start_session=True)
    em.advance(10)
    await client.patch(f"/v1/machines/{desk}", json={"reserved_session_id": None})
    cancelled = await get_run(client, run["id"])
    assert cancelled["status"] == "cancelled" and cancelled["ended_at"] == "2026-01-01T00:00:10+00:00"


async def test_retry_in_place(make_emulator: object, em: Emulator, client: httpx.AsyncClient) -> None:
    run = await create_run(client, wf(em), input_values={"claim_id": "C-1"})
    early = await client.post(
        f"/v1/runs/{run['id']}/retry", json={"reuse_session": True, "start_session": False}
    )
    assert early.status_code == 409  # only terminal runs can be retried
    em.advance(100)
    first = await get_run(client, run["id"])
    assert first["status"] == "success" and first["output_data"] is not None
    em.advance(50)
    retry = await client.post(
        f"/v1/runs/{run['id']}/retry",
        json={
            "input_values": {"claim_id": "C-2"},
            "reuse_session": True,
            "start_session": False,
            "is_priority": True,
        },
    )
    assert retry.status_code == 200
    body = retry.json()
    assert body["id"] == run["id"]
    assert body["status"] == "scheduling"
    assert body["output_data"] is None and body["started_at"] is None and body["ended_at"] is None
    assert body["input_values"] == {"claim_id": "C-2"} and body["is_priority"] is True
    assert body["created_at"] == run["created_at"]
    em.advance(100)
    again = await get_run(client, run["id"])
    assert again["status"] == "success"
    assert "claim C-2" in again["output_data"]["resolved_prompt"]
    assert len(em.run(run["id"]).executions) == 2
    listed = (await client.get("/v1/runs")).json()
    assert listed["total"] == 1  # retried in place: no new run


async def test_retry_on_another_desktop_and_new_session(em: Emulator, client: httpx.AsyncClient) -> None:
    run = await create_run(client, wf(em), machine_id=mid(em, "bos-desk-01"))
    em.advance(100)
    target = mid(em, "nyc-desk-04")
    body = (
        await client.post(f"/v1/runs/{run['id']}/retry", json={"machine_id": target, "start_session": True})
    ).json()
    assert body["session_id"] is not None and body["session_id"] != run["id"]
    assert (await get_run(client, run["id"]))["machine_id"] == target
    assert em.machine(target).reserved_session_id == body["session_id"]


async def test_delete_run_frees_the_desktop(em: Emulator, client: httpx.AsyncClient) -> None:
    desk = mid(em, "bos-desk-03")
    first = await create_run(client, wf(em), machine_id=desk)
    second = await create_run(client, wf(em), machine_id=desk)
    em.process_due()
    response = await client.delete(f"/v1/runs/{first['id']}")
    assert response.status_code == 204 and response.content == b""
    assert (await client.get(f"/v1/runs/{first['id']}")).status_code == 404
    assert (await get_run(client, second["id"]))["status"] == "running"
