"""Sensitive inputs: resolved at dispatch time; values never in repr, str or errors."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import pytest
from spec_helpers import VALID_HEAD

from cyberdesk_runner.spec import JobFileError, LoadedJob, load_job_file, resolve_sensitive_inputs

SECRET = "s3cr3t-Value!"


@pytest.fixture
def job(write: Callable[..., Path]) -> LoadedJob:
    return load_job_file(
        write(
            "job.yaml",
            VALID_HEAD
            + "sensitive_inputs:\n"
            + "  password: {env: PORTAL_PASSWORD}\n"
            + "  token: {file: secrets/token.txt}\n",
        )
    )


def test_values_are_resolved_from_env_and_file(write: Callable[..., Path], job: LoadedJob) -> None:
    write("secrets/token.txt", SECRET + "-file\n")
    values = resolve_sensitive_inputs(job, {"PORTAL_PASSWORD": SECRET})
    assert values == {"password": SECRET, "token": SECRET + "-file"}
    assert dict(values) == {"password": SECRET, "token": SECRET + "-file"}


def test_values_never_show_in_repr_str_or_logs(
    write: Callable[..., Path], job: LoadedJob, caplog: pytest.LogCaptureFixture
) -> None:
    write("secrets/token.txt", SECRET)
    values = resolve_sensitive_inputs(job, {"PORTAL_PASSWORD": SECRET})
    assert repr(values) == str(values) == "SensitiveValues({'password': '***', 'token': '***'})"
    assert SECRET not in f"{values}" and SECRET not in repr([values]) and SECRET not in repr(job)
    with caplog.at_level(logging.INFO):
        logging.getLogger("test").info("resolved %s", values)
    assert SECRET not in caplog.text


def test_the_job_file_holds_no_values(job: LoadedJob) -> None:
    assert job.spec.model_dump(mode="json")["sensitive_inputs"] == {
        "password": {"env": "PORTAL_PASSWORD", "file": None},
        "token": {"env": None, "file": "secrets/token.txt"},
    }


def test_unresolvable_inputs_name_the_input_and_source_but_no_value(
    job: LoadedJob, as_tuples: Callable, write: Callable[..., Path]
) -> None:
    with pytest.raises(JobFileError) as info:
        resolve_sensitive_inputs(job, {})
    errors = as_tuples(info.value.errors)
    assert errors[0] == (
        "job.yaml",
        5,
        19,
        "sensitive_inputs.password.env",
        "environment variable PORTAL_PASSWORD is not set",
    )
    file, line, column, field, message = errors[1]
    assert (file, line, column, field) == ("job.yaml", 6, 17, "sensitive_inputs.token.file")
    assert message.startswith("file not found: ") and message.endswith("jobs/secrets/token.txt")

    write("secrets/token.txt", "\n")
    with pytest.raises(JobFileError) as info:
        resolve_sensitive_inputs(job, {"PORTAL_PASSWORD": ""})
    messages = [error.message for error in info.value.errors]
    assert messages[0] == "environment variable PORTAL_PASSWORD is empty"
    assert messages[1].endswith("jobs/secrets/token.txt is empty")


def test_errors_never_contain_a_value(job: LoadedJob, write: Callable[..., Path]) -> None:
    write("secrets/token.txt", SECRET)
    with pytest.raises(JobFileError) as info:
        resolve_sensitive_inputs(job, {"OTHER": SECRET})
    assert SECRET not in str(info.value)


def test_reads_the_real_environment_by_default(
    write: Callable[..., Path], job: LoadedJob, monkeypatch: pytest.MonkeyPatch
) -> None:
    write("secrets/token.txt", "t")
    monkeypatch.setenv("PORTAL_PASSWORD", SECRET)
    assert resolve_sensitive_inputs(job)["password"] == SECRET


def test_shipped_example_uses_a_shipped_dummy_file() -> None:
    repo = Path(__file__).resolve().parents[3]
    job = load_job_file(repo / "jobs" / "update-patient-records.yaml")
    assert resolve_sensitive_inputs(job, {}) == {"portal_token": "demo-portal-token-not-a-real-secret"}
