"""Outputs generated from a workflow's output_schema, and chain semantics (failures, $refs, sessions)."""

from __future__ import annotations

import json
from typing import Any

import httpx

from cyberdesk.emulator import Emulator
from cyberdesk.emulator.fleet import load_fixture
from cyberdesk.emulator.records import FailRule

from .conftest import get_run, mid, wf

CLAIMS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "source": {"type": "string", "const": "portal"},
        "page": {"type": "integer", "default": 1},
        "region": {"type": "string", "examples": ["east", "west"]},
        "state": {"enum": ["open", "closed"]},
        "claim_id": {"type": "string"},
        "claims": {
            "type": "array",
            "minItems": 4,
            "items": {
                "type": "object",
                "properties": {
                    "claim_id": {"type": "string"},
                    "amount": {"type": "number", "minimum": 100},
                    "filed": {"type": "string", "format": "date"},
                    "contact": {"type": "string", "format": "email"},
                    "urgent": {"type": "boolean"},
                },
            },
        },
        "tags": {"type": "array", "items": {"type": "string"}},
    },
}


def _schema_workflow(em: Emulator, schema: dict[str, Any], name: str = "Extract") -> str:
    return em.add_workflow(name, "Extract for {claim_id}", output_schema=json.dumps(schema)).id


async def test_output_data_conforms_to_the_output_schema(em: Emulator, client: httpx.AsyncClient) -> None:
    workflow_id = _schema_workflow(em, CLAIMS_SCHEMA)
    run = (
        await client.post("/v1/runs", json={"workflow_id": workflow_id, "input_values": {"claim_id": "C-1"}})
    ).json()
    em.run_until_idle()
    out = (await get_run(client, run["id"]))["output_data"]
    assert set(out) == set(CLAIMS_SCHEMA["properties"])
    assert (out["source"], out["page"], out["region"], out["state"]) == ("portal", 1, "east", "open")
    assert out["claim_id"] == "C-1"  # a top-level property named like an input echoes it
    assert len(out["claims"]) == 4 and len(out["tags"]) == 1  # minItems, default 1
    ids = [c["claim_id"] for c in out["claims"]]
    assert len(set(ids)) == 4 and all(isinstance(i, str) and i.startswith("claim_id-") for i in ids)
    assert all(c["amount"] >= 100 and isinstance(c["amount"], float) for c in out["claims"])
    assert all(c["contact"].endswith("@example.com") and c["urgent"] is True for c in out["claims"])
    assert all(len(c["filed"]) == 10 for c in out["claims"])


async def test_generated_outputs_differ_across_runs_and_repeat_with_the_seed(
    make_emulator: Any,
) -> None:
    def outputs(em: Emulator) -> list[Any]:
        workflow_id = _schema_workflow(em, CLAIMS_SCHEMA)
        runs = [em.create_run(workflow_id) for _ in range(2)]
        em.run_until_idle()
        return [r.output_data for r in runs]

    first, again = outputs(make_emulator()), outputs(make_emulator())
    assert first == again
    assert first[0]["claims"][0]["claim_id"] != first[1]["claims"][0]["claim_id"]


def test_fixture_sets_output_schema_as_yaml_or_json_text() -> None:
    fleet = load_fixture(
        {
            "workflows": [
                {"name": "a", "prompt": "p", "output_schema": {"type": "object", "properties": {}}},
                {"name": "b", "prompt": "p", "output_schema": '{"type": "object"}'},
            ]
        }
    )
    assert [json.loads(w.output_schema or "") for w in fleet.workflows] == [
        {"type": "object", "properties": {}},
        {"type": "object"},
    ]


def _chain_body(em: Emulator, desk: str, middle: str = "Update patient record") -> dict[str, Any]:
    return {
        "steps": [
            {"workflow_id": wf(em, "Sign in to EHR"), "session_alias": "signin"},
            {
                "workflow_id": wf(em, middle),
                "session_alias": "update",
                "inputs": {"patient_id": {"$ref": "signin.outputs.chart_id"}},
            },
            {"workflow_id": wf(em, "Reconcile invoices")},
        ],
        "shared_inputs": {"patient_id": "P-1", "phone": "555"},
        "machine_id": desk,
    }


async def test_chain_outputs_flow_through_refs(em: Emulator, client: httpx.AsyncClient) -> None:
    desk = mid(em, "nyc-desk-01")
    body = (await client.post("/v1/runs/chain", json=_chain_body(em, desk))).json()
    em.run_until_idle()
    first, second, third = (em.run(i) for i in body["run_ids"])
    assert first.output_data is not None and first.output_data["patient_id"] == "P-1"
    assert second.resolved_inputs is not None
    assert second.resolved_inputs["patient_id"] == first.output_data["chart_id"]
    assert [first.status, second.status, third.status] == ["success"] * 3
    assert em.machine(desk).reserved_session_id is None


async def test_a_failing_middle_step_cancels_the_later_steps_and_frees_the_desktop(
    em: Emulator, client: httpx.AsyncClient
) -> None:
    em.workflow("Update patient record").fail_when = [FailRule("phone", "555")]
    desk = mid(em, "nyc-desk-02")
    body = {**_chain_body(em, desk), "keep_session_after_completion": True}
    run_ids = (await client.post("/v1/runs/chain", json=body)).json()["run_ids"]
    em.run_until_idle()
    steps = [await get_run(client, i) for i in run_ids]
    assert [s["status"] for s in steps] == ["success", "task_failed", "cancelled"]
    assert steps[2]["error"] == ["Chain step 2 (update) ended task_failed; this later step was cancelled"]
    assert steps[2]["started_at"] is None  # never ran
    assert em.machine(desk).reserved_session_id is None  # released despite keep_session
    again = em.create_run(wf(em), machine_id=desk)  # the desktop takes other work again
    em.run_until_idle()
    assert again.status in ("success", "task_failed", "error")


async def test_a_ref_to_a_missing_output_fails_its_step(em: Emulator, client: httpx.AsyncClient) -> None:
    desk = mid(em, "nyc-desk-03")
    body = _chain_body(em, desk)
    body["steps"][1]["inputs"] = {"patient_id": {"$ref": "signin.outputs.no_such_field"}}
    run_ids = (await client.post("/v1/runs/chain", json=body)).json()["run_ids"]
    em.run_until_idle()
    steps = [em.run(i) for i in run_ids]
    assert [s.status for s in steps] == ["success", "error", "cancelled"]
    assert steps[1].error == [
        "Input 'patient_id': $ref 'signin.outputs.no_such_field' does not resolve to an output"
    ]
    assert steps[2].error == ["Chain step 2 (update) ended error; this later step was cancelled"]


async def test_cancelling_a_running_step_cancels_the_rest(em: Emulator, client: httpx.AsyncClient) -> None:
    desk = mid(em, "nyc-desk-04")
    run_ids = (await client.post("/v1/runs/chain", json=_chain_body(em, desk))).json()["run_ids"]
    em.process_due()
    em.cancel_run(run_ids[0])
    assert [em.run(i).status for i in run_ids] == ["cancelled"] * 3
    assert em.run(run_ids[1]).error == [
        "Chain step 1 (signin) ended cancelled; this later step was cancelled"
    ]
    assert em.machine(desk).reserved_session_id is None
