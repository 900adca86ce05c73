"""`cyberdesk-runner jobs`: human and --json output, with or without a store, broken files included."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import typer
import yaml
from sched_helpers import WORKFLOW_ID, Harness, utc
from typer.testing import CliRunner

from cyberdesk_runner.cli import jobs as jobs_cli
from cyberdesk_runner.clock import ManualClock
from cyberdesk_runner.store import Store
from cyberdesk_runner.store.records import Assignment, DispatchView

NOW = utc(2026, 6, 1, 12, 0)  # a Monday


@pytest.fixture
def app() -> typer.Typer:
    app = typer.Typer()
    jobs_cli.register(app)

    @app.callback()
    def main() -> None:
        """A callback keeps `jobs` a sub-command, as in the real app."""

    return app


@pytest.fixture
def project(tmp_path: Path, store_url: str, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A config file naming the test store and a jobs folder with three jobs."""
    monkeypatch.setattr(jobs_cli, "_now", lambda: NOW)
    (tmp_path / "config.yaml").write_text(yaml.safe_dump({"store": store_url, "jobs": "jobs"}))
    folder = tmp_path / "jobs"
    folder.mkdir()
    write_job(folder, "claims", {"cron": "0 6 * * 1-5", "timezone": "America/New_York"})
    write_job(folder, "invoices", [{"interval": "15m"}, {"at": "2026-12-01T09:00:00"}])
    write_job(folder, "manual", None)
    return tmp_path


def write_job(folder: Path, name: str, schedule: Any, **settings: Any) -> None:
    doc: dict[str, Any] = {"name": name, "workflow": "Submit claim", "target": {"pool": "claims"}, **settings}
    if schedule is not None:
        doc["schedule"] = schedule
    (folder / f"{name}.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))


def run(app: typer.Typer, project: Path, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, ["jobs", "--config", str(project / "config.yaml"), *args])
    return result.exit_code, result.stdout, result.stderr


# A SQLite store that does not exist yet; with PostgreSQL the database always exists (covered below).
@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
def test_without_a_store_lists_the_files_and_creates_nothing(
    app: typer.Typer, project: Path, store_url: str
) -> None:
    code, stdout, stderr = run(app, project, "--json")
    assert code == 0, stderr
    listing = json.loads(stdout)
    assert [j["name"] for j in listing] == ["claims", "invoices", "manual"]
    assert listing[0] == {
        "name": "claims",
        "workflow": "Submit claim",
        "schedule": [
            {
                "kind": "cron",
                "expression": "0 6 * * 1-5",
                "timezone": "America/New_York",
                "description": "at 06:00 on Monday to Friday, America/New_York",
            }
        ],
        "next_fire_at": "2026-06-02T10:00:00Z",
        "next_fire_local": "2026-06-02T06:00:00-04:00",
        "paused": False,
        "last_fire": None,
        "in_flight": 0,
        "usage": {"runs": 0, "tokens": 0, "billed_minutes": 0.0},
        "errors": [],
    }
    assert not (project / "store.sqlite").exists() and not list(project.glob("*.sqlite"))


def test_store_without_tables_reads_as_empty(app: typer.Typer, project: Path, store_url: str) -> None:
    if store_url.startswith("sqlite"):
        Path(store_url.removeprefix("sqlite:///")).touch()  # an empty file
    code, stdout, stderr = run(app, project, "--json")
    assert code == 0, stderr
    assert [j["last_fire"] for j in json.loads(stdout)] == [None, None, None]


def _daemon_history(project: Path, store: Store) -> None:
    """What a daemon would have left: fires of `invoices`, one of its items running, `claims` paused."""
    harness = Harness(store, project / "jobs", ManualClock(NOW - timedelta(minutes=31)))
    harness.reload()
    harness.tick()
    harness.run_until(NOW - timedelta(minutes=1))  # invoices: 11:30 runs, 11:45 is skipped (overlap: forbid)

    def take_one(view: DispatchView) -> list[Assignment]:
        item = view.due[0]
        return [Assignment(item.id, WORKFLOW_ID, "d-1", "desk-1", NOW + timedelta(hours=1))]

    store.dispatch.assign(NOW, take_one, lease=timedelta(seconds=30))
    store.jobs.set_paused("claims", True, NOW)


def test_json_shape_with_a_store(app: typer.Typer, project: Path, store: Store) -> None:
    _daemon_history(project, store)
    code, stdout, stderr = run(app, project, "--json")
    assert code == 0, stderr
    claims, invoices, manual = json.loads(stdout)
    assert claims["paused"] is True and claims["last_fire"] is None
    assert invoices["schedule"] == [
        {"kind": "interval", "expression": "15m", "timezone": "UTC", "description": "every 15 minutes"},
        {
            "kind": "at",
            "expression": "2026-12-01T09:00:00",
            "timezone": "UTC",
            "description": "once at 2026-12-01 09:00 UTC",
        },
    ]
    assert invoices["next_fire_at"] == "2026-06-01T12:15:00Z"
    last = invoices["last_fire"]
    assert set(last) == {"id", "status", "trigger", "scheduled_for", "finished_at", "usage"}
    # 11:30 ran; 11:45 was skipped because 11:30 was still in flight (overlap: forbid, the default).
    assert (last["status"], last["trigger"], last["scheduled_for"]) == (
        "skipped",
        "scheduled",
        "2026-06-01T11:45:00Z",
    )
    assert last["finished_at"] == "2026-06-01T11:45:00Z"
    assert invoices["in_flight"] == 1
    assert manual["schedule"] == [] and manual["next_fire_at"] is None and manual["next_fire_local"] is None


def test_human_output(app: typer.Typer, project: Path, store: Store) -> None:
    _daemon_history(project, store)
    code, stdout, stderr = run(app, project)
    assert code == 0, stderr
    blocks = stdout.strip().split("\n\n")
    assert blocks[0].splitlines() == [
        "claims  (Submit claim)",
        "  schedule   at 06:00 on Monday to Friday, America/New_York",
        "  next fire  2026-06-02 06:00:00 EDT (2026-06-02 10:00:00 UTC)",
        "  state      PAUSED",
        "  last fire  none yet",
        "  in flight  0 runs",
    ]
    lines = blocks[1].splitlines()
    assert lines[:5] == [
        "invoices  (Submit claim)",
        "  schedule   every 15 minutes",
        "             once at 2026-12-01 09:00 UTC",
        "  next fire  2026-06-01 12:15:00 UTC",
        "  state      active",
    ]
    assert lines[5].startswith(
        "  last fire  skipped (scheduled, slot 2026-06-01 11:45:00 UTC, finished 2026-06-01 11:45:00 UTC) fire_"
    )
    assert lines[5].endswith("still has work in flight; overlap: forbid")
    assert lines[6] == "  in flight  1 run"
    assert blocks[2].splitlines()[1] == "  schedule   manual only"


def test_a_broken_file_shows_its_errors_and_the_version_the_daemon_runs(
    app: typer.Typer, project: Path, store: Store
) -> None:
    _daemon_history(project, store)
    (project / "jobs" / "invoices.yaml").write_text(
        "name: invoices\nworkflow: Submit claim\ntarget: {pool: x}\nschedule: {cron: '61 * * * *'}\n"
    )
    (project / "jobs" / "new.yaml").write_text("name: new\nworkflw: oops\n")
    code, stdout, stderr = run(app, project, "--json")
    assert code == 0
    invoices = next(j for j in json.loads(stdout) if j["name"] == "invoices")
    assert (
        invoices["schedule"][0]["description"] == "every 15 minutes"
    )  # the last good version, from the store
    [error] = invoices["errors"]
    assert "invoices.yaml:4" in error and "schedule.cron" in error and "61" in error
    assert "new.yaml" in stderr and "workflw" in stderr
    assert "new" not in [j["name"] for j in json.loads(stdout)]


def test_registered_in_the_real_app() -> None:
    from cyberdesk_runner.cli import build_app

    app = build_app()
    assert "jobs" in [c.name for c in app.registered_commands]
