"""Two real daemons (each its own event loop, store connection and HTTP client) on one PostgreSQL store and one
emulator, running a three-step job with retries: exactly one chain per attempt, never two for one attempt."""

from __future__ import annotations

import textwrap
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from daemon_support import ThreadedDaemon, eventually
from sqlmodel import SQLModel

from cyberdesk.emulator import Emulator, EmulatorServer
from cyberdesk_runner.config import load_config
from cyberdesk_runner.daemon import Daemon, RunOptions
from cyberdesk_runner.store import Store
from cyberdesk_runner.store.records import NewFire

pytestmark = pytest.mark.postgres

PATIENTS = [f"p-{n}" for n in range(24)] + ["p-bad"]
FLEET: dict[str, Any] = {
    "pools": [{"name": "clinic"}],
    "machines": [{"name": f"desk-{n}", "pools": ["clinic"]} for n in range(6)],
    "workflows": [
        {"name": "Sign in", "prompt": "Sign in for {patient_id}"},
        {
            "name": "Update",
            "prompt": "Update {patient_id}",
            "fail_when": [{"input": "patient_id", "equals": "p-bad"}],
        },
        {"name": "Sign out", "prompt": "Sign out {patient_id}"},
    ],
}
JOB = f"""\
name: charts
target: {{pool: clinic}}
items: [{", ".join(f"{{patient_id: {p}}}" for p in PATIENTS)}]
retry: {{max_attempts: 3, backoff: 100ms}}
steps:
  - workflow: Sign in
    alias: signin
  - workflow: Update
  - workflow: Sign out
"""


@pytest.fixture
def emulator() -> Iterator[tuple[Emulator, str]]:
    cloud = Emulator(speed=2000, run_duration="5-40", seed=5, fixture=FLEET, failure_rate=0.0)
    server = EmulatorServer(cloud).start()
    yield cloud, server.base_url
    server.stop()


def _rows(store: Store, table: str) -> list[dict[str, Any]]:
    with store.engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(sa.select(SQLModel.metadata.tables[table]))]


def test_two_daemons_on_postgresql_make_exactly_one_chain_per_attempt(
    tmp_path: Path, pg_schema: Callable[[], str], emulator: tuple[Emulator, str]
) -> None:
    cloud, base_url = emulator
    store_url = pg_schema()
    (tmp_path / "jobs").mkdir()
    (tmp_path / "jobs" / "charts.yaml").write_text(JOB)
    daemons = []
    for n in range(2):
        config = tmp_path / f"daemon-{n}.yaml"
        config.write_text(
            textwrap.dedent(f"""
                cyberdesk: {{api_key: {cloud.api_key}, base_url: "{base_url}"}}
                store: "{store_url}"
                jobs: jobs
                server: {{listen: null}}
                tracking: {{poll_interval: 1s}}
                log: {{level: warning}}
            """)
        )
        daemons.append(ThreadedDaemon(Daemon(load_config(config)), RunOptions()))
    store = Store(store_url)

    def ready() -> bool:
        assert not [e for d in daemons for e in d.errors]
        try:
            return store.jobs.get("charts") is not None and len(store.queries.daemon_views()) == 2
        except sa.exc.ProgrammingError:  # the tables are not created yet by the daemons
            return False

    try:
        eventually(ready, timeout=60, what="both daemons registered and the job recorded")
        fire_id = store.fires.request(NewFire("charts", "manual", None), datetime.now(UTC))

        def ended() -> bool:
            view = store.queries.fire_view(fire_id)
            return view is not None and view.status in ("succeeded", "failed")

        eventually(ended, timeout=120, what="the fire to end")
        # Both daemons stop cleanly (the steps cancelled after p-bad's failures are closed by either reaper).
        eventually(
            lambda: (
                not [
                    s
                    for s in _rows(store, "step_run")
                    if s["status"] not in ("success", "task_failed", "cancelled")
                ]
            ),
            timeout=60,
            what="every step run closed",
        )
    finally:
        for daemon in daemons:
            daemon.stop()

    items = {i["id"]: i for i in _rows(store, "item")}
    attempts = _rows(store, "attempt")
    steps = _rows(store, "step_run")
    store.close()
    assert len(items) == len(PATIENTS)
    by_patient = {i["inputs"]["patient_id"]: i for i in items.values()}
    assert by_patient["p-bad"]["status"] == "failed" and by_patient["p-bad"]["attempts"] == 3
    assert all(i["status"] == "succeeded" for p, i in by_patient.items() if p != "p-bad")
    assert len(attempts) == len(PATIENTS) - 1 + 3

    # Exactly one chain per attempt in Cyberdesk: as many chains as attempts, each of three runs, and the
    # emulator holds no run the store does not know.
    runs = list(cloud.world.runs.values())
    chains = {tuple(r.chain or ()) for r in runs}
    assert len(chains) == len(attempts) and all(len(c) == 3 for c in chains)
    assert {r.id for r in runs} == {s["run_id"] for s in steps}
    per_attempt = Counter(s["attempt_id"] for s in steps)
    assert set(per_attempt) == {a["id"] for a in attempts} and set(per_attempt.values()) == {3}
    run_by_id = {r.id: r for r in runs}
    for attempt in attempts:
        mine = sorted((s for s in steps if s["attempt_id"] == attempt["id"]), key=lambda s: s["step_index"])
        assert tuple(s["run_id"] for s in mine) in chains  # the three runs of one chain
        assert attempt["run_id"] == mine[0]["run_id"]
        # One desktop for the whole chain (a step cancelled before it started ran nowhere).
        assert {run_by_id[s["run_id"]].machine_id for s in mine} - {None} == {attempt["machine_id"]}
    chain_calls = sum(
        n
        for route, codes in cloud.stats_snapshot()["requests"].items()
        if route.endswith("/chain")
        for n in codes.values()
    )
    assert chain_calls == len(attempts)
