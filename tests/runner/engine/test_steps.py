"""Multi-step jobs: one Cyberdesk chain per item attempt, its step runs tracked like single runs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from cyberdesk_runner.cli.show import collect, render
from cyberdesk_runner.store.views import Ref

from .harness import Harness
from .test_after_jobs import render_text

FIXTURE: dict[str, Any] = {
    "pools": [{"name": "clinic"}],
    "machines": [{"name": f"desk-{i}", "pools": ["clinic"]} for i in range(1, 4)],
    "workflows": [
        {
            "name": "Sign in",
            "prompt": "Sign in for {patient_id}",
            "output_schema": {
                "type": "object",
                "properties": {"chart_id": {"type": "string"}, "patient_id": {"type": "string"}},
            },
        },
        {
            "name": "Update",
            "prompt": "Update {chart} of {patient_id} with {note}",
            "fail_when": [{"input": "patient_id", "equals": "p-bad"}],
        },
        {"name": "Sign out", "prompt": "Sign out of {chart}"},
    ],
}


def _job(fan_out: str = "items", patients: tuple[str, ...] = ("p-1", "p-2"), attempts: int = 1) -> str:
    items = ", ".join(f"{{patient_id: {p}}}" for p in patients)
    return f"""\
name: update-patient
target: {{pool: clinic}}
fan_out: {fan_out}
items: [{items}]
retry: {{max_attempts: {attempts}, backoff: 1s}}
steps:
  - workflow: Sign in
    alias: signin
  - workflow: Update
    alias: update
    inputs:
      chart: {{$ref: signin.outputs.chart_id}}
      note: checked
  - workflow: Sign out
    inputs:
      chart: {{$ref: signin.outputs.chart_id}}
"""


def _chain_calls(h: Harness) -> int:
    return sum(
        sum(codes.values()) for route, codes in h.stats()["requests"].items() if route.endswith("/chain")
    )


def _single_creates(h: Harness) -> int:
    return sum(
        sum(codes.values()) for route, codes in h.stats()["requests"].items() if route == "POST /v1/runs"
    )


@pytest.mark.parametrize("fan_out", ["items", "machines"])
async def test_steps_run_as_one_chain_per_item_with_outputs_flowing_through_refs(
    tmp_path: Path, fan_out: str
) -> None:
    async with Harness(tmp_path, {"update-patient": _job(fan_out)}, fixture=FIXTURE, failure_rate=0.0) as h:
        await h.trigger("update-patient")
        await h.run_until_idle()
        items = h.rows("item")
        expected = 2 if fan_out == "items" else 2 * 3  # machines: every item on every desktop
        assert len(items) == expected and {i["status"] for i in items} == {"succeeded"}
        attempts = h.rows("attempt")
        assert len(attempts) == expected and _chain_calls(h) == expected and _single_creates(h) == 0
        steps = h.rows("step_run")
        assert len(steps) == 3 * expected and {s["status"] for s in steps} == {"success"}
        runs = {r.id: r for r in h.emulator_runs()}
        for attempt in attempts:
            chain = sorted(
                (s for s in steps if s["attempt_id"] == attempt["id"]), key=lambda s: s["step_index"]
            )
            assert attempt["run_id"] == chain[0]["run_id"]
            signin, update, signout = (runs[s["run_id"]] for s in chain)
            # One desktop for the whole chain: the attempt's.
            assert {signin.machine_id, update.machine_id, signout.machine_id} == {attempt["machine_id"]}
            chart = signin.output_data["chart_id"]
            assert chain[0]["output"]["chart_id"] == chart
            # The $ref was resolved by the API from the first step's output; the item's values are shared.
            item = next(i for i in items if i["id"] == attempt["item_id"])
            assert update.resolved_inputs == {
                "patient_id": item["inputs"]["patient_id"],
                "chart": chart,
                "note": "checked",
            }
            assert signout.resolved_inputs["chart"] == chart
            assert attempt["output"] == chain[2]["output"]  # the attempt's output is the last step's
        if fan_out == "machines":
            assert {a["machine_id"] for a in attempts} == {m.id for m in h.emulator.world.machines.values()}


async def test_a_failing_middle_step_cancels_the_rest_and_the_item_is_retried_from_the_first_step(
    tmp_path: Path,
) -> None:
    job = _job(patients=("p-bad",), attempts=2)
    async with Harness(tmp_path, {"update-patient": job}, fixture=FIXTURE, failure_rate=0.0) as h:
        await h.trigger("update-patient")
        await h.run_until_idle()
        [item] = h.rows("item")
        assert item["status"] == "failed"
        attempts = sorted(h.rows("attempt"), key=lambda a: a["number"])
        assert [a["number"] for a in attempts] == [1, 2] and _chain_calls(h) == 2
        for attempt in attempts:
            chain = sorted(
                (s for s in h.rows("step_run") if s["attempt_id"] == attempt["id"]),
                key=lambda s: s["step_index"],
            )
            # Each attempt is a chain from the first step.
            assert [s["status"] for s in chain] == ["success", "task_failed", "cancelled"]
            assert attempt["status"] == "task_failed"
            assert "step 2 (update: Update) ended task_failed" in attempt["error"][0]
        assert "step 2 (update: Update)" in (item["last_error"] or "")
        # `show` of the attempt lists each step; `runs` says which step each attempt reached.
        last = attempts[-1]
        ref = Ref("attempt", last["id"], "update-patient", last["fire_id"], last["item_id"])
        shown = collect(h.store, ref, datetime.now(UTC), None)
        steps = shown["attempt"]["steps"]
        assert [(s["workflow"], s["status"]) for s in steps] == [
            ("Sign in", "success"),
            ("Update", "task_failed"),
            ("Sign out", "cancelled"),
        ]
        assert (
            steps[0]["output"]["chart_id"] and steps[1]["error"] and shown["attempt"]["step"] == "2/3 Update"
        )
        text = render_text(render(shown))
        assert "Steps of attempt 2" in text and steps[2]["run_id"] in text
        # Log events name the step.
        kinds = {
            (e["kind"], (e["data"] or {}).get("step"))
            for e in h.rows("event")
            if e["attempt_id"] == last["id"]
        }
        assert {("step_success", 1), ("step_task_failed", 2)} <= kinds


@pytest.mark.parametrize("call_made", [False, True])
async def test_a_crash_between_recording_and_the_chain_call_is_settled_with_the_same_key(
    tmp_path: Path, call_made: bool
) -> None:
    job = {"update-patient": _job(patients=("p-1",))}
    async with Harness(tmp_path, job, fixture=FIXTURE, failure_rate=0.0) as h:
        await h.trigger("update-patient")
        await h.runtime.plan_requested_fires()
        dispatcher = h.runtime.dispatcher
        [ref] = h.store.dispatch.assign(h.clock.now(), dispatcher._choose, lease=timedelta(seconds=30))
        if call_made:
            # The chain call reaches the API; the daemon dies before recording its answer.
            async def crash(_created: Any) -> None:
                raise RuntimeError("killed")

            dispatcher._record_created = crash
            dispatcher._start([ref], h.clock.now())
            await dispatcher.drain()
            assert len(h.emulator_runs()) == 3
        [attempt] = h.rows("attempt")
        assert attempt["status"] == "creating" and not h.rows("step_run")
        # Another daemon repeats the call with the same key once the claim lapses: never a second chain.
        h.clock.advance(31)
        restarted = await h.restarted()
        await restarted.dispatch_round()
        await restarted.dispatcher.drain()
        h.runtime = restarted
        await h.run_until_idle()
        [attempt] = h.rows("attempt")
        assert attempt["status"] == "success"
        assert len(h.emulator_runs()) == 3 and len(h.rows("step_run")) == 3
        assert _chain_calls(h) == (2 if call_made else 1)
        if call_made:
            assert h.stats()["idempotency"]["replays"] >= 1 and h.stats()["idempotency"]["conflicts"] == 0


async def test_a_lost_webhook_on_a_step_is_made_up_by_polling(tmp_path: Path) -> None:
    async with Harness(
        tmp_path, {"update-patient": _job(patients=("p-1",))}, fixture=FIXTURE, failure_rate=0.0
    ) as h:
        update_id = next(w.id for w in h.emulator.world.workflows.values() if w.name == "Update")
        enqueue = h.emulator.webhooks.enqueue
        lost: list[str] = []

        def losing_updates(event: dict[str, Any], msg_id: str) -> None:
            run = event.get("run") or {}
            if run.get("workflow_id") == update_id:
                lost.append(run["id"])  # the middle step's webhook never arrives
                return
            enqueue(event, msg_id)

        h.emulator.webhooks.enqueue = losing_updates  # type: ignore[method-assign]
        await h.trigger("update-patient")
        await h.run_until_idle()
        [attempt] = h.rows("attempt")
        assert lost and attempt["status"] == "success"
        assert {s["status"] for s in h.rows("step_run")} == {"success"}
        heard = {
            (e["run_id"], (e["data"] or {}).get("source"))
            for e in h.rows("event")
            if e["kind"] == "step_success"
        }
        assert (lost[0], "poll") in heard
