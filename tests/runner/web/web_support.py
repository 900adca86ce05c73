"""A real daemon on the embedded emulator serving the status page, for the page tests (httpx), the browser tests
(Chromium) and the README's screenshot (make_screenshot.py): jobs with a schedule, a sensitive input, an item that
fails, and runs slow enough to watch."""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import attrs
import pytest
from daemon_support import ThreadedDaemon, eventually

from cyberdesk_runner.config import load_config
from cyberdesk_runner.daemon import Daemon
from cyberdesk_runner.store import Store
from cyberdesk_runner.store.records import NewFire

#: The value of the `claims` job's sensitive input: no page may contain it.
SECRET = "tok-PAGE-SECRET-5c1e"
SECRET_ENV = "CDR_WEB_TEST_TOKEN"
FAILURE = "the portal rejected claim C-BAD"

FLEET = """
pools:
  - name: desks
machines:
  - {name: desk-1, pools: [desks]}
  - {name: desk-2, pools: [desks]}
  - {name: desk-off, pools: [desks], status: disconnected}
  - {name: slow-1, pools: [slow]}
workflows:
  - name: Submit claim
    prompt: "Submit claim {claim_id} with token {$token}."
    run_duration: "10-20"
    fail_when: [{input: claim_id, equals: C-BAD, status: task_failed, error: "FAILURE"}]
  - {name: Slow step, prompt: "Step {n}.", run_duration: "40-40"}
""".replace("FAILURE", FAILURE)

JOBS = {
    "claims": f"""
        name: claims
        workflow: Submit claim
        target: {{pool: desks}}
        items: [{{claim_id: C-1}}, {{claim_id: C-2}}, {{claim_id: C-BAD}}]
        sensitive_inputs:
          token: {{env: {SECRET_ENV}}}
        retry: {{max_attempts: 1}}
        schedule: {{cron: "0 6 * * 1-5", timezone: America/New_York}}
    """,
    "followup": """
        name: followup
        workflow: Slow step
        target: {machines: [slow-1]}
        after: {job: claims, when: finished}
        items: [{n: 0}]
        retry: {max_attempts: 1}
    """,
    "steps": """
        name: steps
        workflow: Slow step
        target: {machines: [slow-1]}
        items: [{n: 1}, {n: 2}, {n: 3}, {n: 4}]
        concurrency: 1
        retry: {max_attempts: 1}
    """,
}


@attrs.frozen
class LivePage:
    url: str
    store_url: str
    daemon: Daemon
    folder: Path

    def trigger(self, job: str) -> str:
        """A manual fire of `job`, as `cyberdesk-runner trigger` records it."""
        store = Store(self.store_url)
        try:
            return store.fires.request(NewFire(job, "manual", None), datetime.now(UTC))
        finally:
            store.close()

    def store(self) -> Store:
        return Store(self.store_url)


@contextmanager
def serve_page(folder: Path) -> Iterator[LivePage]:
    """A daemon serving the page on a free port, with the jobs and fleet above, until the block ends."""
    (folder / "jobs").mkdir()
    for name, text in JOBS.items():
        (folder / "jobs" / f"{name}.yaml").write_text(textwrap.dedent(text))
    (folder / "fleet.yaml").write_text(textwrap.dedent(FLEET))
    store_url = f"sqlite:///{folder / 'store.sqlite'}"
    (folder / "config.yaml").write_text(
        textwrap.dedent(f"""
        store: {store_url}
        jobs: jobs
        server: {{listen: "127.0.0.1:0"}}
        tracking: {{poll_interval: 1s}}
        emulator: {{speed: 20, failure_rate: 0, seed: 3, fixture: fleet.yaml}}
        """)
    )
    monkeypatch = pytest.MonkeyPatch()
    monkeypatch.setenv(SECRET_ENV, SECRET)
    running = ThreadedDaemon(Daemon(load_config(folder / "config.yaml")))
    try:
        daemon = running.daemon
        eventually(lambda: daemon.http_url is not None, what="the daemon's HTTP server", timeout=30)
        eventually(
            lambda: daemon.runtime is not None and daemon.runtime.fleet_loaded, what="the fleet", timeout=30
        )
        assert daemon.http_url is not None
        yield LivePage(daemon.http_url, store_url, daemon, folder)
    finally:
        running.stop()
        monkeypatch.undo()
