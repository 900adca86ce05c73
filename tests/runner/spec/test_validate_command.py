"""`cyberdesk-runner validate`: every error on its own line and exit 1, or a summary and exit 0."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from cyberdesk.emulator.pytest_plugin import EmulatorHandle
from cyberdesk_runner.cli.common import ExitCode
from cyberdesk_runner.cli.validate import register

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture
def app() -> typer.Typer:
    app = typer.Typer()
    register(app)

    @app.callback()
    def main() -> None:
        """A callback keeps `validate` a sub-command, as in the real app."""

    return app


def invoke(app: typer.Typer, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["validate", *args])
    return result.exit_code, result.output


def test_shipped_config_and_examples(app: typer.Typer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO)
    monkeypatch.delenv("CYBERDESK_RUNNER_CONFIG", raising=False)
    code, output = invoke(app)
    assert code == 0, output
    lines = output.splitlines()
    assert (
        lines[0]
        == f"Config config.example.yaml: embedded emulator, store sqlite:///{REPO}/cyberdesk-runner.sqlite"
    )
    assert lines[1] == "7 jobs OK in jobs"
    assert lines[2:] == [
        "  desktop-health-check     Nightly desktop health check             match site=boston    cron 30 2 * * * (America/New_York)",
        "  extract-claims           Extract pending claims                   pool claims-team     manual only",
        "  reconcile-invoices       Reconcile invoices                       pool billing         every 1h",
        "  submit-claims            Submit insurance claim                   pool claims-team     cron 0 6 * * 1-5 (America/New_York)",
        "  submit-extracted-claims  Submit insurance claim                   pool claims-team     after extract-claims (succeeded)",
        "  update-patient-charts    Sign in to EHR -> Update patient record  match site=chicago   manual only",
        "  update-patient-records   Update patient record                    match site=new-york  manual only",
        "names checked against the embedded emulator (6 workflows, 2 pools, 12 desktops)",
    ]


def test_every_error_is_printed_and_exit_code_is_1(
    app: typer.Typer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "config.yaml").write_text("jobs: my-jobs\n", encoding="utf-8")
    jobs = tmp_path / "my-jobs"
    jobs.mkdir()
    (jobs / "a.yaml").write_text("name: a\nworkflow: w\ntarget: {pool: p}\nretry:\n  backoff: 30 seconds\n")
    (jobs / "b.yaml").write_text("name: b\nworkflw: w\ntarget: {pool: p}\n")
    (jobs / "ok.yaml").write_text("name: ok\nworkflow: w\ntarget: {pool: p}\n")
    monkeypatch.chdir(tmp_path)
    code, output = invoke(app, "--offline")
    assert code == 1
    assert output.splitlines() == [
        "my-jobs/a.yaml:5:12: retry.backoff: expected a duration like 30s, 15m or 2h, got '30 seconds'",
        "my-jobs/b.yaml:1:1: workflow: required key is missing (or give steps)",
        "my-jobs/b.yaml:2:1: workflw: unknown key 'workflw'; did you mean 'workflow'?",
        "Found 3 errors in 2 files",
    ]


def test_config_errors_exit_1(app: typer.Typer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "runner.yaml").write_text("tracking:\n  poll_interval: often\n", encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    code, output = invoke(app, "--config", "runner.yaml")
    assert code == 1
    assert output.splitlines() == [
        "runner.yaml:2:18: tracking.poll_interval: expected a duration like 30s, 15m or 2h, got 'often'",
        "Found 1 error in 1 file",
    ]


def test_missing_config_file(app: typer.Typer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    code, output = invoke(app, "--config", "nope.yaml")
    assert (code, output.splitlines()) == (
        1,
        ["nope.yaml: config file not found (from --config)", "Found 1 error in 1 file"],
    )


def test_no_config_uses_defaults(app: typer.Typer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "jobs").mkdir()
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("CYBERDESK_RUNNER_CONFIG", raising=False)
    code, output = invoke(app)
    assert code == 0
    assert output.splitlines()[:2] == [
        f"Config none found, using defaults: embedded emulator, store sqlite:///{tmp_path.resolve()}/cyberdesk-runner.sqlite",
        "0 jobs OK in jobs",
    ]


def test_unresolvable_secrets_are_warnings(
    app: typer.Typer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "jobs").mkdir()
    (tmp_path / "jobs" / "a.yaml").write_text(
        "name: a\nworkflow: w\ntarget: {pool: p}\nsensitive_inputs:\n  password: {env: NOT_SET_ANYWHERE}\n"
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("CYBERDESK_RUNNER_CONFIG", raising=False)
    monkeypatch.delenv("NOT_SET_ANYWHERE", raising=False)
    code, output = invoke(app, "--offline")
    assert code == 0
    assert output.splitlines()[-1] == (
        "warning: jobs/a.yaml:5:19: sensitive_inputs.password.env: environment variable NOT_SET_ANYWHERE is not set"
    )


def test_a_bad_result_file_placeholder_is_shown_where_it_is(
    app: typer.Typer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "config.yaml").write_text("jobs: jobs\n", encoding="utf-8")
    jobs = tmp_path / "jobs"
    jobs.mkdir()
    base = "name: {name}\nworkflow: w\ntarget: {{pool: p}}\nresults:\n  format: csv\n  path: {path}\n"
    (jobs / "a.yaml").write_text(base.format(name="a", path="out/{job}_{fire_date}.csv"))
    (jobs / "b.yaml").write_text(base.format(name="b", path="out/{job}.csv"))
    (jobs / "c.yaml").write_text(base.format(name="c", path="out/{fire}_{job.csv"))
    (jobs / "ok.yaml").write_text(base.format(name="ok", path="out/{job}/{fire_created:%Y-%m-%d}_{fire}.csv"))
    monkeypatch.chdir(tmp_path)
    code, output = invoke(app, "--offline")
    assert code == 1
    lines = output.splitlines()
    assert lines[-1] == "Found 3 errors in 3 files"
    assert lines[0].startswith("jobs/a.yaml:6:9: results.path: unknown placeholder {fire_date}: use {job}")
    assert lines[1] == (
        "jobs/b.yaml:6:9: results.path: the path must contain {fire}, so that every fire gets its own file"
    )
    assert lines[2].startswith("jobs/c.yaml:6:9: results.path: bad placeholder syntax")


def test_a_cron_that_never_matches_is_an_error_with_its_line(
    app: typer.Typer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "jobs").mkdir()
    (tmp_path / "jobs" / "feb.yaml").write_text(
        "name: feb\nworkflow: w\ntarget: {pool: p}\nschedule:\n  cron: '0 0 30 2 *'\n"
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("CYBERDESK_RUNNER_CONFIG", raising=False)
    code, output = invoke(app)
    assert code == 1
    first, summary = output.splitlines()
    assert first.startswith("jobs/feb.yaml:5:9: schedule.cron: cron expression '0 0 30 2 *' never matches"), (
        first
    )
    assert summary == "Found 1 error in 1 file"


MISSPELT = """\
name: misspelt
workflow: Submit insurance claims
target:
  pool: claim-team
  machines: [bos-desk-01, bos-dsk-02, nowhere]
"""


def test_unknown_names_are_errors_with_the_closest_names(
    app: typer.Typer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without an API key, names are checked against the embedded emulator's fleet (the demo fleet here)."""
    (tmp_path / "jobs").mkdir()
    (tmp_path / "jobs" / "misspelt.yaml").write_text(MISSPELT)
    (tmp_path / "jobs" / "broken.yaml").write_text("name: broken\nworkflow: w\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("CYBERDESK_RUNNER_CONFIG", raising=False)
    code, output = invoke(app)
    assert code == 1
    assert output.splitlines() == [
        "jobs/broken.yaml:1:1: target: required key is missing",
        "jobs/misspelt.yaml:2:11: workflow: no workflow is named 'Submit insurance claims' in Cyberdesk; "
        "did you mean 'Submit insurance claim'?",
        "jobs/misspelt.yaml:4:9: target.pool: no pool is named 'claim-team' in Cyberdesk; did you mean 'claims-team'?",
        "jobs/misspelt.yaml:5:27: target.machines[1]: no desktop is named 'bos-dsk-02' in Cyberdesk; "
        "did you mean 'bos-desk-02', 'bos-desk-04' or 'bos-desk-03'?",
        "jobs/misspelt.yaml:5:39: target.machines[2]: no desktop is named 'nowhere' in Cyberdesk (known: "
        "'bos-desk-01', 'bos-desk-02', 'bos-desk-03', 'bos-desk-04', 'chi-desk-01', 'chi-desk-02', 'chi-desk-03', "
        "'chi-desk-04', 'nyc-desk-01', 'nyc-desk-02', ...)",
        "Found 5 errors in 2 files",
    ]


def test_names_are_checked_against_the_configured_fleet_and_ids_count(
    app: typer.Typer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "fleet.yaml").write_text(
        "machines: [{name: desk-1}]\nworkflows: [{name: Only, prompt: Do it.}]\n", encoding="utf-8"
    )
    (tmp_path / "config.yaml").write_text("emulator: {fixture: fleet.yaml}\n", encoding="utf-8")
    (tmp_path / "jobs").mkdir()
    (tmp_path / "jobs" / "a.yaml").write_text("name: a\nworkflow: Only\ntarget: {machines: [desk-1]}\n")
    monkeypatch.chdir(tmp_path)
    code, output = invoke(app)
    assert code == 0, output
    assert (
        output.splitlines()[-1]
        == "names checked against the embedded emulator (1 workflows, 0 pools, 1 desktops)"
    )
    (tmp_path / "jobs" / "a.yaml").write_text(
        "name: a\nworkflow: Submit insurance claim\ntarget: {machines: [desk-1]}\n"
    )
    code, output = invoke(app)
    assert code == 1
    assert output.splitlines()[0].startswith(
        "jobs/a.yaml:2:11: workflow: no workflow is named 'Submit insurance"
    )


def test_offline_skips_the_names(app: typer.Typer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "jobs").mkdir()
    (tmp_path / "jobs" / "misspelt.yaml").write_text(MISSPELT)
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("CYBERDESK_RUNNER_CONFIG", raising=False)
    code, output = invoke(app, "--offline")
    assert code == 0, output
    assert output.splitlines()[-1] == "names not checked (--offline)"


def test_an_api_that_does_not_answer_is_a_warning(
    app: typer.Typer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    (tmp_path / "config.yaml").write_text(
        f"cyberdesk: {{api_key: cd_some_key, base_url: 'http://127.0.0.1:{port}'}}\n", encoding="utf-8"
    )
    (tmp_path / "jobs").mkdir()
    (tmp_path / "jobs" / "misspelt.yaml").write_text(MISSPELT)
    monkeypatch.chdir(tmp_path)
    code, output = invoke(app)
    assert code == 0, output
    assert output.splitlines()[-1].startswith(
        f"warning: names not checked: http://127.0.0.1:{port} did not answer ("
    )


def test_a_refused_key_is_a_config_error_that_names_the_api_not_the_key(
    app: typer.Typer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cyberdesk_emulator: EmulatorHandle
) -> None:
    (tmp_path / "config.yaml").write_text(
        f"cyberdesk: {{api_key: cd_wrong_key_0123, base_url: '{cyberdesk_emulator.base_url}'}}\n",
        encoding="utf-8",
    )
    (tmp_path / "jobs").mkdir()
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["validate"])
    assert result.exit_code == ExitCode.CONFIG
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        f"error: the Cyberdesk API at {cyberdesk_emulator.base_url} refused the API key (401 Unauthorized): "
        "check cyberdesk.api_key (or unset it to use the embedded emulator)"
    ]
    assert "cd_wrong_key_0123" not in result.output


def test_a_missing_emulator_fixture_is_a_config_error(
    app: typer.Typer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "config.yaml").write_text("emulator: {fixture: nope.yaml}\n", encoding="utf-8")
    (tmp_path / "jobs").mkdir()
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["validate"])
    assert result.exit_code == ExitCode.CONFIG, result.output
    assert result.stderr.startswith("error: emulator.fixture: ") and "nope.yaml" in result.stderr
