"""`results` of a multi-step job's fire: each step's output under `output.<alias>.<key>` (unaliased steps by their
number), from the final attempt only, for succeeded, retried and failed items, in csv, jsonl and json."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

from cyberdesk_runner.results.export import export_results
from cyberdesk_runner.results.formats import Format

from .harness import Harness

FIXTURE: dict[str, Any] = {
    "pools": [{"name": "clinic"}],
    "machines": [{"name": f"desk-{i}", "pools": ["clinic"]} for i in range(1, 4)],
    "workflows": [
        {
            "name": "Sign in",
            "prompt": "Sign in for {patient_id}",
            "output_schema": {"type": "object", "properties": {"chart_id": {"type": "string"}}},
        },
        {
            "name": "Look up",
            "prompt": "Look up {chart}",
            "output_schema": {
                "type": "object",
                "properties": {
                    "visits": {
                        "type": "array",
                        "minItems": 2,
                        "items": {"type": "object", "properties": {"date": {"type": "string"}}},
                    },
                    "ward": {"type": "string"},
                },
            },
            "fail_when": [{"input": "patient_id", "equals": "p-bad", "error": "chart of p-bad is locked"}],
        },
        {
            "name": "Update",
            "prompt": "Update {chart} of {patient_id}",
            "output_schema": {"type": "object", "properties": {"updated": {"const": True}}},
            "fail_when": [{"input": "patient_id", "equals": "p-flaky", "error": "EHR timed out"}],
        },
    ],
}

JOB = """\
name: charts
target: {pool: clinic}
items: [{patient_id: p-1}, {patient_id: p-flaky}, {patient_id: p-bad}]
retry: {max_attempts: 2, backoff: 1s}
steps:
  - workflow: Sign in
    alias: signin
  - workflow: Look up
    inputs:
      chart: {$ref: signin.outputs.chart_id}
  - workflow: Update
    alias: update
    inputs:
      chart: {$ref: signin.outputs.chart_id}
"""

OUTPUT_COLUMNS = [
    "output.signin.chart_id",
    "output.2.visits",
    "output.2.ward",
    "output.update.updated",
]


def _export(h: Harness, fire_id: str, fmt: Format) -> str:
    out = io.StringIO(newline="")
    export_results(h.store, fire_id, "charts", out, fmt)
    return out.getvalue()


async def _fire_with_failed_retried_and_multi_step_items(h: Harness) -> str:
    fire_id = await h.trigger("charts")
    # p-flaky's first chain fails at its last step; once it has, that step recovers. p-bad fails at step 2.
    for _ in range(100):
        await h.cycle()
        if any("EHR timed out" in (a["error"] or [""])[-1] for a in h.rows("attempt")):
            break
        await h.advance(10)
    update = next(w for w in h.emulator.world.workflows.values() if w.name == "Update")
    update.fail_when = []
    await h.run_until_idle()
    return fire_id


async def test_results_of_multi_step_items_name_each_steps_output_by_alias_or_number(tmp_path: Path) -> None:
    async with Harness(tmp_path, {"charts": JOB}, fixture=FIXTURE, failure_rate=0.0) as h:
        fire_id = await _fire_with_failed_retried_and_multi_step_items(h)
        attempts = h.rows("attempt")
        steps = h.rows("step_run")
        items = {i["inputs"]["patient_id"]: i for i in h.rows("item")}

        def final_steps(patient: str) -> dict[int, dict[str, Any]]:
            item = items[patient]
            [final] = [a for a in attempts if a["item_id"] == item["id"] and a["number"] == item["attempts"]]
            return {s["step_index"]: s for s in steps if s["attempt_id"] == final["id"]}

        text = _export(h, fire_id, "csv")
        header = next(csv.reader(io.StringIO(text, newline="")))
        assert header == ["item", "seq", "status", "attempts", "desktop", "run_id", "patient_id"] + [
            *OUTPUT_COLUMNS,
            "tokens",
            "billed_seconds",
            "files",
            "error",
        ]
        rows = {r["patient_id"]: r for r in csv.DictReader(io.StringIO(text, newline=""))}
        assert list(rows) == ["p-1", "p-flaky", "p-bad"]

        ok, flaky, bad = rows["p-1"], rows["p-flaky"], rows["p-bad"]
        assert (ok["status"], ok["attempts"], ok["error"]) == ("succeeded", "1", "")
        # The retried item shows its second chain's outputs, not the first's.
        assert (flaky["status"], flaky["attempts"], flaky["error"]) == ("succeeded", "2", "")
        assert (bad["status"], bad["attempts"]) == ("failed", "2")
        for patient in ("p-1", "p-flaky"):
            final = final_steps(patient)
            row = rows[patient]
            assert row["run_id"] == final[0]["run_id"]  # the chain's first run
            assert row["output.signin.chart_id"] == final[0]["output"]["chart_id"]
            assert json.loads(row["output.2.visits"]) == final[1]["output"]["visits"]  # nested -> JSON text
            assert len(json.loads(row["output.2.visits"])) == 2
            assert row["output.2.ward"] == final[1]["output"]["ward"]
            assert row["output.update.updated"] == "true"
        first_flaky = [
            s["output"]
            for s in steps
            if s["step_index"] == 0
            and s["attempt_id"]
            in {a["id"] for a in attempts if a["item_id"] == items["p-flaky"]["id"] and a["number"] == 1}
        ]
        assert first_flaky and first_flaky[0]["chart_id"] != flaky["output.signin.chart_id"]
        # The failed item: its steps' outputs as far as they ran; the step cancelled after the failure has none.
        final = final_steps("p-bad")
        assert [final[i]["status"] for i in range(3)] == ["success", "task_failed", "cancelled"]
        assert bad["output.signin.chart_id"] == final[0]["output"]["chart_id"]
        assert bad["output.update.updated"] == ""
        assert "step 2 (Look up)" in bad["error"] and "chart of p-bad is locked" in bad["error"]

        # JSON Lines and JSON carry the same rows and columns, with empty cells as null.
        for fmt in ("jsonl", "json"):
            out = _export(h, fire_id, fmt)
            as_json = [json.loads(line) for line in out.splitlines()] if fmt == "jsonl" else json.loads(out)
            assert [list(r) for r in as_json] == [header] * 3
            by_patient = {r["patient_id"]: r for r in as_json}
            assert by_patient["p-bad"]["output.update.updated"] is None
            assert by_patient["p-1"]["output.update.updated"] is True
            assert by_patient["p-flaky"]["output.signin.chart_id"] == flaky["output.signin.chart_id"]
            assert isinstance(by_patient["p-1"]["output.2.visits"], str)
            assert by_patient["p-bad"]["attempts"] == 2 and by_patient["p-bad"]["error"] == bad["error"]

        # --status keeps the planned columns of the rows it keeps.
        only_failed = io.StringIO(newline="")
        export_results(h.store, fire_id, "charts", only_failed, "csv", status="failed")
        [failed_row] = list(csv.DictReader(io.StringIO(only_failed.getvalue(), newline="")))
        assert failed_row["patient_id"] == "p-bad" and "output.update.updated" not in failed_row
