"""Run lifecycle and placement: scheduling -> running -> terminal, one run per desktop, pools, priority."""

from __future__ import annotations

from collections.abc import Callable

import httpx

from cyberdesk.emulator import Emulator, ManualClock

from .conftest import CLAIM_INPUTS, START, create_run, get_run, mid, wf


async def test_run_goes_scheduling_running_success(em: Emulator, client: httpx.AsyncClient) -> None:
    run = await create_run(client, wf(em), input_values=CLAIM_INPUTS)
    assert run["status"] == "scheduling"
    assert run["started_at"] is None and run["ended_at"] is None and run["machine_id"] is None

    running = await get_run(client, run["id"])  # every request first applies due transitions
    assert running["status"] == "running"
    assert running["machine_id"] is not None
    assert running["started_at"] == "2026-01-01T00:00:00+00:00" and running["ended_at"] is None

    em.advance(99)
    assert (await get_run(client, run["id"]))["status"] == "running"
    em.advance(1)
    done = await get_run(client, run["id"])
    assert done["status"] == "success"
    assert done["ended_at"] == "2026-01-01T00:01:40+00:00"
    assert done["error"] is None


async def test_speed_divides_simulated_durations(make_emulator: Callable[..., Emulator]) -> None:
    em = make_emulator(speed=100, run_duration="300-300")
    run = em.create_run(wf(em))
    em.process_due()
    em.advance(2.99)
    assert run.status == "running"
    em.advance(0.01)
    assert run.status == "success"


async def test_one_run_per_desktop_and_fifo(em: Emulator, client: httpx.AsyncClient) -> None:
    desk = mid(em, "bos-desk-01")
    ids = [(await create_run(client, wf(em), machine_id=desk))["id"] for _ in range(3)]
    em.process_due()
    assert [em.run(i).status for i in ids] == ["running", "scheduling", "scheduling"]
    em.advance(100)
    assert [em.run(i).status for i in ids] == ["success", "running", "scheduling"]
    # The next run starts exactly when the desktop frees up, even within one advance.
    em.advance(200)
    runs = [em.run(i) for i in ids]
    assert [r.status for r in runs] == ["success"] * 3
    assert [r.started_at for r in runs] == [START, START + 100, START + 200]
    assert em.overlaps() == []


async def test_all_desktops_busy_keeps_runs_waiting(em: Emulator, client: httpx.AsyncClient) -> None:
    ids = [(await create_run(client, wf(em)))["id"] for _ in range(15)]
    em.process_due()
    statuses = [em.run(i).status for i in ids]
    assert statuses.count("running") == 12 and statuses.count("scheduling") == 3
    machines = {em.run(i).machine_id for i in ids if em.run(i).status == "running"}
    assert len(machines) == 12
    em.advance(100)
    assert [em.run(i).status for i in ids[12:]] == ["running"] * 3
    em.run_until_idle()
    assert all(em.run(i).status == "success" for i in ids)
    assert em.overlaps() == []


async def test_pool_intersection(em: Emulator, client: httpx.AsyncClient) -> None:
    billing = em.pool("billing").id
    claims = em.pool("claims-team").id
    # A desktop in both pools is the only one a run asking for both may use.
    both = em.add_machine("both-desk", pools=["billing", "claims-team"])
    for name in ["chi-desk-01", "chi-desk-02", "chi-desk-03", "chi-desk-04"]:
        em.disconnect(name)
    runs = [(await create_run(client, wf(em), pool_ids=[billing, claims]))["id"] for _ in range(2)]
    billing_only = (await create_run(client, wf(em), pool_ids=[billing]))["id"]
    em.process_due()
    assert em.run(runs[0]).machine_id == both.id
    assert em.run(runs[1]).status == "scheduling"
    assert em.run(billing_only).status == "scheduling"  # its only connected desktop is busy
    em.advance(100)
    assert em.run(runs[1]).machine_id == both.id
    claims_desks = {m.id for m in em.world.machines_of(em.pool("claims-team"))}
    run = await create_run(client, wf(em), pool_ids=[claims])
    em.process_due()
    assert em.run(run["id"]).machine_id in claims_desks


async def test_priority_runs_are_placed_first(em: Emulator, client: httpx.AsyncClient) -> None:
    desk = mid(em, "nyc-desk-02")
    first = await create_run(client, wf(em), machine_id=desk)
    normal = await create_run(client, wf(em), machine_id=desk)
    urgent = await create_run(client, wf(em), machine_id=desk, is_priority=True)
    em.process_due()
    assert em.run(first["id"]).status == "running"
    em.advance(100)
    assert em.run(urgent["id"]).status == "running"
    assert em.run(normal["id"]).status == "scheduling"
    em.advance(100)
    assert em.run(normal["id"]).status == "running"


async def test_disconnect_errors_running_run_and_stops_placement(
    em: Emulator, client: httpx.AsyncClient
) -> None:
    desk = mid(em, "chi-desk-03")
    running = await create_run(client, wf(em), machine_id=desk)
    waiting = await create_run(client, wf(em), machine_id=desk)
    em.process_due()
    em.advance(10)
    response = await client.patch(f"/v1/machines/{desk}", json={"status": "disconnected"})
    assert response.status_code == 200 and response.json()["status"] == "disconnected"
    failed = await get_run(client, running["id"])
    assert failed["status"] == "error"
    assert failed["error"] == ["Desktop disconnected"]
    assert failed["ended_at"] == "2026-01-01T00:00:10+00:00"
    em.advance(1000)
    assert em.run(waiting["id"]).status == "scheduling"
    connections = (await client.get("/v1/connections", params={"machine_id": desk})).json()["items"]
    assert [c["status"] for c in connections] == ["disconnected"]
    assert connections[0]["disconnected_at"] is not None

    await client.patch(f"/v1/machines/{desk}", json={"status": "connected"})
    assert (await get_run(client, waiting["id"]))["status"] == "running"
    assert em.overlaps() == []


async def test_fixture_schedule_disconnects_and_reconnects(make_emulator: Callable[..., Emulator]) -> None:
    fixture = {
        "machines": [{"name": "flaky", "disconnect_at": 50, "reconnect_at": 200}],
        "workflows": [{"name": "w", "prompt": "p"}],
    }
    em = make_emulator(fixture=fixture, speed=2)
    run = em.create_run(em.workflow("w").id)
    em.process_due()
    em.advance(25)  # 50 simulated seconds at speed 2
    assert run.status == "error" and run.error == ["Desktop disconnected"]
    second = em.create_run(em.workflow("w").id)
    em.advance(74)
    assert second.status == "scheduling"
    em.advance(1)
    assert second.status == "running"
    assert em.machine("flaky").status == "connected"


async def test_draining_a_desktop_with_is_available_false(em: Emulator, client: httpx.AsyncClient) -> None:
    desk = mid(em, "bos-desk-02")
    response = await client.patch(f"/v1/machines/{desk}", json={"is_available": False})
    assert response.json()["is_available"] is False
    run = await create_run(client, wf(em), machine_id=desk)
    em.advance(500)
    assert em.run(run["id"]).status == "scheduling"
    await client.patch(f"/v1/machines/{desk}", json={"is_available": True})
    assert (await get_run(client, run["id"]))["status"] == "running"


async def test_machine_created_through_api_takes_runs(em: Emulator, client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/v1/machines",
        json={
            "fingerprint": "fp-1",
            "unkey_key_id": "key-1",
            "name": "new-desk",
            "machine_parameters": {"site": "x"},
        },
    )
    assert response.status_code == 201
    machine = response.json()
    assert machine["status"] == "connected" and machine["is_available"] is True
    run = await create_run(client, wf(em), machine_id=machine["id"])
    assert (await get_run(client, run["id"]))["machine_id"] == machine["id"]


async def test_failure_rate_and_fail_rules(make_emulator: Callable[..., Emulator]) -> None:
    fixture = {
        "machines": [{"name": "d1"}, {"name": "d2"}],
        "workflows": [
            {
                "name": "claims",
                "prompt": "submit {claim_id}",
                "run_duration": "5-5",
                "fail_when": [
                    {
                        "input": "claim_id",
                        "equals": "C-13",
                        "status": "task_failed",
                        "error": "Claim C-13 rejected",
                    },
                    {"input": "claim_id", "equals": "C-99", "status": "error", "machine": "d2"},
                ],
            },
            {"name": "flaky", "prompt": "p", "failure_rate": 1.0},
        ],
    }
    em = make_emulator(fixture=fixture)
    claims = em.workflow("claims").id
    rejected = em.create_run(claims, input_values={"claim_id": "C-13"})
    fine = em.create_run(claims, input_values={"claim_id": "C-14"})
    em.run_until_idle()
    assert (rejected.status, rejected.error) == ("task_failed", ["Claim C-13 rejected"])
    assert fine.status == "success"
    assert rejected.ended_at == rejected.started_at + 5  # type: ignore[operator]
    on_d1 = em.create_run(claims, machine_id=em.machine("d1").id, input_values={"claim_id": "C-99"})
    on_d2 = em.create_run(claims, machine_id=em.machine("d2").id, input_values={"claim_id": "C-99"})
    flaky = em.create_run(em.workflow("flaky").id)
    em.run_until_idle()
    assert on_d1.status == "success" and on_d2.status == "error"
    assert flaky.status in ("task_failed", "error") and flaky.error


async def test_same_seed_same_outcomes(make_emulator: Callable[..., Emulator]) -> None:
    def outcomes() -> list[tuple[str, float | None, str | None]]:
        em = make_emulator(seed=42, failure_rate=0.3, run_duration="30-300", clock=ManualClock(START))
        runs = [em.create_run(wf(em)) for _ in range(40)]
        em.run_until_idle()
        return [(r.status, r.ended_at, r.machine_id) for r in runs]

    assert outcomes() == outcomes()
