"""Three daemon processes on one PostgreSQL store and one emulator, one of them killed with SIGKILL mid-run.

What must hold at the end:
- every item of a 1,000-item job has exactly one successful run in the emulator, and the emulator has no run
  the store does not know (no second run for any idempotency key);
- an every-second schedule fired every slot of the window exactly once (the unique key forbids duplicates;
  the test also checks that no slot is missing);
- no desktop ever ran two of our runs at once (the emulator's own record of each run's stays on desktops).
"""

from __future__ import annotations

import base64
import json
import os
import re
import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from cyberdesk_runner.store import Store

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

API_KEY = "cd_scaleout_key"
ITEMS = 1000
DESKTOPS = 50
WEBHOOK_SECRET = "whsec_" + base64.b64encode(b"scale-out-test-secret-0123456789").decode()
#: The whole test must stay well under two minutes on a 2-core CI machine.
DEADLINE = 100.0

FLEET = {
    "pools": [{"name": "farm"}],
    "machines": [{"name": f"farm-{n:02d}", "pools": ["farm"]} for n in range(DESKTOPS)],
    "workflows": [
        {"name": "Bulk work", "prompt": "Process one record."},
        {"name": "Tick", "prompt": "Check the portal."},
    ],
}

BULK_JOB = """
    name: bulk
    workflow: Bulk work
    target: {pool: farm}
    items_from: bulk.jsonl
    concurrency: 45
    timeout: 10m
"""

TICK_JOB = """
    name: tick
    workflow: Tick
    target: {pool: farm}
    items: [{kind: tick}]
    concurrency: 5
    overlap: allow
    schedule:
      cron: "* * * * * *"
"""


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-c", "from cyberdesk_runner.cli import main; main()", *args]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Processes:
    def __init__(self) -> None:
        self.running: list[subprocess.Popen[bytes]] = []
        self.logs: list[Any] = []

    def start(self, args: list[str], cwd: Path, log: Path, **kwargs: Any) -> subprocess.Popen[bytes]:
        out = log.open("wb")
        self.logs.append(out)
        process = subprocess.Popen(args, cwd=cwd, stdout=kwargs.pop("stdout", out), stderr=out, **kwargs)
        self.running.append(process)
        return process

    def stop_all(self) -> None:
        for process in self.running:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.running:
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        for process in self.running:
            if process.stdout is not None:
                process.stdout.close()
        for out in self.logs:
            out.close()


@pytest.fixture
def processes() -> Iterator[Processes]:
    procs = Processes()
    yield procs
    procs.stop_all()


def _start_emulator(processes: Processes, tmp_path: Path) -> str:
    fixture = tmp_path / "fleet.json"
    fixture.write_text(json.dumps(FLEET))  # JSON is YAML
    emulator = processes.start(
        _cli(
            "emulator",
            "--port",
            "0",
            "--speed",
            "300",
            "--run-duration",
            "30-90",
            "--seed",
            "7",
            "--fixture",
            str(fixture),
            "--api-key",
            API_KEY,
        ),
        tmp_path,
        tmp_path / "emulator.log",
        stdout=subprocess.PIPE,
    )
    assert emulator.stdout is not None
    banner = emulator.stdout.readline().decode()
    match = re.search(r"listening on (http://\S+)", banner)
    assert match, f"no banner from the emulator: {banner!r}"
    return match.group(1)


def _write_daemon_configs(
    tmp_path: Path, base_url: str, store_url: str, count: int, *, poll_only: frozenset[int] = frozenset()
) -> list[tuple[Path, str | None]]:
    jobs = tmp_path / "jobs"
    jobs.mkdir()
    (jobs / "bulk.yaml").write_text(textwrap.dedent(BULK_JOB))
    (jobs / "tick.yaml").write_text(textwrap.dedent(TICK_JOB))
    (jobs / "bulk.jsonl").write_text("".join(json.dumps({"n": n}) + "\n" for n in range(ITEMS)))
    configs: list[tuple[Path, str | None]] = []
    for n in range(count):
        port = _free_port()
        webhook = (
            "" if n in poll_only else f'webhook: {{listen: "127.0.0.1:{port}", secret: "{WEBHOOK_SECRET}"}}'
        )
        level = "info" if n in poll_only else "warning"  # the victim's log shows what it did before dying
        path = tmp_path / f"daemon-{n}.yaml"
        path.write_text(
            textwrap.dedent(
                f"""
                cyberdesk: {{api_key: {API_KEY}, base_url: "{base_url}"}}
                store: "{store_url}"
                jobs: jobs
                server: {{listen: "127.0.0.1:0"}}
                tracking:
                  poll_interval: 1s
                  {webhook}
                dispatch: {{lease: 5s}}
                log: {{level: {level}}}
                """
            )
        )
        configs.append((path, None if n in poll_only else f"http://127.0.0.1:{port}/webhooks/cyberdesk"))
    return configs


def _wait(condition: Callable[[], bool], until: float, what: str, alive: Callable[[], None]) -> None:
    while not condition():
        alive()
        assert time.monotonic() < until, f"timed out waiting for {what}"
        time.sleep(0.25)
    # Shown when the test fails: how long each phase took.
    print(f"{time.monotonic() - (until - DEADLINE):6.1f}s {what}")


def _item_counts(engine: sa.Engine, job: str) -> dict[str, int]:
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text("SELECT status, count(*) FROM item WHERE job_name = :job GROUP BY status"), {"job": job}
        ).all()
    return {status: count for status, count in rows}


def test_three_daemons_one_killed(tmp_path: Path, pg_schema: Callable[[], str], processes: Processes) -> None:
    until = time.monotonic() + DEADLINE
    store_url = pg_schema()
    base_url = _start_emulator(processes, tmp_path)
    http = httpx.Client(base_url=base_url, timeout=10)
    victim = 1
    # The victim polls only: the emulator keeps retrying webhooks to a dead endpoint so hard that it stalls
    # its own event loop (an emulator limit, not the runner's). Daemons 0 and 2 take every webhook.
    configs = _write_daemon_configs(tmp_path, base_url, store_url, 3, poll_only=frozenset({victim}))
    for _, webhook_url in configs:
        if webhook_url is not None:
            response = http.post("/_emulator/webhooks", json={"url": webhook_url, "secret": WEBHOOK_SECRET})
            assert response.status_code == 201, response.text
    daemons = [
        processes.start(_cli("run", "--config", str(path)), tmp_path, tmp_path / f"daemon-{n}.log")
        for n, (path, _) in enumerate(configs)
    ]

    def alive() -> None:
        for n, daemon in enumerate(daemons):
            if n != victim and daemon.poll() is not None:
                log = (tmp_path / f"daemon-{n}.log").read_text()[-3000:]
                pytest.fail(f"daemon {n} exited with {daemon.returncode}:\n{log}")

    engine = sa.create_engine(store_url)
    store = Store(store_url)
    try:

        def all_running() -> bool:
            with engine.connect() as conn:
                registered = (
                    conn.execute(sa.text("SELECT count(*) FROM daemon")).scalar_one()
                    if sa.inspect(conn).has_table("daemon")
                    else 0
                )
            return bool(registered == 3 and store.jobs.get("tick") and store.jobs.get("bulk"))

        _wait(all_running, until, "three daemons to start", alive)

        # The schedule has been firing for a while before the bulk job (fast enough to finish in seconds) starts,
        # so the kill below falls inside both.
        def schedule_under_way() -> bool:
            with engine.connect() as conn:
                first = conn.execute(
                    sa.text("SELECT min(scheduled_for) FROM fire WHERE job_name = 'tick'")
                ).scalar()
            return first is not None and first <= datetime.now(UTC) - timedelta(seconds=4)

        _wait(schedule_under_way, until, "4s of scheduled slots", alive)
        started = datetime.now(UTC)
        trigger = subprocess.run(
            _cli("trigger", "bulk", "--config", str(configs[0][0])),
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert trigger.returncode == 0, trigger.stdout + trigger.stderr

        _wait(
            lambda: _item_counts(engine, "bulk").get("succeeded", 0) >= ITEMS // 3,
            until,
            "a third of the items",
            alive,
        )
        os.kill(daemons[victim].pid, signal.SIGKILL)
        daemons[victim].wait(timeout=10)
        killed_at = datetime.now(UTC)
        assert "run_created" in (tmp_path / f"daemon-{victim}.log").read_text(), "the victim did no work"

        _wait(
            lambda: _item_counts(engine, "bulk").get("succeeded", 0) == ITEMS,
            until,
            "every item to succeed",
            alive,
        )

        # Let the schedule run past the kill for a while, then stop it and let its last runs finish.
        def slot_after_kill() -> bool:
            with engine.connect() as conn:
                last = conn.execute(
                    sa.text("SELECT max(scheduled_for) FROM fire WHERE job_name = 'tick'")
                ).scalar()
            return last is not None and last >= killed_at + timedelta(seconds=8)

        _wait(slot_after_kill, until, "slots 8s past the kill", alive)
        store.jobs.set_paused("tick", True, datetime.now(UTC))
        _wait(lambda: set(_item_counts(engine, "tick")) <= {"succeeded"}, until, "the last ticks", alive)
        paused_at = datetime.now(UTC)

        timeline = http.get("/_emulator/runs").json()
        stats = http.get("/_emulator/stats").json()
        with engine.connect() as conn:
            attempts = conn.execute(sa.text("SELECT item_id, job_name, status, run_id FROM attempt")).all()
            items = conn.execute(sa.text("SELECT id, job_name, status FROM item")).all()
            slots = conn.execute(
                sa.text(
                    "SELECT scheduled_for, status FROM fire WHERE job_name = 'tick' ORDER BY scheduled_for"
                )
            ).all()
    finally:
        store.close()
        engine.dispose()
        http.close()

    # Every item exactly one successful run, and the emulator ran nothing else.
    assert len([i for i in items if i.job_name == "bulk"]) == ITEMS
    assert {i.status for i in items} == {"succeeded"}
    successes: dict[str, int] = {}
    for a in attempts:
        if a.status == "success":
            successes[a.item_id] = successes.get(a.item_id, 0) + 1
    assert set(successes) == {i.id for i in items} and set(successes.values()) == {1}
    emulator_runs = {r["id"]: r for r in timeline["runs"]}
    assert set(emulator_runs) == {a.run_id for a in attempts if a.run_id}
    assert {r["status"] for r in emulator_runs.values()} == {"success"}
    assert stats["duplicates"] == []
    # No desktop ever ran two of our runs at once.
    assert timeline["overlaps"] == []

    # Every slot of the window fired once: consecutive seconds from the first to the last, none missing.
    instants = [s.scheduled_for for s in slots]
    assert len(instants) == len(set(instants))
    assert instants[0] <= killed_at - timedelta(seconds=3) and instants[-1] >= killed_at + timedelta(
        seconds=8
    )
    gaps = [(a, b) for a, b in zip(instants, instants[1:], strict=False) if b - a != timedelta(seconds=1)]
    assert gaps == [], f"missing slots between {gaps[:5]}"
    ran = [s for s in slots if s.status != "skipped"]
    assert ran and all(s.scheduled_for < paused_at for s in ran)
    assert instants[0] >= started - timedelta(seconds=30)
