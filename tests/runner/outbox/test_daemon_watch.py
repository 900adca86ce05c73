"""Alerts on what a real daemon on the emulator notices, sent to a receiver on loopback: a late scheduled fire,
the slots skipped behind it (one event per skip), a desktop disconnected (one in the fixture, one PATCHed to
disconnected through the API) and a daemon that stopped heartbeating without a clean stop. Thresholds are
shortened (late_after: 1s; the 5-minute desktop threshold patched to 1 s) instead of waiting real minutes."""

from __future__ import annotations

import base64
import json
import textwrap
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from daemon_support import ThreadedDaemon, eventually
from receiver import Receiver

from cyberdesk import CyberdeskClient, MachineStatus, MachineUpdate
from cyberdesk_runner.config import load_config
from cyberdesk_runner.daemon import Daemon
from cyberdesk_runner.store import Store

SECRET = "whsec_" + base64.b64encode(b"watch-test-secret-0123456789").decode()

FLEET = """
machines:
  - {name: desk-off, status: disconnected}
  - {name: desk-2}
workflows:
  - {name: Submit claim, prompt: "Submit claim {claim_id}."}
"""

LATE_JOB = """
name: nightly
workflow: Submit claim
target: {machines: [desk-off]}
items: [{claim_id: C-1}]
schedule: {interval: 1s}
overlap: forbid
late_after: 1s
"""

OTHER_JOB = """
name: manual
workflow: Submit claim
target: {machines: [desk-2]}
items: [{claim_id: C-2}]
"""


def _config(folder: Path, receiver: Receiver) -> Path:
    (folder / "jobs").mkdir()
    (folder / "jobs" / "nightly.yaml").write_text(LATE_JOB)
    (folder / "jobs" / "manual.yaml").write_text(OTHER_JOB)
    (folder / "fleet.yaml").write_text(FLEET)
    config = folder / "config.yaml"
    config.write_text(
        textwrap.dedent(f"""
        store: sqlite:///{folder / "store.sqlite"}
        jobs: jobs
        server: {{listen: null}}
        tracking: {{poll_interval: 1s}}
        emulator: {{speed: 1000, fixture: fleet.yaml, seed: 1}}
        alerts:
          - name: ops
            url: {receiver.url("/ops")}
            format: json
            secret: {SECRET}
            on: [fire_late, fire_skipped, desktop_disconnected, daemon_lost]
    """)
    )
    return config


def _received(receiver: Receiver) -> list[dict[str, object]]:
    """Each delivery's body, checked against its webhook-id header."""
    bodies = [json.loads(d.body) for d in receiver.accepted]
    assert [b["id"] for b in bodies] == [d.headers["webhook-id"] for d in receiver.accepted]
    return bodies


def test_each_event_the_daemon_notices_is_raised_and_sent_once(
    tmp_path: Path, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("cyberdesk_runner.store.watch.DISCONNECTED_AFTER", timedelta(seconds=1))
    config = load_config(_config(tmp_path, receiver))
    store = Store(config.store)
    store.upgrade()
    old = datetime.now(UTC) - timedelta(minutes=10)
    store.daemons.register("daemon_gone", "host-x", 4242, old)  # killed: no heartbeat since, no clean stop

    daemon = Daemon(config)
    running = ThreadedDaemon(daemon)
    try:
        eventually(lambda: daemon._emulator_server is not None, timeout=30, what="the embedded emulator")
        api = CyberdeskClient(daemon._emulator.api_key, base_url=daemon._emulator_server.base_url)
        [desk2] = [m for m in api.machines.list_sync().unwrap().items if m.name == "desk-2"]
        api.machines.update_sync(desk2.id, MachineUpdate(status=MachineStatus.DISCONNECTED)).unwrap()
        api.close()

        def kinds() -> Counter[str]:
            return Counter(a.type for a in store.outbox.alert_views(status="sent", limit=1000))

        eventually(
            lambda: (
                kinds()["fire_late"] >= 1
                and kinds()["fire_skipped"] >= 2
                and kinds()["desktop_disconnected"] == 2
                and kinds()["daemon_lost"] == 1
            ),
            timeout=90,
            what="every kind of alert sent",
        )
    finally:
        running.stop()

    views = store.outbox.alert_views(limit=1000)
    fires = {f.id: f for f in store.queries.fire_views(limit=1000)}
    store.close()
    # fire_late: the first fire waits for a desktop that is gone; later slots are skipped behind it (overlap).
    late = [v for v in views if v.type == "fire_late"]
    assert len(late) == 1
    skipped = [f for f in fires.values() if f.status == "skipped"]
    assert sum(v.type == "fire_skipped" for v in views) == len(skipped)  # one per skip
    # Every alert arrived, and none twice by id.
    got = _received(receiver)
    ids = [g["id"] for g in got]
    assert len(ids) == len(set(ids))
    sent = {v.id for v in views if v.status == "sent"}
    assert sent <= set(ids)
    assert sorted(str(g["desktop"]) for g in got if g["type"] == "desktop_disconnected") == [
        "desk-2",
        "desk-off",
    ]
    assert [g["daemon"] for g in got if g["type"] == "daemon_lost"] == ["daemon_gone"]
    sent_skips = {v.id for v in views if v.type == "fire_skipped" and v.status == "sent"}
    assert len([g for g in got if g["type"] == "fire_skipped"]) == len(sent_skips)
    assert {g["fire"] for g in got if g["type"] == "fire_skipped"} <= {f.id for f in skipped}
    assert json.dumps([str(v) for v in views]).count(receiver.url("/ops")) == 0  # the URL is not stored
