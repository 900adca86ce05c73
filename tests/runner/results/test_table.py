"""The column plan of a results table: stable order, masked sensitive inputs, step aliases, JSON text."""

from __future__ import annotations

import csv
import io
import json

from cyberdesk_runner.results.formats import write_table
from cyberdesk_runner.results.table import ResultTable, output_values
from cyberdesk_runner.store.results import ResultRow, StepOutput


def _row(seq: int, inputs: dict[str, object], *outputs: StepOutput, status: str = "succeeded") -> ResultRow:
    return ResultRow(f"item_{seq}", seq, status, 1, "desk-1", f"run-{seq}", inputs, outputs, None)


def test_multi_step_outputs_are_prefixed_by_alias_or_step_number() -> None:
    values = output_values(
        [StepOutput("login", {"ok": True}), StepOutput("2", {"rows": [1, 2], "token": "x"})], ["token"]
    )
    assert values == {"output.login.ok": True, "output.2.rows": "[1, 2]", "output.2.token": "***"}


def test_columns_are_stable_and_every_row_has_every_column() -> None:
    rows = [
        _row(1, {"claim": "C-1", "pin": "leaked?"}, StepOutput(None, {"b": 1, "a": {"x": 1}})),
        _row(2, {"claim": "C-2", "status": "odd"}, StepOutput(None, {"c": "z"}), status="failed"),
    ]
    table = ResultTable.plan(rows, ["pin"])
    assert table.columns == [
        *("item", "seq", "status", "attempts", "desktop", "run_id"),
        "claim",
        "input.status",  # an input named like a fixed column keeps its own column
        "pin",
        "output.b",
        "output.a",
        "output.c",
        "tokens",
        "billed_seconds",
        "files",
        "error",
    ]
    out = io.StringIO(newline="")
    assert write_table(out, table, rows, "csv") == 2
    parsed = list(csv.DictReader(io.StringIO(out.getvalue(), newline="")))
    assert [r["pin"] for r in parsed] == ["***", "***"]
    assert "leaked?" not in out.getvalue()
    assert json.loads(parsed[0]["output.a"]) == {"x": 1}
    assert parsed[1]["output.b"] == "" and parsed[1]["output.c"] == "z"


def test_json_array_of_no_rows_is_valid() -> None:
    out = io.StringIO()
    assert write_table(out, ResultTable.plan([], ()), [], "json") == 0
    assert json.loads(out.getvalue()) == []
