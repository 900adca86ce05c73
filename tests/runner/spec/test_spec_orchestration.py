"""Job files with steps (one chain per item attempt) and with `after:` (jobs that feed jobs)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from spec_helpers import ErrorTuple, as_tuples

from cyberdesk_runner.spec import load_job_file, load_jobs

ErrorsOf = Callable[[str], list[ErrorTuple]]

STEPS_JOB = """\
name: update-patient
target: {pool: clinic}
items: [{patient_id: P-1}]
steps:
  - workflow: Sign in to EHR
    alias: signin
  - workflow: Update patient record
    inputs:
      chart_id: {$ref: signin.outputs.chart_id}
      note: static
    sensitive_inputs:
      portal_token: {env: PORTAL_TOKEN}
keep_session: true
"""


def test_a_steps_job_loads(write: Callable[..., Path]) -> None:
    spec = load_job_file(write("job.yaml", STEPS_JOB)).spec
    assert spec.workflow is None and spec.keep_session is True
    assert spec.workflows == ("Sign in to EHR", "Update patient record")
    assert spec.steps is not None
    assert spec.steps[1].inputs["chart_id"] == {"$ref": "signin.outputs.chart_id"}
    assert spec.steps[1].sensitive_inputs["portal_token"].env == "PORTAL_TOKEN"


def test_workflow_or_steps_never_both_nor_none(errors_of: ErrorsOf) -> None:
    both = STEPS_JOB.replace("steps:\n", "workflow: W\nsteps:\n", 1)
    assert errors_of(both) == [("job.yaml", 5, 1, "steps", "give workflow or steps, not both")]
    assert errors_of("name: a\ntarget: {pool: p}\n") == [
        ("job.yaml", 1, 1, "workflow", "required key is missing (or give steps)")
    ]
    assert errors_of("name: a\nworkflow: W\ntarget: {pool: p}\nkeep_session: true\n") == [
        ("job.yaml", 4, 15, "keep_session", "keep_session applies to steps only")
    ]


def test_a_ref_must_name_an_earlier_step(errors_of: ErrorsOf) -> None:
    later = STEPS_JOB.replace("signin.outputs.chart_id", "update.outputs.x").replace(
        "  - workflow: Update patient record\n", "  - workflow: Update patient record\n    alias: update\n"
    )
    assert errors_of(later) == [
        (
            "job.yaml",
            10,
            7,
            "steps[1].inputs.chart_id",
            "$ref 'update.outputs.x': 'update' is not an earlier step (aliases before this step: signin)",
        )
    ]
    unknown = STEPS_JOB.replace("signin.outputs.chart_id", "login.outputs.chart_id")
    assert errors_of(unknown)[0][3:] == (
        "steps[1].inputs.chart_id",
        "$ref 'login.outputs.chart_id': 'login' is not the alias of any step (aliases before this step: signin)",
    )
    shape = STEPS_JOB.replace("signin.outputs.chart_id", "signin.chart_id")
    assert errors_of(shape)[0][3] == "steps[1].inputs.chart_id"
    assert "{$ref: ALIAS.outputs.PATH}" in errors_of(shape)[0][4]


def test_aliases_are_unique(errors_of: ErrorsOf) -> None:
    twice = STEPS_JOB.replace(
        "  - workflow: Update patient record\n", "  - workflow: Update patient record\n    alias: signin\n"
    )
    assert errors_of(twice) == [
        ("job.yaml", 8, 12, "steps[1].alias", "alias 'signin' is used by an earlier step")
    ]


def test_items_from_output_needs_after(errors_of: ErrorsOf) -> None:
    assert errors_of("name: a\nworkflow: W\ntarget: {pool: p}\nitems_from_output: claims\n") == [
        (
            "job.yaml",
            4,
            20,
            "items_from_output",
            "items_from_output reads an upstream job's outputs: give after",
        )
    ]
    with_items = (
        "name: a\nworkflow: W\ntarget: {pool: p}\nafter: {job: b}\nitems: [{x: 1}]\nitems_from_output: c\n"
    )
    assert errors_of(with_items)[0][3:] == (
        "items_from_output",
        "give items_from_output or items/items_from, not both",
    )


def _job(write: Callable[..., Path], name: str, after: str | None) -> None:
    extra = f"after: {{job: {after}}}\n" if after else ""
    write(f"{name}.yaml", f"name: {name}\nworkflow: W\ntarget: {{pool: p}}\n{extra}")


def test_after_jobs_load_in_a_chain(write: Callable[..., Path], jobs_dir: Path) -> None:
    _job(write, "a", None)
    _job(write, "b", "a")
    _job(write, "c", "b")
    result = load_jobs(jobs_dir)
    assert result.ok and sorted(result.jobs) == ["a", "b", "c"]
    after = result.jobs["c"].spec.after
    assert after is not None and (after.job, after.when) == ("b", "succeeded")


def test_a_cycle_is_rejected_naming_every_file_and_line(write: Callable[..., Path], jobs_dir: Path) -> None:
    _job(write, "a", "c")
    _job(write, "b", "a")
    _job(write, "c", "b")
    _job(write, "d", "a")  # after a job of the cycle: kept, it simply never fires
    result = load_jobs(jobs_dir)
    assert sorted(result.jobs) == ["d"]
    errors = as_tuples(result.errors)
    assert [e[:4] for e in errors] == [(f"{n}.yaml", 4, 14, "after.job") for n in ("a", "b", "c")]
    message = errors[0][4]
    assert message.startswith("jobs fire each other in a cycle: ")
    for name in ("a", "b", "c"):
        assert f"{name} (" in message and f"{name}.yaml:4:14" in message
    assert {e[4] for e in errors} == {message}


def test_a_job_after_itself_and_after_an_unknown_job(write: Callable[..., Path], jobs_dir: Path) -> None:
    _job(write, "self", "self")
    _job(write, "orphan", "nobody")
    result = load_jobs(jobs_dir)
    messages = {e[0]: e[4] for e in as_tuples(result.errors)}
    assert messages["orphan.yaml"] == "no job is named 'nobody'"
    assert messages["self.yaml"].startswith("jobs fire each other in a cycle: self (")
    assert "self" not in result.jobs
