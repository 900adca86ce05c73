"""load_items: items_from files and inline items, merged over inputs."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from spec_helpers import VALID_HEAD

from cyberdesk_runner.spec import JobFileError, load_items, load_job_file


def test_csv_rows_become_items_merged_over_inputs(write: Callable[..., Path]) -> None:
    write(
        "data/claims.csv",
        '\ufeffclaim_id, amount ,note\r\nA,1.50,"two\r\nlines"\r\n\r\nB,2,"with, comma"\r\n',
    )
    job = load_job_file(
        write("job.yaml", VALID_HEAD + "items_from: data/claims.csv\ninputs: {note: default, portal: main}\n")
    )
    assert load_items(job) == [
        {"claim_id": "A", "amount": "1.50", "note": "two\r\nlines", "portal": "main"},
        {"claim_id": "B", "amount": "2", "note": "with, comma", "portal": "main"},
    ]


def test_csv_errors_report_the_first_line_of_a_row(write: Callable[..., Path], as_tuples: Callable) -> None:
    write("data/claims.csv", 'claim_id,note\nA,"multi\nline"\nB\n')
    path = write("job.yaml", VALID_HEAD + "items_from: data/claims.csv\n")
    with pytest.raises(JobFileError) as info:
        load_job_file(path)
    assert as_tuples(info.value.errors) == [
        ("claims.csv", 4, None, "", "expected 2 values like the header row, got 1")
    ]


def test_json_lines_keep_their_types(write: Callable[..., Path]) -> None:
    write(
        "data/vendors.jsonl",
        '{"vendor": "Acme", "months": [5, 6], "urgent": true}\n\n   \n{"vendor": "Globex"}',
    )
    job = load_job_file(
        write("job.yaml", VALID_HEAD + "items_from: data/vendors.jsonl\ninputs: {urgent: false}\n")
    )
    assert load_items(job) == [
        {"vendor": "Acme", "months": [5, 6], "urgent": True},
        {"vendor": "Globex", "urgent": False},
    ]


def test_empty_data_files_give_no_items(write: Callable[..., Path]) -> None:
    write("data/none.csv", "claim_id\n")
    write("data/none.jsonl", "")
    for name in ("none.csv", "none.jsonl"):
        job = load_job_file(write("job.yaml", VALID_HEAD + f"items_from: data/{name}\n"))
        assert load_items(job) == []


def test_without_items_a_fire_is_one_run_with_inputs(write: Callable[..., Path]) -> None:
    job = load_job_file(write("job.yaml", VALID_HEAD + "inputs: {site: boston}\n"))
    assert load_items(job) == [{"site": "boston"}]
    assert load_items(load_job_file(write("job.yaml", VALID_HEAD))) == [{}]


def test_inline_items_merged_over_inputs(write: Callable[..., Path]) -> None:
    job = load_job_file(
        write("job.yaml", VALID_HEAD + "inputs: {a: 1, nested: {x: 1}}\nitems:\n  - {b: 2}\n  - {a: 3}\n")
    )
    items = load_items(job)
    assert items == [{"a": 1, "nested": {"x": 1}, "b": 2}, {"a": 3, "nested": {"x": 1}}]
    items[0]["nested"]["x"] = 99  # callers get copies: the spec stays as loaded
    assert job.spec.inputs["nested"] == {"x": 1}
    assert load_items(job)[1]["nested"] == {"x": 1}
    listed = load_job_file(write("job.yaml", VALID_HEAD + "items:\n  - {b: [1]}\n"))
    load_items(listed)[0]["b"].append(2)
    assert load_items(listed) == [{"b": [1]}]


def test_items_file_is_read_again_at_each_call(write: Callable[..., Path], as_tuples: Callable) -> None:
    data = write("data/claims.csv", "claim_id\nA\n")
    job = load_job_file(write("job.yaml", VALID_HEAD + "items_from: data/claims.csv\n"))
    data.write_text("claim_id\nA\nB\n", encoding="utf-8")
    assert load_items(job) == [{"claim_id": "A"}, {"claim_id": "B"}]
    data.write_text("claim_id\nA,extra\n", encoding="utf-8")
    with pytest.raises(JobFileError) as info:
        load_items(job)
    assert as_tuples(info.value.errors) == [
        ("claims.csv", 2, None, "", "expected 1 values like the header row, got 2")
    ]
    data.unlink()
    with pytest.raises(JobFileError) as info:
        load_items(job)
    ((file, line, column, field, message),) = as_tuples(info.value.errors)
    assert (file, line, column, field) == ("job.yaml", 4, 13, "items_from")
    assert message.startswith("file not found: ")


def test_reloading_checks_an_edited_items_file_again(write: Callable[..., Path], as_tuples: Callable) -> None:
    """Reloads skip parsing content already found valid; any edit is checked anew, in its own format."""
    data = write("data/claims.csv", "claim_id\nA\n")
    job_file = write("job.yaml", VALID_HEAD + "items_from: data/claims.csv\n")
    first = load_job_file(job_file)
    assert load_job_file(job_file).definition_hash == first.definition_hash
    data.write_text("claim_id\nA,extra\n", encoding="utf-8")
    with pytest.raises(JobFileError) as info:
        load_job_file(job_file)
    assert as_tuples(info.value.errors) == [
        ("claims.csv", 2, None, "", "expected 1 values like the header row, got 2")
    ]
    data.write_text("claim_id\nA\n", encoding="utf-8")
    assert load_job_file(job_file).definition_hash == first.definition_hash
    # The same bytes, valid as CSV, are not valid JSON Lines.
    write("data/claims.jsonl", "claim_id\nA\n")
    with pytest.raises(JobFileError) as info:
        load_job_file(write("job.yaml", VALID_HEAD + "items_from: data/claims.jsonl\n"))
    assert [(file, line) for file, line, *_ in as_tuples(info.value.errors)] == [
        ("claims.jsonl", 1),
        ("claims.jsonl", 2),
    ]
