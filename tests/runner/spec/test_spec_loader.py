"""Loading folders of job files: what is read, what is skipped, duplicates, hashes, shipped examples."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest
from spec_helpers import VALID_HEAD

from cyberdesk_runner.spec import JobFileError, JobSpec, load_items, load_job_file, load_jobs

REPO = Path(__file__).resolve().parents[3]


def test_valid_job_with_defaults(write: Callable[..., Path]) -> None:
    job = load_job_file(write("claims.yaml", VALID_HEAD))
    spec = job.spec
    assert job.name == "claims" and job.path.name == "claims.yaml" and job.source == VALID_HEAD
    assert spec.target.pool == "claims-team" and spec.target.machines is None and spec.target.match is None
    assert spec.fan_out == "items" and spec.items is None and spec.items_from is None and spec.inputs == {}
    assert spec.concurrency == 10 and spec.priority is False
    assert spec.retry.max_attempts == 3
    assert spec.retry.backoff == timedelta(seconds=30) and spec.retry.max_backoff == timedelta(minutes=10)
    assert spec.retry.on == ("error", "task_failed")
    assert spec.timeout == timedelta(hours=2)
    assert spec.schedule == ()
    assert (spec.catchup, spec.max_delay, spec.overlap) == ("latest", timedelta(hours=1), "forbid")
    assert len(job.definition_hash) == 64


def test_spec_is_frozen(write: Callable[..., Path]) -> None:
    spec = load_job_file(write("claims.yaml", VALID_HEAD)).spec
    with pytest.raises(Exception, match="frozen"):
        spec.concurrency = 3  # type: ignore[misc]


def test_full_job(write: Callable[..., Path]) -> None:
    job = load_job_file(
        write(
            "claims.yaml",
            """\
            name: claims.v2_b-1
            description: Submit claims
            workflow: 3fa85f64-5717-4562-b3fc-2c963f66afa6
            target:
              pool: claims-team
              machines: [bos-desk-01, nyc-desk-02]
              match: {site: [boston, new-york], floor: 3, kiosk: false}
            fan_out: machines
            inputs: {portal: main, options: {fast: true}}
            items:
              - {claim_id: A, portal: override}
            sensitive_inputs:
              password: {env: PORTAL_PASSWORD}
            concurrency: 4
            priority: true
            timeout: 1h30m
            retry: {max_attempts: 5, backoff: 500ms, max_backoff: 1m, on: task_failed}
            schedule:
              cron: "0 6 * * 1-5"
              timezone: America/New_York
            catchup: all
            max_delay: 2h
            overlap: replace
            """,
        )
    )
    spec = job.spec
    assert spec.target.match == {"site": ("boston", "new-york"), "floor": (3,), "kiosk": (False,)}
    assert spec.target.describe() == (
        "pool claims-team, machines bos-desk-01,nyc-desk-02, match site=boston|new-york floor=3 kiosk=false"
    )
    assert spec.retry.on == ("task_failed",)
    assert spec.retry.backoff == timedelta(milliseconds=500)
    assert spec.timeout == timedelta(hours=1, minutes=30)
    assert spec.sensitive_inputs["password"].env == "PORTAL_PASSWORD"
    assert load_items(job) == [{"claim_id": "A", "portal": "override", "options": {"fast": True}}]


def test_yaml_12_scalars(write: Callable[..., Path]) -> None:
    """`on`, `no`, `yes` stay strings; `012` is 12; dates and `1:30` stay text."""
    job = load_job_file(
        write(
            "claims.yaml",
            VALID_HEAD
            + """\
            inputs: {country: no, answer: yes, code: 012, octal: 0o12, time: 1:30, day: 2026-01-31, flag: true}
            retry:
              on: [error]
            """.replace("            ", ""),
        )
    )
    assert job.spec.inputs == {
        "country": "no",
        "answer": "yes",
        "code": 12,
        "octal": 10,
        "time": "1:30",
        "day": "2026-01-31",
        "flag": True,
    }
    assert job.spec.retry.on == ("error",)


def test_anchors_and_merge_keys_work(write: Callable[..., Path]) -> None:
    job = load_job_file(
        write(
            "claims.yaml",
            """\
            name: claims
            workflow: w
            target: {pool: p}
            schedule:
              - &morning {cron: "0 6 * * *", timezone: Europe/Berlin}
              - {<<: *morning, cron: "0 18 * * *"}
            """,
        )
    )
    assert [(e.cron, e.timezone) for e in job.spec.schedule] == [
        ("0 6 * * *", "Europe/Berlin"),
        ("0 18 * * *", "Europe/Berlin"),
    ]


def test_definition_hash_ignores_comments_and_layout(write: Callable[..., Path]) -> None:
    first = load_job_file(write("a.yaml", VALID_HEAD + "concurrency: 4\n"))
    reformatted = load_job_file(
        write(
            "a.yaml",
            "# Claims\nconcurrency: 4   # four at once\n\nname: claims\nworkflow: 'Submit insurance claim'\n"
            "target:\n  pool: claims-team\n",
        )
    )
    changed = load_job_file(write("a.yaml", VALID_HEAD + "concurrency: 5\n"))
    assert first.definition_hash == reformatted.definition_hash
    assert first.definition_hash != changed.definition_hash


def test_definition_hash_covers_the_items_file(write: Callable[..., Path]) -> None:
    write("data/claims.csv", "claim_id\nA\n")
    path = write("a.yaml", VALID_HEAD + "items_from: data/claims.csv\n")
    before = load_job_file(path).definition_hash
    write("data/claims.csv", "claim_id\nA\nB\n")
    assert load_job_file(path).definition_hash != before


def test_a_reload_parses_only_a_text_that_changed(write: Callable[..., Path]) -> None:
    """The daemon reloads its job files every few seconds: the same text gives the same job without parsing it
    again; any edit (the same length, a file broken then mended) is read as it is now."""
    path = write("a.yaml", VALID_HEAD + "concurrency: 4\n")
    first = load_job_file(path)
    assert load_job_file(path).spec is first.spec  # not parsed again
    write("a.yaml", VALID_HEAD + "concurrency: 5\n")  # same size: only the text tells
    assert load_job_file(path).spec.concurrency == 5
    write("a.yaml", VALID_HEAD + "concurrency: 0\n")
    with pytest.raises(JobFileError):
        load_job_file(path)
    with pytest.raises(JobFileError):
        load_job_file(path)  # an invalid text is refused every time, not remembered as good
    write("a.yaml", VALID_HEAD + "concurrency: 4\n")
    again = load_job_file(path)
    assert again.spec == first.spec and again.definition_hash == first.definition_hash


def test_load_jobs_reads_only_yaml_files(write: Callable[..., Path], jobs_dir: Path) -> None:
    write("a.yaml", VALID_HEAD.replace("claims", "a", 1))
    write("b.yml", VALID_HEAD.replace("claims", "b", 1))
    write("notes.txt", "not a job")
    write("README.md", "# jobs")
    write(".hidden.yaml", "broken: [")
    write("_disabled.yaml", "broken: [")
    write("data/nested.yaml", "broken: [")  # sub-folders hold data, not jobs
    result = load_jobs(jobs_dir)
    assert result.ok and result.errors == []
    assert sorted(result.jobs) == ["a", "b"]


def test_load_jobs_keeps_good_jobs_and_collects_all_errors(
    write: Callable[..., Path], jobs_dir: Path, as_tuples: Callable
) -> None:
    write("good.yaml", VALID_HEAD)
    write("bad1.yaml", "name: x\nworkflow: w\ntarget: {pool: p}\ntimeout: soon\nconcurrency: -1\n")
    write("bad2.yaml", "name: [\n")
    result = load_jobs(jobs_dir)
    assert list(result.jobs) == ["claims"]
    assert not result.ok
    assert as_tuples(result.errors) == [
        ("bad1.yaml", 4, 10, "timeout", "expected a duration like 30s, 15m or 2h, got 'soon'"),
        ("bad1.yaml", 5, 14, "concurrency", "must be at least 1, got -1"),
        (
            "bad2.yaml",
            2,
            1,
            "",
            "YAML syntax error: expected the node content, but found '<stream end>' (while parsing a flow node)",
        ),
    ]


def test_duplicate_job_names_reject_every_file_and_name_the_others(
    write: Callable[..., Path], jobs_dir: Path, as_tuples: Callable, monkeypatch: pytest.MonkeyPatch
) -> None:
    write("a.yaml", VALID_HEAD)
    write("b.yaml", "# copy\n" + VALID_HEAD)
    write("c.yaml", VALID_HEAD.replace("claims", "other", 1))
    monkeypatch.chdir(jobs_dir.parent)
    result = load_jobs(jobs_dir)
    assert list(result.jobs) == ["other"]
    assert as_tuples(result.errors) == [
        ("a.yaml", 1, 7, "name", "duplicate job name 'claims', also used by jobs/b.yaml:2:7"),
        ("b.yaml", 2, 7, "name", "duplicate job name 'claims', also used by jobs/a.yaml:1:7"),
    ]


def test_missing_jobs_folder(tmp_path: Path, as_tuples: Callable) -> None:
    result = load_jobs(tmp_path / "nope")
    assert result.jobs == {}
    assert as_tuples(result.errors) == [("nope", None, None, "", "jobs folder not found")]


def test_shipped_examples_load_without_errors() -> None:
    result = load_jobs(REPO / "jobs")
    assert result.errors == []
    assert sorted(result.jobs) == [
        "desktop-health-check",
        "extract-claims",
        "reconcile-invoices",
        "submit-claims",
        "submit-extracted-claims",
        "update-patient-charts",
        "update-patient-records",
    ]
    claims = result.jobs["submit-claims"]
    assert claims.spec.workflow == "Submit insurance claim"
    assert claims.spec.target.pool == "claims-team"
    assert claims.spec.concurrency == 4 and claims.spec.timeout == timedelta(minutes=30)
    assert claims.spec.retry.max_attempts == 5 and claims.spec.retry.backoff == timedelta(seconds=2)
    assert [(e.cron, e.timezone) for e in claims.spec.schedule] == [("0 6 * * 1-5", "America/New_York")]
    items = load_items(claims)
    assert len(items) == 12 and set(items[0]) == {"claim_id", "patient_name", "amount"}
    health = result.jobs["desktop-health-check"].spec
    assert health.fan_out == "machines" and health.target.match == {"site": ("boston",)}
    assert health.catchup == "latest"
    assert load_items(result.jobs["desktop-health-check"]) == [{}]
    patients = result.jobs["update-patient-records"]
    assert patients.spec.target.match == {"site": ("new-york",)} and len(load_items(patients)) == 3
    invoices = result.jobs["reconcile-invoices"]
    assert invoices.spec.target.pool == "billing"
    assert invoices.spec.schedule[0].interval == timedelta(hours=1)
    assert [item["vendor"] for item in load_items(invoices)][0] == "Acme Medical Supply"


@pytest.mark.parametrize("path", sorted((REPO / "jobs").glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_examples_point_editors_at_the_schema(path: Path) -> None:
    first_line = path.read_text(encoding="utf-8").splitlines()[0]
    assert first_line == "# yaml-language-server: $schema=../runner/cyberdesk_runner/job-schema.json"
    assert (path.parent / "../runner/cyberdesk_runner/job-schema.json").resolve().is_file()


def test_jobspec_can_be_built_in_python() -> None:
    spec = JobSpec.model_validate(
        {"name": "x", "workflow": "w", "target": {"pool": "p"}, "timeout": timedelta(minutes=5)}
    )
    assert spec.timeout == timedelta(minutes=5)
    assert spec.model_dump(mode="json")["timeout"] == "5m"


def test_loaded_jobs_are_hashable(write: Callable[..., Path]) -> None:
    path = write("claims.yaml", VALID_HEAD)
    assert len({load_job_file(path), load_job_file(path)}) == 1
