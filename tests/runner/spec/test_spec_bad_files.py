"""Every kind of bad job file gives an exact message at the exact file:line:col."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from spec_helpers import VALID_HEAD, ErrorTuple

from cyberdesk_runner.spec import JobFileError, load_job_file

ErrorsOf = Callable[[str], list[ErrorTuple]]


def test_unknown_keys_suggest_the_closest_key(errors_of: ErrorsOf) -> None:
    errors = errors_of(
        VALID_HEAD
        + """\
        retires: 3
        retry:
          max_atempts: 2
          colour: blue
        """.replace("        ", "")
    )
    assert errors == [
        ("job.yaml", 4, 1, "retires", "unknown key 'retires'; did you mean 'retry'?"),
        ("job.yaml", 6, 3, "retry.max_atempts", "unknown key 'max_atempts'; did you mean 'max_attempts'?"),
        (
            "job.yaml",
            7,
            3,
            "retry.colour",
            "unknown key 'colour'; expected one of: max_attempts, backoff, max_backoff, on",
        ),
    ]


def test_unknown_key_in_a_schedule_entry_and_a_target(errors_of: ErrorsOf) -> None:
    errors = errors_of(
        """\
        name: claims
        workflow: w
        target: {pool: p, machine: [a]}
        schedule:
          cron: "0 6 * * *"
          time_zone: UTC
        """
    )
    assert errors == [
        ("job.yaml", 3, 19, "target.machine", "unknown key 'machine'; did you mean 'machines'?"),
        ("job.yaml", 6, 3, "schedule.time_zone", "unknown key 'time_zone'; did you mean 'timezone'?"),
    ]


def test_missing_name_and_workflow_point_at_the_top_of_the_file(errors_of: ErrorsOf) -> None:
    errors = errors_of(
        """\
        # a comment first
        target: {pool: claims-team}
        """
    )
    assert errors == [
        ("job.yaml", 2, 1, "name", "required key is missing"),
        ("job.yaml", 2, 1, "workflow", "required key is missing (or give steps)"),
    ]


def test_missing_target(errors_of: ErrorsOf) -> None:
    assert errors_of("name: a\nworkflow: w\n") == [("job.yaml", 1, 1, "target", "required key is missing")]


@pytest.mark.parametrize("target", ["target: {}", "target:\n  pool:\n", "target:\n  match: {}\n"])
def test_target_needs_pool_machines_or_match(errors_of: ErrorsOf, target: str) -> None:
    errors = errors_of(f"name: a\nworkflow: w\n{target}\n")
    if "match" in target:
        assert errors == [("job.yaml", 4, 3, "target.match", "must not be empty")]
    else:
        assert errors == [("job.yaml", 3, 1, "target", "give at least one of pool, machines or match")]


def test_bad_names_and_values(errors_of: ErrorsOf) -> None:
    errors = errors_of(
        """\
        name: my job
        workflow: ""
        target: {machines: [bos-desk-01, bos-desk-01]}
        concurrency: 0
        priority: maybe
        fan_out: machine
        catchup: sometimes
        overlap: 3
        items: [CLM-1]
        inputs: {1: x}
        """
    )
    assert errors == [
        (
            "job.yaml",
            1,
            7,
            "name",
            "expected 1 to 100 letters, digits, '_', '.' or '-', starting with a letter or digit, got 'my job'",
        ),
        ("job.yaml", 2, 11, "workflow", "must not be empty"),
        ("job.yaml", 3, 34, "target.machines[1]", "'bos-desk-01' is listed twice"),
        ("job.yaml", 4, 14, "concurrency", "must be at least 1, got 0"),
        ("job.yaml", 5, 11, "priority", "expected true or false, got 'maybe'"),
        ("job.yaml", 6, 10, "fan_out", "expected 'items' or 'machines', got 'machine'"),
        ("job.yaml", 7, 10, "catchup", "expected 'none', 'latest' or 'all', got 'sometimes'"),
        ("job.yaml", 8, 10, "overlap", "expected 'forbid', 'allow' or 'replace', got 3"),
        ("job.yaml", 9, 9, "items[0]", "expected a mapping, got 'CLM-1'"),
        ("job.yaml", 10, 10, "inputs[1]", "expected a string, got 1"),
    ]


def test_bad_durations(errors_of: ErrorsOf) -> None:
    errors = errors_of(
        VALID_HEAD
        + "timeout: 30\n"
        + "retry:\n"
        + "  backoff: 30 seconds\n"
        + "  max_backoff: 0s\n"
        + "max_delay: [1h]\n"
    )
    assert errors == [
        (
            "job.yaml",
            4,
            10,
            "timeout",
            "expected a duration like 30s, 15m or 2h, got 30 (a number needs a unit, e.g. 30s or 30m)",
        ),
        ("job.yaml", 6, 12, "retry.backoff", "expected a duration like 30s, 15m or 2h, got '30 seconds'"),
        ("job.yaml", 7, 16, "retry.max_backoff", "must be longer than 0s, got '0s'"),
        ("job.yaml", 8, 1, "max_delay", "expected a duration like 30s, 15m or 2h, got a list"),
    ]


def test_backoff_longer_than_max_backoff(errors_of: ErrorsOf) -> None:
    errors = errors_of(VALID_HEAD + "retry: {backoff: 20m}\n")
    assert errors == [("job.yaml", 4, 18, "retry.backoff", "backoff (20m) is longer than max_backoff (10m)")]


def test_bad_cron_expressions(errors_of: ErrorsOf) -> None:
    errors = errors_of(
        VALID_HEAD
        + """\
schedule:
  - cron: "61 * * * *"
  - cron: "0 6 * *"
  - cron: "0 6 * * 8"
  - cron: "0 6 * * fri-mon"
  - cron: "@reboot"
"""
    )
    assert errors == [
        (
            "job.yaml",
            5,
            11,
            "schedule[0].cron",
            "invalid cron expression '61 * * * *': minute: Error validating expression '61': "
            "the last value (61) is higher than the maximum value (59)",
        ),
        (
            "job.yaml",
            6,
            11,
            "schedule[1].cron",
            "invalid cron expression '0 6 * *': expected 5 fields (minute hour day month day_of_week) "
            "or 6 (second first), got 4",
        ),
        (
            "job.yaml",
            7,
            11,
            "schedule[2].cron",
            "invalid cron expression '0 6 * * 8': day of week: '8' is not a day "
            "(0-7 with 0 and 7 Sunday, or sun-sat)",
        ),
        (
            "job.yaml",
            8,
            11,
            "schedule[3].cron",
            "invalid cron expression '0 6 * * fri-mon': day of week: range 'fri-mon' runs backwards",
        ),
        (
            "job.yaml",
            9,
            11,
            "schedule[4].cron",
            "invalid cron expression '@reboot': unknown macro '@reboot'; use one of "
            "@yearly, @annually, @monthly, @weekly, @daily, @midnight, @hourly",
        ),
    ]


def test_a_cron_expression_that_can_never_match_is_an_error(errors_of: ErrorsOf) -> None:
    errors = errors_of(
        VALID_HEAD
        + """\
schedule:
  - cron: "0 0 30 2 *"
  - cron: "0 9 31 4,6 *"
  - cron: "0 0 29 2 1"
"""
    )
    assert [(e[1], e[3]) for e in errors] == [(5, "schedule[0].cron"), (6, "schedule[1].cron")]
    assert errors[0][4] == (
        "cron expression '0 0 30 2 *' never matches a date (like 30 February): the job would never fire"
    )  # 29 February on a Monday is rare (2016, 2044), not impossible: accepted


def test_unknown_timezone(errors_of: ErrorsOf) -> None:
    errors = errors_of(
        VALID_HEAD
        + """\
schedule:
  - {cron: "0 6 * * *", timezone: America/New_Yrok}
  - {cron: "0 6 * * *", timezone: Mars/Olympus_Mons}
"""
    )
    assert errors == [
        (
            "job.yaml",
            5,
            35,
            "schedule[0].timezone",
            "unknown timezone 'America/New_Yrok'; did you mean 'America/New_York'?",
        ),
        (
            "job.yaml",
            6,
            35,
            "schedule[1].timezone",
            "unknown timezone 'Mars/Olympus_Mons'; use an IANA name like America/New_York or UTC",
        ),
    ]


def test_schedule_entry_needs_exactly_one_kind(errors_of: ErrorsOf) -> None:
    errors = errors_of(
        VALID_HEAD
        + """\
schedule:
  - timezone: UTC
  - interval: 1h
    cron: "* * * * *"
  - at: 2026-01-01T06:00:00
    jitter: 5s
  - interval: 500ms
  - interval: 1h
    start: 2026-02-01T00:00:00
    end: 2026-01-01T00:00:00
  - at: 1767243600
"""
    )
    assert errors == [
        ("job.yaml", 5, 5, "schedule[0]", "give one of cron, interval or at"),
        (
            "job.yaml",
            6,
            15,
            "schedule[1].interval",
            "give only one of cron, interval or at, not cron and interval",
        ),
        ("job.yaml", 9, 13, "schedule[2].jitter", "jitter applies to cron and interval entries, not to at"),
        ("job.yaml", 10, 15, "schedule[3].interval", "must be at least 1s"),
        ("job.yaml", 13, 10, "schedule[4].end", "end must be later than start"),
        (
            "job.yaml",
            14,
            9,
            "schedule[5].at",
            "expected an ISO date-time like 2026-01-31T06:00:00, got 1767243600",
        ),
    ]


def test_items_and_items_from_together(errors_of: ErrorsOf) -> None:
    errors = errors_of(VALID_HEAD + "items: [{claim_id: A}]\nitems_from: data/claims.csv\n")
    assert errors == [("job.yaml", 5, 13, "items_from", "give items or items_from, not both")]


def test_items_from_must_exist(errors_of: ErrorsOf) -> None:
    errors = errors_of(VALID_HEAD + "items_from: data/claims.csv\n")
    assert len(errors) == 1
    file, line, column, field, message = errors[0]
    assert (file, line, column, field) == ("job.yaml", 4, 13, "items_from")
    assert message.startswith("file not found: ") and message.endswith("jobs/data/claims.csv")


def test_items_from_needs_a_known_file_type(errors_of: ErrorsOf) -> None:
    errors = errors_of(VALID_HEAD + "items_from: data/claims.xlsx\n")
    assert errors == [
        (
            "job.yaml",
            4,
            13,
            "items_from",
            "unsupported file type 'data/claims.xlsx': use .csv or .jsonl (JSON Lines)",
        )
    ]


def test_bad_csv_lines_name_the_data_file_and_line(write: Callable[..., Path], as_tuples: Callable) -> None:
    write("data/claims.csv", 'claim_id,amount\nA,1\nB\n\nC,3,4\nD,"5\n')
    path = write("job.yaml", VALID_HEAD + "items_from: data/claims.csv\n")
    with pytest.raises(JobFileError) as info:
        load_job_file(path)
    assert as_tuples(info.value.errors) == [
        ("claims.csv", 3, None, "", "expected 2 values like the header row, got 1"),
        ("claims.csv", 5, None, "", "expected 2 values like the header row, got 3"),
        ("claims.csv", 6, None, "", "invalid CSV: unexpected end of data"),
    ]
    assert str(info.value.errors[0]).endswith(
        "jobs/data/claims.csv:3: expected 2 values like the header row, got 1"
    )


def test_bad_csv_header(write: Callable[..., Path], as_tuples: Callable) -> None:
    write("data/claims.csv", "claim_id,,claim_id,$password\n")
    path = write("job.yaml", VALID_HEAD + "items_from: data/claims.csv\n")
    with pytest.raises(JobFileError) as info:
        load_job_file(path)
    assert as_tuples(info.value.errors) == [
        ("claims.csv", 1, None, "", "header column 2 has no name"),
        ("claims.csv", 1, None, "", "header column 3: 'claim_id' appears twice"),
        ("claims.csv", 1, None, "", "header column 4: '$password': input names have no '$'"),
    ]


def test_bad_json_lines(write: Callable[..., Path], as_tuples: Callable) -> None:
    write("data/vendors.jsonl", '{"vendor": "Acme"}\n\n[1, 2]\n{"vendor": \n"text"\n')
    path = write("job.yaml", VALID_HEAD + "items_from: data/vendors.jsonl\n")
    with pytest.raises(JobFileError) as info:
        load_job_file(path)
    assert as_tuples(info.value.errors) == [
        ("vendors.jsonl", 3, 1, "", "expected a JSON object, got a list"),
        ("vendors.jsonl", 4, 12, "", "invalid JSON: Expecting value"),
        ("vendors.jsonl", 5, 1, "", "expected a JSON object, got 'text'"),
    ]


def test_data_file_that_is_not_utf8(write: Callable[..., Path], as_tuples: Callable) -> None:
    write("data/claims.csv", b"claim_id\n\xff\n")
    path = write("job.yaml", VALID_HEAD + "items_from: data/claims.csv\n")
    with pytest.raises(JobFileError) as info:
        load_job_file(path)
    assert as_tuples(info.value.errors) == [("claims.csv", None, None, "", "not UTF-8 text (byte 9)")]


@pytest.mark.parametrize(
    ("on", "line", "column", "field", "message"),
    [
        (
            "[error, cancelled]",
            5,
            15,
            "retry.on[1]",
            "cancelled runs are never retried; retry.on takes error and task_failed",
        ),
        (
            "cancelled",
            5,
            7,
            "retry.on",
            "cancelled runs are never retried; retry.on takes error and task_failed",
        ),
        (
            "[success]",
            5,
            8,
            "retry.on[0]",
            "successful runs are never retried; retry.on takes error and task_failed",
        ),
        ("[error, oops]", 5, 15, "retry.on[1]", "expected 'error' or 'task_failed', got 'oops'"),
    ],
)
def test_retry_on_takes_only_retryable_statuses(
    errors_of: ErrorsOf, on: str, line: int, column: int, field: str, message: str
) -> None:
    assert errors_of(VALID_HEAD + f"retry:\n  on: {on}\n") == [("job.yaml", line, column, field, message)]


def test_sensitive_inputs_take_references_not_values(errors_of: ErrorsOf) -> None:
    errors = errors_of(
        VALID_HEAD
        + """\
sensitive_inputs:
  password: hunter2-secret
  token: {value: hunter3-secret}
  $pin: {env: PIN}
  both: {env: X, file: x.txt}
  neither: {}
  badenv: {env: 1BAD}
"""
    )
    assert errors == [
        (
            "job.yaml",
            5,
            13,
            "sensitive_inputs.password",
            "give a reference {env: NAME} or {file: PATH}, not a value",
        ),
        (
            "job.yaml",
            6,
            11,
            "sensitive_inputs.token.value",
            "unknown key 'value'; expected one of: env, file",
        ),
        (
            "job.yaml",
            7,
            3,
            "sensitive_inputs.$pin",
            "write the name without '$' ('pin'); the prompt refers to it as {$pin}",
        ),
        ("job.yaml", 8, 24, "sensitive_inputs.both.file", "give either env or file, not both"),
        ("job.yaml", 9, 3, "sensitive_inputs.neither", "give a reference {env: NAME} or {file: PATH}"),
        (
            "job.yaml",
            10,
            17,
            "sensitive_inputs.badenv.env",
            "expected an environment variable name (letters, digits and _, not starting with a digit)",
        ),
    ]
    assert not any("hunter" in str(error) for error in errors)


def test_sensitive_values_never_appear_in_type_errors(errors_of: ErrorsOf) -> None:
    errors = errors_of(VALID_HEAD + "sensitive_inputs:\n  password: {env: [hunter2]}\n")
    assert errors == [("job.yaml", 5, 14, "sensitive_inputs.password.env", "expected a string")]


def test_duplicate_yaml_keys(errors_of: ErrorsOf) -> None:
    errors = errors_of(
        """\
        name: claims
        workflow: w
        name: claims-2
        target:
          pool: a
          pool: b
        """
    )
    assert errors == [
        ("job.yaml", 3, 1, "name", "duplicate key 'name' (first given on line 1)"),
        ("job.yaml", 6, 3, "target.pool", "duplicate key 'pool' (first given on line 5)"),
    ]


def test_yaml_syntax_error(errors_of: ErrorsOf) -> None:
    errors = errors_of("name: a\nworkflow: w\n  target: x\n")
    assert errors == [("job.yaml", 3, 9, "", "YAML syntax error: mapping values are not allowed here")]


def test_yaml_syntax_error_with_context(errors_of: ErrorsOf) -> None:
    errors = errors_of('name: "a\nworkflow: w\n')
    assert errors == [
        (
            "job.yaml",
            3,
            1,
            "",
            "YAML syntax error: found unexpected end of stream (while scanning a quoted scalar)",
        )
    ]


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        ("- name: a\n- name: b\n", 1, "expected a mapping of job settings, got a list"),
        ("\n\njust text\n", 3, "expected a mapping of job settings, got 'just text'"),
        ("", 1, "empty file: expected a job with name, workflow and target"),
        ("# only a comment\n", 1, "empty file: expected a job with name, workflow and target"),
    ],
)
def test_files_that_are_not_a_mapping(errors_of: ErrorsOf, text: str, line: int, message: str) -> None:
    assert errors_of(text) == [("job.yaml", line, 1, "", message)]


def test_two_documents_in_one_file(errors_of: ErrorsOf) -> None:
    errors = errors_of(VALID_HEAD + "---\nname: other\n")
    assert errors == [
        (
            "job.yaml",
            4,
            1,
            "",
            "YAML syntax error: but found another document (expected a single document in the stream)",
        )
    ]


def test_file_that_is_not_utf8(write: Callable[..., Path], as_tuples: Callable) -> None:
    path = write("job.yaml", b"name: caf\xe9\n")
    with pytest.raises(JobFileError) as info:
        load_job_file(path)
    assert as_tuples(info.value.errors) == [("job.yaml", None, None, "", "not UTF-8 text (byte 9)")]


def test_error_string_format(write: Callable[..., Path], monkeypatch: pytest.MonkeyPatch) -> None:
    path = write("claims.yaml", VALID_HEAD + "retry:\n  backoff: 30 seconds\n")
    monkeypatch.chdir(path.parent.parent)
    with pytest.raises(JobFileError) as info:
        load_job_file(path)
    assert (
        str(info.value)
        == "jobs/claims.yaml:5:12: retry.backoff: expected a duration like 30s, 15m or 2h, got '30 seconds'"
    )


def test_input_names_have_no_dollar(errors_of: ErrorsOf) -> None:
    errors = errors_of(VALID_HEAD + "inputs: {$password: x}\nitems:\n  - {$pin: 1}\n")
    assert errors == [
        ("job.yaml", 4, 10, "inputs.$password", "input names have no '$'; secrets go under sensitive_inputs"),
        ("job.yaml", 6, 6, "items[0].$pin", "input names have no '$'; secrets go under sensitive_inputs"),
    ]
