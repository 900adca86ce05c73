"""A daemon killed with SIGKILL between its create calls and their records, then restarted, makes no second run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from cyberdesk.emulator import Emulator, EmulatorServer

JOB = """
    name: claims
    workflow: Submit insurance claim
    target: {pool: claims-team}
    concurrency: 3
    items: [{claim_id: K-1}, {claim_id: K-2}, {claim_id: K-3}]
"""


def _write_config(tmp_path: Path, server: EmulatorServer, emulator: Emulator) -> Path:
    jobs = tmp_path / "jobs"
    jobs.mkdir()
    (jobs / "claims.yaml").write_text(textwrap.dedent(JOB))
    config = tmp_path / "config.yaml"
    config.write_text(
        textwrap.dedent(
            f"""
            cyberdesk: {{api_key: {emulator.api_key}, base_url: "{server.base_url}"}}
            store: sqlite:///store.sqlite
            jobs: jobs
            server: {{listen: "127.0.0.1:0"}}
            tracking: {{poll_interval: 1s}}
            dispatch: {{lease: 1s}}
            """
        )
    )
    return config


def _workflow_resolved(engine: sa.Engine) -> bool:
    try:
        with engine.connect() as conn:
            return conn.execute(sa.text("SELECT workflow_id FROM job")).scalar() is not None
    except sa.exc.OperationalError:
        return False  # no tables yet


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-c", "from cyberdesk_runner.cli import main; main()", *args]


@pytest.mark.slow
def test_sigkill_between_create_and_record_then_restart_creates_no_second_run(tmp_path: Path) -> None:
    emulator = Emulator(speed=300, run_duration="30-30", seed=4)
    server = EmulatorServer(emulator).start()
    try:
        config = _write_config(tmp_path, server, emulator)
        with (tmp_path / "daemon.log").open("w") as daemon_log:
            first = subprocess.Popen(
                _cli("run", "--config", str(config)),
                cwd=tmp_path,
                stdout=subprocess.DEVNULL,
                stderr=daemon_log,
            )
        deadline = time.monotonic() + 30
        engine = sa.create_engine(f"sqlite:///{tmp_path / 'store.sqlite'}")
        while not _workflow_resolved(engine):
            assert time.monotonic() < deadline and first.poll() is None, "the daemon did not start"
            time.sleep(0.05)
        time.sleep(0.3)  # the desktops are listed just before the workflows are resolved
        # From now on every answer is lost: creates are applied, and the SDK keeps retrying with the same key.
        emulator.set_faults(drop_responses=1.0)
        triggered = subprocess.run(
            _cli("trigger", "claims", "--config", str(config)),
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert triggered.returncode == 0, triggered.stdout + triggered.stderr
        while emulator.stats_snapshot()["runs"]["created"] < 3:
            assert time.monotonic() < deadline, "the daemon never made its create calls"
            assert first.poll() is None, "the daemon exited early"
            time.sleep(0.02)
        os.kill(first.pid, signal.SIGKILL)
        first.wait(timeout=10)

        with engine.connect() as conn:
            statuses = conn.execute(sa.text("SELECT status, run_id FROM attempt")).all()
        assert sorted(s for s, _ in statuses) == ["creating"] * 3
        assert all(run_id is None for _, run_id in statuses), "no answer was recorded before the kill"

        emulator.set_faults(drop_responses=0.0)
        restarted = subprocess.run(
            _cli("run", "--until-idle", "--config", str(config)),
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert restarted.returncode == 0, restarted.stdout + restarted.stderr

        runs = list(emulator.world.runs.values())
        assert sorted(r.input_values["claim_id"] for r in runs) == ["K-1", "K-2", "K-3"]
        assert emulator.stats_snapshot()["runs"]["created"] == 3
        assert not emulator.stats_snapshot()["duplicates"]
        with engine.connect() as conn:
            rows = conn.execute(sa.text("SELECT status, run_id FROM attempt")).all()
        assert sorted(s for s, _ in rows) == ["success"] * 3
        assert {r for _, r in rows} == {r.id for r in runs}
        engine.dispose()
    finally:
        server.stop()


@pytest.mark.slow
def test_sigterm_stops_the_daemon_within_seconds_and_a_restart_finishes_the_work(tmp_path: Path) -> None:
    emulator = Emulator(speed=10, run_duration="30-30", seed=4)  # runs take 3s: some are in flight at SIGTERM
    server = EmulatorServer(emulator).start()
    try:
        config = _write_config(tmp_path, server, emulator)
        with (tmp_path / "daemon.log").open("w") as daemon_log:
            daemon = subprocess.Popen(
                _cli("run", "--once", "claims", "--config", str(config)),
                cwd=tmp_path,
                stdout=subprocess.DEVNULL,
                stderr=daemon_log,
            )
            deadline = time.monotonic() + 30
            while emulator.stats_snapshot()["runs"]["created"] < 3:
                assert time.monotonic() < deadline and daemon.poll() is None
                time.sleep(0.02)
            stopped_at = time.monotonic()
            daemon.send_signal(signal.SIGTERM)
            daemon.wait(timeout=10)
        assert time.monotonic() - stopped_at < 5, "the daemon took too long to stop"
        assert "daemon_stopping" in (tmp_path / "daemon.log").read_text()

        restarted = subprocess.run(
            _cli("run", "--until-idle", "--config", str(config)),
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert restarted.returncode == 0, restarted.stdout + restarted.stderr
        assert sorted(r.input_values["claim_id"] for r in emulator.world.runs.values()) == [
            "K-1",
            "K-2",
            "K-3",
        ]
        assert {r.status for r in emulator.world.runs.values()} == {"success"}
    finally:
        server.stop()
