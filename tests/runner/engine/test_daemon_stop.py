"""A daemon asked to stop answers the webhooks it is receiving, with their news committed, before it stops: no
request cut off, no traceback in the log."""

from __future__ import annotations

import asyncio
import base64
import json
import textwrap
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path

import httpx
import pytest

from cyberdesk.emulator import Emulator, EmulatorServer
from cyberdesk.webhooks import sign
from cyberdesk_runner.config import load_config
from cyberdesk_runner.daemon import Daemon, RunOptions
from cyberdesk_runner.store.records import RunObservation
from cyberdesk_runner.tracking.news import News
from cyberdesk_runner.tracking.sink import ObservationSink

SECRET = "whsec_" + base64.b64encode(b"daemon-stop-test-secret-01234567").decode()


def _eventually(check: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + 20
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


def test_a_webhook_under_way_at_stop_is_answered_before_the_daemon_stops(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    emulator = Emulator(speed=10, seed=1)
    server = EmulatorServer(emulator).start()
    (tmp_path / "jobs").mkdir()
    config = tmp_path / "config.yaml"
    config.write_text(
        textwrap.dedent(f"""
        cyberdesk: {{api_key: {emulator.api_key}, base_url: "{server.base_url}"}}
        store: sqlite:///store.sqlite
        jobs: jobs
        tracking:
          webhook: {{listen: "127.0.0.1:0", secret: "{SECRET}"}}
        """)
    )
    # The sink holds a webhook's news until the test lets it go: the stop is asked for meanwhile.
    entered, release = threading.Event(), threading.Event()
    flush = ObservationSink.flush

    async def held_flush(self: ObservationSink, batch: Sequence[News]) -> None:
        if any(isinstance(n, RunObservation) and n.source == "webhook" for n in batch):
            entered.set()
            await asyncio.to_thread(release.wait, 30)
        await flush(self, batch)

    monkeypatch.setattr(ObservationSink, "flush", held_flush)
    daemon = Daemon(load_config(config))
    errors: list[BaseException] = []

    def main() -> None:
        try:
            asyncio.run(daemon.run(RunOptions()))
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=main, name="daemon", daemon=True)
    answers: list[httpx.Response | BaseException] = []
    try:
        thread.start()
        _eventually(lambda: daemon.webhook_url is not None, "the daemon's webhook endpoint")
        run_id = str(uuid.uuid4())
        body = json.dumps(
            {
                "event_type": "run_complete",
                "run": {
                    "id": run_id,
                    "workflow_id": str(uuid.uuid4()),
                    "machine_id": None,
                    "status": "success",
                    "created_at": "2026-11-30T14:00:00Z",
                },
            }
        ).encode()

        def deliver() -> None:
            try:
                answers.append(
                    httpx.post(str(daemon.webhook_url), content=body, headers=sign(body, SECRET), timeout=30)
                )
            except BaseException as exc:
                answers.append(exc)

        sender = threading.Thread(target=deliver)
        sender.start()
        _eventually(entered.is_set, "the webhook to reach the sink")
        loop = daemon._event_loop
        assert loop is not None
        loop.call_soon_threadsafe(daemon.request_stop)
        _eventually(daemon._stop.is_set, "the stop to begin")
        release.set()
        sender.join(timeout=30)
        thread.join(timeout=30)
        assert not thread.is_alive(), "the daemon did not stop"
    finally:
        release.set()
        server.stop()
    assert errors == []
    # Answered only once its news was committed (a cut-off sender would deliver it again later).
    [answer] = answers
    assert isinstance(answer, httpx.Response) and answer.status_code == 200, answer
