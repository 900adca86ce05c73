"""Two daemon processes on one PostgreSQL store send alerts to one receiver on loopback: every alert the store
holds arrives once by webhook-id (one daemon sends each, as both logs show), every signature verifies with svix,
and neither daemon's log holds a secret or an alert URL."""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import pytest
from daemon_support import eventually
from receiver import Receiver
from svix.webhooks import Webhook

from cyberdesk.emulator import Emulator, EmulatorServer
from cyberdesk_runner.store import Store
from cyberdesk_runner.store.records import NewFire

pytestmark = [pytest.mark.postgres]

OPS_SECRET = "whsec_" + base64.b64encode(b"two-daemons-ops-secret-0123").decode()
AUDIT_SECRET = "whsec_" + base64.b64encode(b"two-daemons-audit-secret-45").decode()
TOKEN = "tok-TWO-DAEMONS-SECRET-31"
OPS_PATH = "/ops/ops-secret-path"
AUDIT_PATH = "/audit/audit-secret-path"

FLEET = {
    "pools": [{"name": "desks"}],
    "machines": [{"name": f"desk-{n}", "pools": ["desks"]} for n in range(4)],
    "workflows": [
        {
            "name": "Submit claim",
            "prompt": "Submit claim {claim_id} with {$token}.",
            "fail_when": [{"input": "kind", "equals": "bad", "error": "the portal rejected it"}],
        }
    ],
}


def _job(name: str, kinds: list[str]) -> str:
    items = ", ".join(f"{{claim_id: {name}-{n}, kind: {kind}}}" for n, kind in enumerate(kinds))
    return textwrap.dedent(f"""
        name: {name}
        workflow: Submit claim
        target: {{pool: desks}}
        items: [{items}]
        sensitive_inputs: {{token: {{env: TWO_DAEMONS_TOKEN}}}}
        retry: {{max_attempts: 2, backoff: 100ms}}
    """)


#: ops: everything of every job; audit: failures of `claims` only. 7 + 4 alerts, under the flood limit.
JOBS = {
    "claims": ["ok", "bad", "ok", "bad", "bad", "ok"],  # ops and audit: 3 item_failed + fire_failed
    "refunds": ["ok", "bad", "ok"],  # ops: item_failed + fire_failed
    "notes": ["ok", "ok"],  # ops: fire_succeeded
}
EXPECTED = {"ops": 7, "audit": 4}


@pytest.fixture
def emulator() -> Iterator[tuple[Emulator, str]]:
    cloud = Emulator(speed=2000, run_duration="5-40", seed=3, fixture=FLEET)
    server = EmulatorServer(cloud).start()
    yield cloud, server.base_url
    server.stop()


def _configs(folder: Path, api_key: str, base_url: str, store_url: str) -> list[Path]:
    (folder / "jobs").mkdir()
    for name, kinds in JOBS.items():
        (folder / "jobs" / f"{name}.yaml").write_text(_job(name, kinds))
    paths = []
    for n in range(2):
        path = folder / f"daemon-{n}.yaml"
        path.write_text(
            textwrap.dedent(f"""
            cyberdesk: {{api_key: {api_key}, base_url: "{base_url}"}}
            store: "{store_url}"
            jobs: jobs
            server: {{listen: null}}
            tracking: {{poll_interval: 1s}}
            log: {{format: json, level: info}}
            alerts:
              - name: ops
                url: ${{OPS_URL}}
                secret: ${{OPS_SECRET}}
                on: [item_failed, fire_failed, fire_succeeded]
              - name: audit
                url: ${{AUDIT_URL}}
                secret: ${{AUDIT_SECRET}}
                on: [item_failed, fire_failed]
                jobs: [claims]
            """)
        )
        paths.append(path)
    return paths


class _Daemons:
    """Daemon processes (`cyberdesk-runner run`), each logging to a file of its own; SIGTERM at the end."""

    def __init__(self) -> None:
        self.processes: list[subprocess.Popen[bytes]] = []
        self.files: list[IO[bytes]] = []

    def start(self, config: Path, log: Path, env: dict[str, str]) -> None:
        out = log.open("wb")
        self.files.append(out)
        command = [sys.executable, "-c", "from cyberdesk_runner.cli import main; main()", "run"]
        self.processes.append(
            subprocess.Popen(
                [*command, "--config", str(config)], cwd=config.parent, stdout=out, stderr=out, env=env
            )
        )

    def check_alive(self) -> None:
        for process in self.processes:
            assert process.poll() is None, f"a daemon exited early with code {process.returncode}"

    def stop(self) -> list[int]:
        for process in self.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        codes = []
        for process in self.processes:
            try:
                codes.append(process.wait(timeout=30))
            except subprocess.TimeoutExpired:
                process.kill()
                codes.append(process.wait())
        for out in self.files:
            out.close()
        return codes


def _events(log: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in log.splitlines() if line.startswith("{")]


def test_two_daemons_send_each_alert_once(
    tmp_path: Path,
    pg_schema: Callable[[], str],
    receiver: Receiver,
    emulator: tuple[Emulator, str],
) -> None:
    store_url = pg_schema()
    cloud, base_url = emulator
    configs = _configs(tmp_path, cloud.api_key, base_url, store_url)
    env = os.environ | {
        "TWO_DAEMONS_TOKEN": TOKEN,
        "OPS_URL": receiver.url(OPS_PATH),
        "OPS_SECRET": OPS_SECRET,
        "AUDIT_URL": receiver.url(AUDIT_PATH),
        "AUDIT_SECRET": AUDIT_SECRET,
    }
    receiver.delay = 0.5  # one sender busy a while: the other claims what comes due meanwhile
    logs = [tmp_path / "daemon-0.log", tmp_path / "daemon-1.log"]
    daemons = _Daemons()
    store: Store | None = None
    try:
        for config, log in zip(configs, logs, strict=True):
            daemons.start(config, log, env)

        def ready() -> Store | None:
            daemons.check_alive()
            found = Store(store_url)
            try:
                if found.jobs.get("claims") is not None and len(found.queries.daemon_views()) == 2:
                    return found
            except Exception:  # not created yet by the daemons
                pass
            found.close()
            return None

        store = eventually(ready, timeout=60, what="both daemons registered and the jobs recorded")
        for job in JOBS:
            store.fires.request(NewFire(job, "manual", None), datetime.now(UTC))

        def all_sent() -> bool:
            daemons.check_alive()
            assert store is not None
            return store.outbox.alert_counts() == {"sent": sum(EXPECTED.values())}

        eventually(all_sent, timeout=120, what="every alert sent")
        time.sleep(2)  # a second send of any of them would arrive meanwhile
        views = store.outbox.alert_views(limit=1000)
    finally:
        codes = daemons.stop()
        if store is not None:
            store.close()
    assert codes == [0, 0]

    # Every alert arrived once by webhook-id, at its destination, signed with its destination's secret.
    ids = Counter(d.headers["webhook-id"] for d in receiver.accepted)
    assert set(ids) == {v.id for v in views} and set(ids.values()) == {1}
    secrets_by_path = {OPS_PATH: OPS_SECRET, AUDIT_PATH: AUDIT_SECRET}
    by_destination: Counter[str] = Counter()
    for delivery in receiver.accepted:
        Webhook(secrets_by_path[delivery.path]).verify(delivery.body, delivery.headers)  # raises if forged
        event = json.loads(delivery.body)
        assert event["id"] == delivery.headers["webhook-id"]
        by_destination["ops" if delivery.path == OPS_PATH else "audit"] += 1
        if event["type"] == "item_failed":
            assert event["inputs"]["token"] == "***" and event["inputs"]["kind"] == "bad"
            assert event["error"] == "the portal rejected it"
    assert dict(by_destination) == EXPECTED

    # One daemon sent each alert: the two logs together name each id once.
    texts = [log.read_text() for log in logs]
    sent_by = [[e["alert"] for e in _events(text) if e.get("event") == "alert_sent"] for text in texts]
    print("alerts sent by each daemon:", [len(s) for s in sent_by])
    assert Counter(sent_by[0] + sent_by[1]) == ids
    for text in texts:
        assert "daemon_stopping" in text  # the log is the daemon's, not empty
        for secret in (TOKEN, OPS_SECRET, AUDIT_SECRET, "ops-secret-path", "audit-secret-path"):
            assert secret not in text
