"""What the CLI tests share: the job sets and fleets of the two daemons, `Env` (a config + store to run the
real CLI against) and `LiveDaemon`; `eventually` comes from daemon_support."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

import attrs
from daemon_support import ThreadedDaemon
from typer.testing import CliRunner, Result

from cyberdesk_runner.cli import build_app
from cyberdesk_runner.daemon import Daemon
from cyberdesk_runner.store import Store

#: The value of the `claims` job's sensitive input: no output of any command may contain it.
SECRET = "tok-SECRET-8d1f0c2a"
SECRET_ENV = "CDR_CLI_TEST_TOKEN"

HISTORY_FLEET = """
pools:
  - name: desks
machines:
  - {name: desk-a1, pools: [desks], machine_parameters: {site: a}}
  - {name: desk-a2, pools: [desks], machine_parameters: {site: a}}
  - {name: desk-b1, pools: [desks], machine_parameters: {site: b}}
  - {name: desk-b2, pools: [desks], machine_parameters: {site: b}}
workflows:
  - name: Submit claim
    prompt: "Submit claim {claim_id} with token {$token}."
    fail_when: [{input: claim_id, equals: C-BAD, status: task_failed, error: "the portal rejected claim C-BAD"}]
  - name: Update record
    prompt: "Update record {record}."
  - name: Health check
    prompt: "Check desktop {site}."
"""

HISTORY_JOBS = {
    "claims": """
        name: claims
        workflow: Submit claim
        target: {pool: desks}
        items:
          - {claim_id: C-1}
          - {claim_id: C-2}
          - {claim_id: C-3}
          - {claim_id: C-4}
          - {claim_id: C-5}
          - {claim_id: C-BAD}
        sensitive_inputs:
          token: {env: SECRET_ENV}
        retry: {max_attempts: 2, backoff: 100ms}
    """.replace("SECRET_ENV", SECRET_ENV),
    "records": """
        name: records
        workflow: Update record
        target: {match: {site: a}}
        items: [{record: R-1}, {record: R-2}, {record: R-3}, {record: R-4}, {record: R-5}, {record: R-6}]
        retry: {max_attempts: 1}
    """,
    "health": """
        name: health
        workflow: Health check
        target: {pool: desks}
        fan_out: machines
        retry: {max_attempts: 3, backoff: 100ms}
    """,
}

LIVE_FLEET = """
pools:
  - name: all
machines:
  - {name: quick-1, pools: [all]}
  - {name: quick-2, pools: [all]}
  - {name: slow-1, pools: [all]}
  - {name: flaky-1, pools: [all]}
  - {name: flaky-2, pools: [all]}
  - {name: tick-1, pools: [all]}
workflows:
  - {name: Quick, prompt: "Do {n}.", run_duration: "10-20"}
  - {name: Slow, prompt: "Do {n} slowly.", run_duration: "3000-3000"}
  - {name: Fails, prompt: "Fail {n}.", failure_rate: 1.0}
  - {name: Tick, prompt: "Tick.", run_duration: "5-5"}
"""

LIVE_JOBS = {
    "quick": """
        name: quick
        workflow: Quick
        target: {machines: [quick-1, quick-2]}
        items: [{n: 1}, {n: 2}, {n: 3}, {n: 4}]
        retry: {max_attempts: 1}
    """,
    "slow": """
        name: slow
        workflow: Slow
        target: {machines: [slow-1]}
        items: [{n: 1}, {n: 2}, {n: 3}]
        concurrency: 1
        retry: {max_attempts: 1}
    """,
    "flaky": """
        name: flaky
        workflow: Fails
        target: {machines: [flaky-1, flaky-2]}
        fan_out: machines
        items: [{n: 7}]
        retry: {max_attempts: 1}
    """,
    "ticker": """
        name: ticker
        workflow: Tick
        target: {machines: [tick-1]}
        schedule: {interval: 1s}
        catchup: none
        retry: {max_attempts: 1}
    """,
}


@attrs.frozen
class Env:
    config: Path
    store_url: str

    def store(self) -> Store:
        return Store(self.store_url)

    def cli(self, *args: str) -> Result:
        """Run the real CLI with this environment's config."""
        return CliRunner().invoke(build_app(), [*args, "--config", str(self.config)])

    def json(self, *args: str, code: int = 0) -> Any:
        """The command's --json output, which must exit with `code`."""
        result = self.cli(*args, "--json")
        assert result.exit_code == code, result.output
        return json.loads(result.stdout)


def write_env(folder: Path, fleet: str, jobs: dict[str, str], emulator: str, extra: str = "") -> Env:
    (folder / "jobs").mkdir(parents=True)
    for name, text in jobs.items():
        (folder / "jobs" / f"{name}.yaml").write_text(textwrap.dedent(text))
    (folder / "fleet.yaml").write_text(textwrap.dedent(fleet))
    store_url = f"sqlite:///{folder / 'store.sqlite'}"
    config = folder / "config.yaml"
    config.write_text(
        textwrap.dedent(f"""
        store: {store_url}
        jobs: jobs
        server: {{listen: null}}
        tracking: {{poll_interval: 1s}}
        emulator: {{{emulator}, fixture: fleet.yaml}}
        {extra}
    """)
    )
    return Env(config, store_url)


@attrs.frozen
class HistoryRun:
    env: Env
    #: The daemon after its run: its metrics are what it counted while filling the store.
    daemon: Daemon


@attrs.define
class LiveDaemon:
    env: Env
    running: ThreadedDaemon

    @property
    def daemon(self) -> Daemon:
        return self.running.daemon

    def stop(self) -> None:
        self.running.stop()


def daemon_ready(env: Env) -> bool:
    if not Path(env.store_url.removeprefix("sqlite:///")).exists():
        return False
    store = env.store()
    try:
        return (
            store.is_initialised()
            and bool(store.queries.daemon_views())
            and store.jobs.get("quick") is not None
            and store.jobs.get("quick").workflow_id is not None
        )  # type: ignore[union-attr]
    finally:
        store.close()
