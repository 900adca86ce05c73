"""A real daemon on the emulator: result files written once, alerts delivered through the outbox to a receiver
that is down for a while (every alert arrives, none twice by id), signatures verified with svix, no secret or
URL in any output."""

from __future__ import annotations

import asyncio
import base64
import csv
import io
import json
import textwrap
from pathlib import Path

import pytest
from daemon_support import ThreadedDaemon, eventually
from receiver import Receiver
from svix.webhooks import Webhook
from typer.testing import CliRunner

from cyberdesk_runner.cli import build_app
from cyberdesk_runner.config import load_config
from cyberdesk_runner.daemon import Daemon, RunOptions
from cyberdesk_runner.logs import configure
from cyberdesk_runner.store import Store

ALERT_SECRET = "whsec_" + base64.b64encode(b"outbox-test-secret-0123456").decode()
TOKEN = "tok-OUTBOX-SECRET-77"

FLEET = """
pools: [{name: desks}]
machines:
  - {name: desk-1, pools: [desks]}
  - {name: desk-2, pools: [desks]}
workflows:
  - name: Submit claim
    prompt: "Submit claim {claim_id} with {$token}."
    fail_when: [{input: claim_id, equals: C-BAD, status: task_failed, error: "the portal rejected claim C-BAD"}]
"""

JOB = """
name: claims
workflow: Submit claim
target: {pool: desks}
items: [{claim_id: C-1}, {claim_id: C-2}, {claim_id: C-BAD}]
sensitive_inputs: {token: {env: OUTBOX_TOKEN}}
retry: {max_attempts: 2, backoff: 100ms}
results:
  path: results/{job}/{fire_created:%Y-%m-%d_%H%M}_{fire}.csv
  format: csv
"""


def _write(folder: Path, receiver: Receiver) -> Path:
    (folder / "jobs").mkdir()
    (folder / "jobs" / "claims.yaml").write_text(JOB)
    (folder / "fleet.yaml").write_text(FLEET)
    config = folder / "config.yaml"
    config.write_text(
        textwrap.dedent(f"""
        store: sqlite:///{folder / "store.sqlite"}
        jobs: jobs
        server: {{listen: null}}
        tracking: {{poll_interval: 1s}}
        emulator: {{speed: 2000, run_duration: "5-10", failure_rate: 0, seed: 1, fixture: fleet.yaml}}
        alerts:
          - name: ops
            url: ${{OPS_URL}}
            format: json
            secret: ${{OPS_SECRET}}
            on: [item_failed, fire_failed, fire_succeeded]
          - name: chat
            url: ${{CHAT_URL}}
            format: slack
            on: [fire_failed]
            jobs: [claims]
    """)
    )
    return config


def test_result_file_and_alerts_survive_a_receiver_outage(
    tmp_path: Path, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OUTBOX_TOKEN", TOKEN)
    monkeypatch.setenv("OPS_URL", receiver.url("/ops/hook-secret-path"))
    monkeypatch.setenv("OPS_SECRET", ALERT_SECRET)
    monkeypatch.setenv("CHAT_URL", receiver.url("/services/T000/B000/slack-secret"))
    log = io.StringIO()
    configure("json", "info", stream=log)
    config_path = _write(tmp_path, receiver)
    config = load_config(config_path)

    receiver.down = True
    asyncio.run(Daemon(config).run(RunOptions(once=["claims"])))
    assert not receiver.accepted  # refused (or not tried yet when the daemon stopped): kept for later
    first = Store(config.store)
    assert first.outbox.alert_counts() == {"pending": 3}
    first.close()

    # The result file was written when the fire ended, relative to the config file's folder.
    files = list((tmp_path / "results" / "claims").glob("*.csv"))
    assert len(files) == 1
    with files[0].open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["claim_id"] for r in rows] == ["C-1", "C-2", "C-BAD"]
    assert rows[-1]["status"] == "failed" and rows[-1]["token"] == "***"
    written = files[0].stat()

    receiver.down = False
    running = ThreadedDaemon(Daemon(config), RunOptions())
    store = Store(config.store)
    try:
        eventually(lambda: store.outbox.alert_counts() == {"sent": 3}, timeout=90, what="every alert sent")
    finally:
        running.stop()
    ids = [d.headers["webhook-id"] for d in receiver.accepted if d.path.startswith("/ops")]
    assert len(ids) == len(set(ids)) == 2  # item_failed and fire_failed, once each by id
    events = {}
    for delivery in receiver.accepted:
        if delivery.path.startswith("/ops"):
            # Verified with svix, as a receiver would; raises on a bad signature.
            Webhook(ALERT_SECRET).verify(delivery.body, delivery.headers)
            event = json.loads(delivery.body)
            assert event["id"] == delivery.headers["webhook-id"]
            events[event["type"]] = event
    assert set(events) == {"item_failed", "fire_failed"}
    failed = events["item_failed"]
    assert failed["inputs"] == {"claim_id": "C-BAD", "token": "***"}
    assert "rejected claim C-BAD" in failed["error"] and failed["job"] == "claims" and failed["desktop"]
    slack = [json.loads(d.body) for d in receiver.accepted if d.path.startswith("/services")]
    assert len(slack) == 1 and "Fire failed" in slack[0]["text"] and slack[0]["blocks"]

    # Not rewritten by the second daemon; `show` names the file; nothing secret anywhere.
    assert files[0].stat().st_mtime_ns == written.st_mtime_ns
    fire_id = store.results.latest_finished_fire("claims")
    assert fire_id is not None and store.outbox.result_file(fire_id) == ("written", str(files[0]))
    cli = CliRunner()
    show = cli.invoke(build_app(), ["show", fire_id, "--config", str(config_path)])
    listing = cli.invoke(build_app(), ["alerts", "--config", str(config_path)])
    assert show.exit_code == 0 and str(files[0].name) in show.output.replace("\n", "")
    assert listing.exit_code == 0 and "item_failed" in listing.output
    stored = json.dumps([str(a) for a in store.outbox.alert_views(limit=100)])
    store.close()
    for text in (log.getvalue(), show.output, listing.output, stored, files[0].read_text()):
        for secret in (TOKEN, ALERT_SECRET, "hook-secret-path", "slack-secret"):
            assert secret not in text
