"""`cyberdesk-runner run --once / --until-idle` and `trigger`, through the real CLI and the embedded emulator."""

from __future__ import annotations

import json
import shutil
import textwrap
from pathlib import Path

import pytest
import yaml
from daemon_support import ThreadedDaemon, eventually
from typer.testing import CliRunner

from cyberdesk.emulator.pytest_plugin import EmulatorHandle
from cyberdesk_runner.catalog import ActiveJob
from cyberdesk_runner.cli import build_app
from cyberdesk_runner.config import load_config
from cyberdesk_runner.daemon import Daemon, RunOptions
from cyberdesk_runner.fleet import Desktop, Fleet
from cyberdesk_runner.spec import load_items, load_jobs

REPO = Path(__file__).resolve().parents[3]


def _config(tmp_path: Path, *, failure_rate: float = 0.0, jobs: Path | None = None) -> Path:
    if jobs is None:
        jobs = tmp_path / "jobs"
        shutil.copytree(REPO / "jobs", jobs)
    path = tmp_path / "config.yaml"
    path.write_text(
        textwrap.dedent(
            f"""
            store: sqlite:///runner.sqlite
            jobs: {jobs}
            server: {{listen: "127.0.0.1:0"}}
            tracking: {{poll_interval: 1s}}
            emulator: {{speed: 3000, run_duration: "30-60", failure_rate: {failure_rate}, seed: 5}}
            """
        )
    )
    return path


def test_run_once_runs_every_example_job_and_prints_a_summary(tmp_path: Path) -> None:
    result = CliRunner().invoke(build_app(), ["run", "--once", "--config", str(_config(tmp_path))])
    assert result.exit_code == 0, result.output
    for job in ("submit-claims", "desktop-health-check", "update-patient-records", "reconcile-invoices"):
        assert job in result.output
    assert "Summary" in result.output
    # The pipeline: the dispatcher's fire ends, then its after-job runs one item per extracted claim.
    summary = result.output[result.output.index("Summary") :]
    rows = {line.split()[0]: line.split() for line in summary.splitlines() if line.strip()[:1].isalpha()}
    assert rows["submit-extracted-claims"][-2:] == ["after", "extract-claims"]
    assert "extract-claims" in rows
    # The multi-step job: its kind, and every step of each item's chain counted as a run.
    charts = rows["update-patient-charts"]
    assert charts[-2:] == ["2", "steps"]
    succeeded, runs = int(charts[1]), int(charts[5])
    assert succeeded >= 1 and runs == 2 * succeeded


def test_run_once_exits_1_when_an_item_finally_fails(tmp_path: Path) -> None:
    jobs = tmp_path / "jobs"
    jobs.mkdir()
    (jobs / "doomed.yaml").write_text(
        textwrap.dedent(
            """
            name: doomed
            workflow: Reconcile invoices
            target: {pool: billing}
            inputs: {vendor: ACME, month: "2026-10"}
            retry: {max_attempts: 1}
            """
        )
    )
    result = CliRunner().invoke(
        build_app(),
        ["run", "--once", "doomed", "--config", str(_config(tmp_path, failure_rate=1.0, jobs=jobs))],
    )
    assert result.exit_code == 1, result.output
    assert "doomed" in result.output


def test_run_once_with_an_unknown_job_says_so_and_exits_3(tmp_path: Path) -> None:
    result = CliRunner().invoke(build_app(), ["run", "--once", "nope", "--config", str(_config(tmp_path))])
    assert result.exit_code == 3
    assert "no job named 'nope'" in result.output


def test_trigger_records_a_manual_fire_that_the_next_daemon_runs(tmp_path: Path) -> None:
    config = str(_config(tmp_path))
    app = build_app()
    # The store learns its jobs from a daemon; an idle run records them.
    assert CliRunner().invoke(app, ["run", "--until-idle", "--config", config]).exit_code == 0
    triggered = CliRunner().invoke(
        app, ["trigger", "submit-claims", "--input", "amount=99", "--config", config]
    )
    assert triggered.exit_code == 0, triggered.output
    assert "requested" in triggered.output
    ran = CliRunner().invoke(app, ["run", "--until-idle", "--config", config])
    assert ran.exit_code == 0, ran.output
    assert "submit-claims" in ran.output
    unknown = CliRunner().invoke(app, ["trigger", "nope", "--config", config])
    assert unknown.exit_code == 3


def test_run_with_a_store_that_cannot_be_opened_says_so_and_exits_4(tmp_path: Path) -> None:
    config = _config(tmp_path)
    missing = tmp_path / "no-such-folder" / "runner.sqlite"
    config.write_text(config.read_text().replace("sqlite:///runner.sqlite", f"sqlite:///{missing}"))
    result = CliRunner().invoke(build_app(), ["run", "--once", "--config", str(config)])
    assert result.exit_code == 4, result.output
    assert f"cannot use the store sqlite:///{missing}" in result.output
    assert "unable to open database file" in result.output
    assert "Traceback" not in result.output


def test_the_quick_start_ends_in_failure_with_negligible_probability() -> None:
    """The quick start (`run --once` of the example jobs on the demo fleet at the example config's failure rate)
    must end 0: every example job retries both kinds of failure often enough that an item failing for good is
    a one-in-many-thousands event. Counted from the real files, so lowering a retry or adding items shows here."""
    settings = load_config(REPO / "config.example.yaml")
    demo = yaml.safe_load((REPO / "sdk/cyberdesk/emulator/demo.yaml").read_text(encoding="utf-8"))
    fleet = Fleet(
        Desktop(
            id=m["name"],
            name=m["name"],
            params=m.get("machine_parameters", {}),
            pool_ids=frozenset(),
            pool_names=frozenset(m.get("pools", [])),
            connected=True,
        )
        for m in demo["machines"]
    )
    rate = settings.emulator.failure_rate
    assert rate > 0  # the demo shows retries
    chance_of_a_final_failure = 0.0
    result = load_jobs(REPO / "jobs")
    for loaded in result.jobs.values():
        job = ActiveJob(loaded)
        assert set(loaded.spec.retry.on) == {"error", "task_failed"}, job.name
        items = len(load_items(loaded)) * (
            len(fleet.select(job.target)) if loaded.spec.fan_out == "machines" else 1
        )
        if loaded.spec.items_from_output is not None:
            items = 50  # items come from the upstream job's outputs: a generous bound
        # An attempt of a multi-step job is a chain: it fails when any of its runs does.
        attempt_fails = 1 - (1 - rate) ** len(loaded.spec.workflows)
        chance_of_a_final_failure += items * attempt_fails**loaded.spec.retry.max_attempts
    assert chance_of_a_final_failure < 1e-4


WRONG_KEY = "cd_wrong_key_5f2e9a"


def _refused_key_config(tmp_path: Path, emulator: EmulatorHandle) -> Path:
    config = _config(tmp_path)
    config.write_text(
        config.read_text() + f"cyberdesk: {{api_key: {WRONG_KEY}, base_url: '{emulator.base_url}'}}\n"
    )
    return config


@pytest.mark.parametrize("mode", ["--once", "--until-idle"])
def test_a_refused_key_ends_a_one_shot_run_with_one_line_and_exit_4(
    tmp_path: Path, cyberdesk_emulator: EmulatorHandle, mode: str
) -> None:
    config = _refused_key_config(tmp_path, cyberdesk_emulator)
    result = CliRunner().invoke(build_app(), ["run", mode, "--config", str(config)])
    assert result.exit_code == 4, result.output
    assert (
        f"error: the Cyberdesk API at {cyberdesk_emulator.base_url} refused the API key (401 Unauthorized)"
        in result.stderr
    )
    assert "api_unreachable" not in result.output and "Traceback" not in result.output
    assert WRONG_KEY not in result.output
    assert cyberdesk_emulator.emulator.world.runs == {}


def test_a_long_running_daemon_with_a_refused_key_keeps_trying_and_says_so(
    tmp_path: Path, cyberdesk_emulator: EmulatorHandle
) -> None:
    config = _refused_key_config(tmp_path, cyberdesk_emulator)
    running = ThreadedDaemon(Daemon(load_config(config)), RunOptions())
    try:
        health = eventually(
            lambda: running.daemon._health()[1]["api"] == "API key refused" and running.daemon._health()[1],
            what="the daemon's health to say the key is refused",
        )
        assert health["api_ok"] is False

        def status() -> dict[str, object] | None:
            result = CliRunner().invoke(build_app(), ["status", "--json", "--config", str(config)])
            daemons = json.loads(result.stdout)["daemons"] if result.exit_code == 0 else []
            return daemons[0] if daemons and daemons[0]["api"] else None

        daemon = eventually(status, what="status to show the daemon's API state")
        assert daemon["api"] == "API key refused"
        table = CliRunner().invoke(build_app(), ["status", "--config", str(config)])
        assert "API key refused" in table.stdout and WRONG_KEY not in table.output
    finally:
        running.stop()
