"""`results` on a store a real daemon filled (failure rate 0.3, a task that always fails, retries, a sensitive
input): one row per item in each format, the final attempt's run and outputs, masked secrets."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

import pytest
from cli_support import SECRET, Env

from cyberdesk_runner.store.views import AttemptQuery

LEADING = ["item", "seq", "status", "attempts", "desktop", "run_id"]


def _claims_fire(env: Env) -> str:
    store = env.store()
    try:
        fire_id = store.results.latest_finished_fire("claims")
    finally:
        store.close()
    assert fire_id is not None
    return fire_id


def _final_attempts(env: Env, fire_id: str) -> dict[str, Any]:
    store = env.store()
    try:
        attempts = store.queries.attempt_views(AttemptQuery(fire_id=fire_id, limit=10_000))
        items = {i.id: i for i in store.queries.item_views(fire_id)}
    finally:
        store.close()
    return {a.item_id: a for a in attempts if a.number == items[a.item_id].attempts}


def _csv(env: Env, *args: str) -> list[dict[str, str]]:
    result = env.cli("results", *args)
    assert result.exit_code == 0, result.output
    assert SECRET not in result.output
    return list(csv.DictReader(io.StringIO(result.stdout, newline="")))


def test_csv_has_one_row_per_item_with_the_final_run(history: Env) -> None:
    fire_id = _claims_fire(history)
    result = history.cli("results", fire_id)
    assert result.exit_code == 0, result.output
    header = next(csv.reader(io.StringIO(result.stdout)))
    # Stable order: fixed columns, inputs (sensitive ones last, masked), outputs, error.
    assert header[:6] == LEADING
    assert header[6:8] == ["claim_id", "token"]
    assert header[-1] == "error"
    assert {"output.resolved_prompt", "output.inputs", "output.machine_name"} <= set(header[8:-1])
    assert b"\r\n" in result.stdout_bytes  # RFC 4180 line ends, as the csv module writes them

    rows = _csv(history, fire_id)
    assert [r["claim_id"] for r in rows] == ["C-1", "C-2", "C-3", "C-4", "C-5", "C-BAD"]
    assert [int(r["seq"]) for r in rows] == sorted(int(r["seq"]) for r in rows)
    assert all(r["token"] == "***" for r in rows)
    finals = _final_attempts(history, fire_id)
    for row in rows:
        final = finals[row["item"]]
        assert row["run_id"] == final.run_id
        assert row["desktop"] == final.machine_name
        assert int(row["attempts"]) == final.number
        # Nested outputs are JSON text of the final run's output.
        assert json.loads(row["output.inputs"])["claim_id"] == row["claim_id"]
    bad = rows[-1]
    assert bad["status"] == "failed" and bad["attempts"] == "2"
    assert "the portal rejected claim C-BAD" in bad["error"]


def test_a_retried_item_shows_its_last_attempt(history: Env) -> None:
    store = history.store()
    try:
        fires = store.queries.fire_views(limit=100)
    finally:
        store.close()
    rows = [r for f in fires if f.job_name != "claims" for r in _csv(history, f.id)]
    rows += _csv(history, _claims_fire(history))
    retried = [r for r in rows if int(r["attempts"]) > 1 and r["status"] == "succeeded"]
    assert retried, "the history run (failure rate 0.3) retries some items to success"
    # The row is the final, successful run: it has its run id and outputs, whatever the earlier runs were.
    assert all(r["run_id"] and r["output.resolved_prompt"] for r in retried)


@pytest.mark.parametrize("fmt", ["jsonl", "json"])
def test_json_formats_carry_the_same_rows_as_csv(history: Env, fmt: str) -> None:
    fire_id = _claims_fire(history)
    result = history.cli("results", fire_id, "--format", fmt)
    assert result.exit_code == 0, result.output
    assert SECRET not in result.stdout
    if fmt == "jsonl":
        rows = [json.loads(line) for line in result.stdout.splitlines()]
    else:
        rows = json.loads(result.stdout)
    as_csv = _csv(history, fire_id)
    assert [r["item"] for r in rows] == [r["item"] for r in as_csv]
    assert list(rows[0]) == list(as_csv[0])  # the same columns in the same order
    assert rows[-1]["attempts"] == 2 and rows[-1]["token"] == "***"
    assert isinstance(rows[0]["output.inputs"], str)  # nested values are JSON text in every format


def test_job_name_means_its_latest_finished_fire_and_status_filters(history: Env, tmp_path: Any) -> None:
    by_job = _csv(history, "claims", "--status", "failed")
    everything = _csv(history, _claims_fire(history))
    assert by_job == [r for r in everything if r["status"] == "failed"]
    assert "C-BAD" in [r["claim_id"] for r in by_job]
    target = tmp_path / "out.csv"
    result = history.cli("results", "claims", "--output", str(target))
    assert result.exit_code == 0, result.output
    assert result.stdout == ""
    with target.open(newline="") as written:
        assert [r["claim_id"] for r in csv.DictReader(written)][-1] == "C-BAD"


def test_unknown_fire_or_job_and_bad_format(history: Env) -> None:
    assert history.cli("results", "fire_nope").exit_code == 3
    assert history.cli("results", "no-such-job").exit_code == 3
    bad = history.cli("results", "claims", "--format", "xml")
    assert bad.exit_code == 2 and "csv" in bad.output
