"""Served over real sockets: EmulatorServer, the pytest plugin fixtures, the ticker, dropped replies."""

from __future__ import annotations

import http.server
import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from svix.webhooks import Webhook

from cyberdesk.emulator import Emulator, EmulatorServer
from cyberdesk.emulator.pytest_plugin import EmulatorHandle

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


def wait_for(predicate: Any, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.01)


def test_emulator_server_start_stop() -> None:
    em = Emulator(seed=1)
    server = EmulatorServer(em).start()
    try:
        assert server.base_url.startswith("http://127.0.0.1:") and server.port > 0
        response = httpx.get(
            f"{server.base_url}/v1/machines", headers={"Authorization": f"Bearer {em.api_key}"}
        )
        assert response.status_code == 200 and response.json()["total"] == 12
    finally:
        server.stop()
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{server.base_url}/v1/health")


def test_fixture_serves_a_fresh_emulator(cyberdesk_emulator: EmulatorHandle) -> None:
    with cyberdesk_emulator.client() as client:
        assert client.get("/v1/health").status_code == 200
        assert len(client.get("/v1/workflows").json()["items"]) == 6
    assert cyberdesk_emulator.emulator.api_key == cyberdesk_emulator.api_key


def test_ticker_moves_runs_without_requests(cyberdesk_emulator_factory: Any) -> None:
    handle: EmulatorHandle = cyberdesk_emulator_factory(speed=1000, run_duration="30-60", seed=2)
    em = handle.emulator
    with handle.client() as client:
        created = client.post("/v1/runs", json={"workflow_id": em.workflow("Reconcile invoices").id})
        run_id = created.json()["id"]
    wait_for(lambda: em.run(run_id).status == "success")
    assert em.overlaps() == []


def test_dropped_response_over_a_socket_then_retry(cyberdesk_emulator_factory: Any) -> None:
    handle: EmulatorHandle = cyberdesk_emulator_factory(drop_responses=1.0)
    em = handle.emulator
    body = {"workflow_id": em.workflow("Submit insurance claim").id}
    headers = {"Idempotency-Key": "drop-me"}
    with handle.client() as client:
        with pytest.raises(httpx.RemoteProtocolError):
            client.post("/v1/runs", json=body, headers=headers)
        assert len(em.world.runs) == 1
        client.post("/_emulator/faults", json={"drop_responses": 0})
        retry = client.post("/v1/runs", json=body, headers=headers)
        assert retry.status_code == 201 and retry.json()["id"] == next(iter(em.world.runs))
        stats = client.get("/_emulator/stats").json()
    assert len(em.world.runs) == 1
    assert stats["runs"]["created"] == 1 and stats["runs"]["create_replays"] == 1
    assert stats["faults"]["dropped"] == 1 and stats["duplicates"] == []


class _Hooks(http.server.BaseHTTPRequestHandler):
    received: list[tuple[bytes, dict[str, str]]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["content-length"]))
        type(self).received.append((body, {k.lower(): v for k, v in self.headers.items()}))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def hook_server() -> Iterator[tuple[str, list[tuple[bytes, dict[str, str]]]]]:
    received: list[tuple[bytes, dict[str, str]]] = []
    handler = type("Hooks", (_Hooks,), {"received": received})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hooks", received
    server.shutdown()
    server.server_close()
    thread.join()


def test_webhooks_reach_a_real_receiver(cyberdesk_emulator_factory: Any, hook_server: Any) -> None:
    url, received = hook_server
    handle: EmulatorHandle = cyberdesk_emulator_factory(speed=1000, run_duration="10-10")
    em = handle.emulator
    em.add_webhook_endpoint(url, SECRET)  # wired at runtime, as the daemon does
    with handle.client() as client:
        run_id = client.post(
            "/v1/runs", json={"workflow_id": em.workflow("Submit insurance claim").id}
        ).json()["id"]
    wait_for(lambda: len(received) == 1)
    body, headers = received[0]
    Webhook(SECRET).verify(body, {k: headers[k] for k in ("svix-id", "svix-timestamp", "svix-signature")})
    event = json.loads(body)
    assert event["run"]["id"] == run_id and event["run"]["status"] == "success"
    wait_for(lambda: em.webhooks.counters()["delivered"] == 1)


def test_control_endpoint_adds_webhooks(cyberdesk_emulator: EmulatorHandle, hook_server: Any) -> None:
    url, _ = hook_server
    with cyberdesk_emulator.client() as client:
        assert client.post("/_emulator/webhooks", json={"url": url, "secret": SECRET}).status_code == 201
        assert (
            client.post("/_emulator/webhooks", json={"url": url, "secret": "bad secret!"}).status_code == 400
        )
        assert client.get("/_emulator/webhooks").json()["endpoints"] == [url]


def test_cli_command_and_module_entry_point() -> None:
    import signal
    import subprocess
    import sys

    import typer
    from typer.testing import CliRunner

    from cyberdesk_runner.cli.emulator import register

    app = typer.Typer()
    register(app)

    @app.command()
    def other() -> None:  # a second command keeps Typer in multi-command mode
        pass

    help_text = CliRunner().invoke(app, ["emulator", "--help"]).output
    for flag in (
        "--host",
        "--port",
        "--api-key",
        "--fixture",
        "--speed",
        "--run-duration",
        "--failure-rate",
        "--webhook-url",
        "--webhook-secret",
        "--webhook-rate",
        "--rate-limit",
        "--server-errors",
        "--drop-responses",
        "--latency",
        "--seed",
    ):
        assert flag in help_text
    bad = CliRunner().invoke(app, ["emulator", "--webhook-url", "http://x"])
    assert bad.exit_code != 0

    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "cyberdesk.emulator",
            "--port",
            "0",
            "--speed",
            "100",
            "--log-level",
            "warning",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        assert first.startswith("Cyberdesk emulator listening on http://127.0.0.1:")
        base_url = first.rsplit(" ", 1)[1].strip()
        assert httpx.get(f"{base_url}/v1/health").status_code == 200
    finally:
        proc.send_signal(signal.SIGINT)  # Ctrl-C: a graceful stop
        proc.wait(10)
        if proc.stdout is not None:
            proc.stdout.close()
    assert proc.returncode == 0


def test_webhook_deliveries_in_flight_are_bounded(cyberdesk_emulator_factory: Any) -> None:
    gate, lock = threading.Event(), threading.Lock()
    inside: list[int] = [0, 0]  # now, most at once
    delivered: list[bytes] = []

    class Slow(_Hooks):
        def do_POST(self) -> None:
            with lock:
                inside[0] += 1
                inside[1] = max(inside)
            gate.wait(10)
            with lock:
                inside[0] -= 1
                delivered.append(self.rfile.read(int(self.headers["content-length"])))
            self.send_response(204)
            self.end_headers()

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Slow)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        handle: EmulatorHandle = cyberdesk_emulator_factory(
            speed=1000, run_duration="10-10", webhook_concurrency=2
        )
        em = handle.emulator
        em.add_webhook_endpoint(f"http://127.0.0.1:{server.server_address[1]}/hooks", SECRET)
        workflow_id = em.workflow("Submit insurance claim").id
        with handle.client() as client:
            for _ in range(6):
                assert client.post("/v1/runs", json={"workflow_id": workflow_id}).status_code == 201
        wait_for(lambda: inside[0] == 2)
        time.sleep(0.1)  # ten ticks: a third delivery would have started by now
        assert inside == [2, 2]
        gate.set()
        wait_for(lambda: len(delivered) == 6)
        assert inside[1] == 2
    finally:
        gate.set()
        server.shutdown()
        server.server_close()


def test_webhook_concurrency_must_be_positive() -> None:
    from cyberdesk.emulator import EmulatorOptions

    with pytest.raises(ValueError, match="webhook_concurrency"):
        EmulatorOptions(webhook_concurrency=0)
