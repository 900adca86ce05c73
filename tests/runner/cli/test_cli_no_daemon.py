"""Without a running daemon: `trigger --wait` says it is waiting for one, `status` tells a daemon that stopped
from one that went silent, `cancel` of a fire no daemon planned yet. On a copy of the history store, so the
shared one stays as the daemon left it."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cli_support import Env

from cyberdesk_runner.cli import waiting
from cyberdesk_runner.cli.common import ExitCode


@pytest.fixture
def copy(history: Env, tmp_path: Path) -> Env:
    source = Path(history.store_url.removeprefix("sqlite:///"))
    for suffix in ("", "-wal", "-shm"):
        if Path(f"{source}{suffix}").exists():
            shutil.copy(f"{source}{suffix}", tmp_path / f"store.sqlite{suffix}")
    shutil.copytree(history.config.parent / "jobs", tmp_path / "jobs")
    url = f"sqlite:///{tmp_path / 'store.sqlite'}"
    config = tmp_path / "config.yaml"
    config.write_text(f"store: {url}\njobs: jobs\n")
    return Env(config, url)


def test_trigger_wait_without_a_daemon_hints_and_times_out(
    copy: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(waiting, "HINT_AFTER", 0.2)
    monkeypatch.setattr(waiting, "POLL_EVERY", 0.1)
    result = copy.cli("trigger", "records", "--wait", "--timeout", "1s")
    assert result.exit_code == ExitCode.FAILED
    assert "waiting for a daemon to pick this up (is `cyberdesk-runner run` running?)" in result.stderr
    assert "gave up waiting after 1s" in result.stderr and "is still requested" in result.stderr
    fire_id = result.stdout.split()[1]

    # No daemon planned it: cancelling it cancels the fire itself.
    assert copy.json("cancel", fire_id) == {
        "id": fire_id,
        "kind": "fire",
        "cancelled_items": 0,
        "cancel_requested_runs": 0,
        "fire_id": fire_id,
        "fire_status": "cancelled",
    }
    assert copy.json("show", fire_id)["events"][-1]["kind"] == "fire_cancelled"


def test_status_tells_a_silent_daemon_from_a_stopped_one(copy: Env) -> None:
    store = copy.store()
    try:
        store.daemons.register("daemon_gone", "elsewhere", 4242, datetime.now(UTC) - timedelta(minutes=5))
    finally:
        store.close()
    result = copy.cli("status")
    assert result.exit_code == ExitCode.FAILED
    assert "daemon_gone was last heard from 5m" in result.stdout and "did not stop cleanly" in result.stdout
    data = copy.json("status", code=ExitCode.FAILED)
    assert [d["state"] for d in data["daemons"]] == ["silent", "stopped"]
