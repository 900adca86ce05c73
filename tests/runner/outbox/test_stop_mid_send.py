"""A daemon asked to stop while an alert is under way: the receiver holds the request until the daemon has
stopped, and only then takes it (too late for the daemon to learn). The alert is not lost: it is given back and
the restarted daemon sends it again, with the same webhook-id and a valid signature, so the receiver drops the
repeat by id."""

from __future__ import annotations

import base64
import json
import textwrap
from datetime import UTC, datetime
from pathlib import Path

from daemon_support import ThreadedDaemon, eventually
from receiver import Receiver
from svix.webhooks import Webhook

from cyberdesk_runner.config import load_config
from cyberdesk_runner.daemon import Daemon
from cyberdesk_runner.store import Store
from cyberdesk_runner.store.records import NewFire

SECRET = "whsec_" + base64.b64encode(b"stop-mid-send-secret-012345").decode()

FLEET = """
machines: [{name: desk-1}]
workflows:
  - name: Submit claim
    prompt: "Submit claim {claim_id}."
    fail_when: [{input: claim_id, equals: C-BAD, error: "the portal rejected claim C-BAD"}]
"""

JOB = """
name: claims
workflow: Submit claim
target: {machines: [desk-1]}
items: [{claim_id: C-BAD}]
retry: {max_attempts: 1}
"""


def test_an_alert_under_way_at_stop_is_sent_again_with_the_same_id(
    tmp_path: Path, receiver: Receiver
) -> None:
    (tmp_path / "jobs").mkdir()
    (tmp_path / "jobs" / "claims.yaml").write_text(JOB)
    (tmp_path / "fleet.yaml").write_text(FLEET)
    path = tmp_path / "config.yaml"
    path.write_text(
        textwrap.dedent(f"""
        store: sqlite:///{tmp_path / "store.sqlite"}
        jobs: jobs
        server: {{listen: null}}
        tracking: {{poll_interval: 1s}}
        emulator: {{speed: 1000, run_duration: "5-10", failure_rate: 0, seed: 1, fixture: fleet.yaml}}
        alerts:
          - {{name: ops, url: "{receiver.url("/ops")}", secret: "{SECRET}", on: [item_failed]}}
        """)
    )
    config = load_config(path)
    store = Store(config.store)
    store.upgrade()
    receiver.hold = True
    try:
        first = ThreadedDaemon(Daemon(config))
        eventually(lambda: store.jobs.get("claims") is not None, timeout=30, what="the job recorded")
        store.fires.request(NewFire("claims", "manual", None), datetime.now(UTC))
        eventually(lambda: receiver.held, timeout=60, what="the alert under way")
        first.stop()  # while the receiver still holds the request
        [alert] = store.outbox.alert_views(limit=10)
        assert alert.status == "pending" and alert.sent_at is None
        # Given back on the stop, not held for the claim's 30 s.
        assert alert.next_try_at <= datetime.now(UTC)

        receiver.hold = False
        receiver.release.set()  # the receiver takes the request the stopped daemon gave up on
        eventually(lambda: receiver.accepted, what="the held request taken")
        second = ThreadedDaemon(Daemon(config))
        try:
            eventually(lambda: store.outbox.alert_counts() == {"sent": 1}, timeout=60, what="the alert sent")
        finally:
            second.stop()
    finally:
        store.close()

    # Sent twice (the receiver took the first copy after the sender stopped), the same alert both times.
    assert len(receiver.accepted) == 2
    ids = [d.headers["webhook-id"] for d in receiver.accepted]
    assert ids == [alert.id, alert.id]
    for delivery in receiver.accepted:
        Webhook(SECRET).verify(delivery.body, delivery.headers)  # a fresh, valid signature on each try
    # A receiver that keeps the ids it has seen takes the event once.
    seen: dict[str, dict[str, object]] = {}
    for delivery in receiver.accepted:
        seen.setdefault(delivery.headers["webhook-id"], json.loads(delivery.body))
    [event] = seen.values()
    assert event["type"] == "item_failed" and event["error"] == "the portal rejected claim C-BAD"
