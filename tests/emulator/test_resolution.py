"""Desktop parameters override run inputs; secrets never appear in clear in any response."""

from __future__ import annotations

import json

import httpx

from cyberdesk.emulator import Emulator

from .conftest import create_run, get_run, mid, wf


async def test_machine_parameters_override_inputs_and_prompt_is_resolved(
    em: Emulator, client: httpx.AsyncClient
) -> None:
    run = await create_run(
        client,
        wf(em),
        machine_id=mid(em, "nyc-desk-03"),
        input_values={
            "claim_id": "C-7",
            "patient_name": "Bo Chen",
            "amount": 99.5,
            "username": "someone-else",
        },
    )
    em.advance(100)
    done = await get_run(client, run["id"])
    assert done["input_values"]["username"] == "someone-else"  # the run keeps what was asked
    output = done["output_data"]
    assert output["machine_name"] == "nyc-desk-03"
    assert output["inputs"]["username"] == "svc_nyc_03"  # ...but the desktop's parameter wins
    assert output["inputs"]["claim_id"] == "C-7"
    assert output["resolved_prompt"] == (
        "Open ClaimsPro at https://claims.new-york.example.com, sign in as svc_nyc_03 with password "
        "[sensitive:password], and submit claim C-7 for patient Bo Chen (amount 99.5)."
    )


async def test_pool_parameters_are_defaults_below_run_inputs(em: Emulator, client: httpx.AsyncClient) -> None:
    pool = em.pool("billing")
    response = await client.patch(
        f"/v1/pools/{pool.id}", json={"pool_parameters": {"vendor": "ACME", "month": "May"}}
    )
    assert response.json()["pool_parameters"] == {"vendor": "ACME", "month": "May"}
    run = await create_run(
        client, wf(em, "Reconcile invoices"), pool_ids=[pool.id], input_values={"month": "June"}
    )
    em.advance(100)
    prompt = (await get_run(client, run["id"]))["output_data"]["resolved_prompt"]
    assert prompt.endswith("reconcile the invoices of vendor ACME for June.")


async def test_unknown_placeholders_stay_as_written(em: Emulator, client: httpx.AsyncClient) -> None:
    run = await create_run(client, wf(em, "Update patient record"), input_values={"patient_id": "P-1"})
    em.advance(100)
    prompt = (await get_run(client, run["id"]))["output_data"]["resolved_prompt"]
    assert "open patient P-1 and set the phone number to {phone}." in prompt


async def test_secrets_never_appear_in_clear(em: Emulator, client: httpx.AsyncClient) -> None:
    run_secret = "run-secret-Zq9"
    machine_secret = "desk-secret-Xk2"
    pool_secret = "pool-secret-Ww5"
    created = await client.post(
        "/v1/machines",
        json={
            "fingerprint": "fp",
            "unkey_key_id": "k",
            "name": "vault-desk",
            "machine_sensitive_parameters": {"password": machine_secret},
        },
    )
    machine = created.json()
    assert machine["machine_sensitive_parameters"]["password"].startswith("tok_")
    pool = (
        await client.post("/v1/pools", json={"name": "p", "pool_sensitive_parameters": {"pin": pool_secret}})
    ).json()
    assert pool["pool_sensitive_parameters"]["pin"].startswith("tok_")
    await client.put(f"/v1/machines/{machine['id']}/pools", json={"pool_ids": [pool["id"]]})
    run = await create_run(
        client,
        wf(em),
        machine_id=machine["id"],
        pool_ids=[pool["id"]],
        input_values={"claim_id": "C-1"},
        sensitive_input_values={"api_token": run_secret, "nested": {"deep": run_secret}},
    )
    assert set(run["sensitive_input_aliases"]) == {"api_token", "nested"}
    assert all(alias.startswith("tok_") for alias in run["sensitive_input_aliases"].values())
    bulk = await client.post(
        "/v1/runs/bulk",
        json={"workflow_id": wf(em), "count": 2, "sensitive_input_values": {"api_token": run_secret}},
    )
    chain = await client.post(
        "/v1/runs/chain",
        json={
            "steps": [{"workflow_id": wf(em), "sensitive_inputs": {"x": run_secret}}],
            "shared_sensitive_inputs": {"y": run_secret},
        },
    )
    em.advance(1000)
    bodies = [created.text, bulk.text, chain.text]
    for path in [
        "/v1/runs",
        f"/v1/runs/{run['id']}",
        "/v1/machines",
        f"/v1/machines/{machine['id']}",
        "/v1/pools",
        f"/v1/pools/{pool['id']}?include_machines=true",
        "/_emulator/runs",
        "/_emulator/stats",
        "/v1/runs?include=machine,machine.pools,workflow",
        f"/v1/machines/{machine['id']}/pools",
    ]:
        response = await client.get(path)
        assert response.status_code == 200, path
        bodies.append(response.text)
    everything = "\n".join(bodies)
    for secret in (run_secret, machine_secret, pool_secret, "demo-bos-01-S3cret!"):
        assert secret not in everything
    done = em.run(run["id"])
    assert done.output_data is not None
    assert "[sensitive:password]" in done.output_data["resolved_prompt"]
    assert "api_token" not in json.dumps(done.output_data["inputs"])


async def test_sensitive_parameters_can_be_replaced_and_cleared(
    em: Emulator, client: httpx.AsyncClient
) -> None:
    desk = mid(em, "bos-desk-01")
    old_alias = em.machine(desk).sensitive["password"]  # type: ignore[index]
    assert em.world.vault[old_alias] == "demo-bos-01-S3cret!"
    body = (
        await client.patch(f"/v1/machines/{desk}", json={"machine_sensitive_parameters": {"password": "n"}})
    ).json()
    new_alias = body["machine_sensitive_parameters"]["password"]
    assert new_alias != old_alias and old_alias not in em.world.vault
    cleared = (await client.patch(f"/v1/machines/{desk}", json={"machine_sensitive_parameters": {}})).json()
    assert cleared["machine_sensitive_parameters"] == {}
    # Absent fields stay as they were.
    unchanged = (await client.patch(f"/v1/machines/{desk}", json={"name": "renamed"})).json()
    assert unchanged["machine_parameters"]["site"] == "boston" and unchanged["name"] == "renamed"
