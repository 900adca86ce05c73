"""The daemon's `GET /healthz` and `GET /metrics` (the Starlette app of `server.build_app`, called through httpx's
ASGI transport), with the counters a real daemon run produced checked against its store; and the live
daemon's real endpoint."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import httpx
import pytest
from cli_support import HistoryRun, LiveDaemon
from prometheus_client.parser import text_string_to_metric_families

from cyberdesk.webhooks import generate_secret, sign
from cyberdesk_runner.metrics import Metrics
from cyberdesk_runner.server import build_app
from cyberdesk_runner.store.views import AttemptQuery
from cyberdesk_runner.tracking import webhooks
from cyberdesk_runner.tracking.webhooks import WebhookReceiver


async def _get(app: Any, path: str, **kwargs: Any) -> httpx.Response:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://runner.test"
    ) as client:
        return await client.request(kwargs.pop("method", "GET"), path, **kwargs)


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


async def test_healthz_is_200_while_alive_and_503_otherwise() -> None:
    state = {"alive": True}
    app = build_app(
        metrics=Metrics(),
        health=lambda: (state["alive"], {"stale_loops": []}),
        webhook=None,
        webhook_path="/webhooks/cyberdesk",
    )
    ok = await _get(app, "/healthz")
    assert ok.status_code == 200 and ok.json() == {"stale_loops": []}
    state["alive"] = False
    assert (await _get(app, "/healthz")).status_code == 503
    # No webhook receiver configured: no webhook route.
    assert (await _get(app, "/webhooks/cyberdesk", method="POST", content=b"{}")).status_code == 404


async def test_stopped_daemon_health_is_503_with_its_details(history_run: HistoryRun) -> None:
    daemon = history_run.daemon
    assert daemon.runtime is not None
    app = build_app(metrics=daemon.runtime.metrics, health=daemon._health, webhook=None, webhook_path="/x")
    response = await _get(app, "/healthz")
    assert response.status_code == 503  # it has stopped
    details = response.json()
    assert details["daemon"] == daemon.id and details["api_ok"] is True
    assert set(details["loops"]) >= {"dispatch", "poll", "reap", "heartbeat", "jobs", "fleet", "schedule"}


async def test_metrics_count_what_the_daemon_did(history_run: HistoryRun) -> None:
    daemon = history_run.daemon
    assert daemon.runtime is not None
    app = build_app(metrics=daemon.runtime.metrics, health=daemon._health, webhook=None, webhook_path="/x")
    response = await _get(app, "/metrics")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    samples = _samples(response.text)

    store = history_run.env.store()
    try:
        attempts = store.queries.attempt_views(AttemptQuery(limit=100_000))
        fires = store.queries.fire_views(limit=100)
        items = [i for f in fires for i in store.queries.item_views(f.id)]
    finally:
        store.close()
    created = Counter(a.job_name for a in attempts if a.run_id)
    finished = Counter((a.job_name, a.status) for a in attempts)
    retries = Counter()  # type: Counter[str]
    for item in items:
        retries[item.job_name] += max(item.attempts - 1, 0)

    for job, count in created.items():
        assert samples[("cyberdesk_runner_runs_created_total", (("job", job),))] == count
    for (job, status), count in finished.items():
        assert samples[("cyberdesk_runner_runs_finished_total", (("job", job), ("status", status)))] == count
    for job, count in retries.items():
        if count:
            assert samples[("cyberdesk_runner_retries_total", (("job", job),))] == count
    assert samples[("cyberdesk_runner_webhook_deliveries_total", (("result", "accepted"),))] > 0
    assert ("cyberdesk_runner_poll_requests_total", ()) in samples
    assert samples[("cyberdesk_runner_dispatch_lag_seconds_count", ())] > 0
    assert samples[("cyberdesk_runner_items_pending", ())] == 0
    assert samples[("cyberdesk_runner_runs_in_flight", ())] == 0
    succeeded = Counter(f.job_name for f in fires if f.status == "succeeded")
    for job, count in succeeded.items():
        assert samples[("cyberdesk_runner_fires_total", (("job", job), ("outcome", "succeeded")))] == count
    for loop in ("dispatch", "poll", "heartbeat"):
        assert samples[("cyberdesk_runner_loop_rounds_total", (("loop", loop),))] >= 1
        assert samples[("cyberdesk_runner_loop_last_round_timestamp_seconds", (("loop", loop),))] > 0
    assert samples[("cyberdesk_runner_news_batch_size_count", ())] >= 1


async def test_webhook_deliveries_accepted_and_rejected_are_counted() -> None:
    metrics = Metrics()
    secret = generate_secret()
    # A downed_machines event is verified and counted without touching the store, so no sink is needed.
    receiver = WebhookReceiver(secret=secret, sink=None, metrics=metrics)  # type: ignore[arg-type]
    app = build_app(metrics=metrics, health=lambda: (True, {}), webhook=receiver, webhook_path="/hook")
    body = json.dumps({"event_type": "downed_machines", "organization_id": "org_1", "machines": []}).encode()
    good = await _get(app, "/hook", method="POST", content=body, headers=sign(body, secret))
    forged = await _get(app, "/hook", method="POST", content=body, headers=sign(body, generate_secret()))
    assert (good.status_code, forged.status_code) == (200, 400)
    samples = _samples((await _get(app, "/metrics")).text)
    assert samples[("cyberdesk_runner_webhook_deliveries_total", (("result", "accepted"),))] == 1
    assert samples[("cyberdesk_runner_webhook_deliveries_total", (("result", "rejected"),))] == 1


async def test_the_webhook_path_takes_posts_of_sane_size_and_leaves_other_paths_alone(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    metrics = Metrics()
    secret = generate_secret()
    receiver = WebhookReceiver(secret=secret, sink=None, metrics=metrics)  # type: ignore[arg-type]
    app = build_app(metrics=metrics, health=lambda: (True, {"ok": 1}), webhook=receiver, webhook_path="/hook")
    wrong_method = await _get(app, "/hook")
    assert wrong_method.status_code == 405 and wrong_method.headers["allow"] == "POST"
    monkeypatch.setattr(webhooks, "MAX_BODY_BYTES", 1000)
    body = json.dumps({"event_type": "downed_machines", "machines": [], "pad": "x" * 1000}).encode()
    too_big = await _get(app, "/hook", method="POST", content=body, headers=sign(body, secret))
    assert too_big.status_code == 413 and too_big.json() == {"detail": "webhook body too large"}
    assert metrics.webhooks.labels("rejected")._value.get() == 1
    assert metrics.webhooks.labels("accepted")._value.get() == 0
    # The daemon's other endpoints are served beside it.
    health = await _get(app, "/healthz")
    assert (health.status_code, health.json()) == (200, {"ok": 1})
    assert (await _get(app, "/hook/more", method="POST", content=b"{}")).status_code == 404


def test_the_running_daemon_serves_healthz_and_metrics(live: LiveDaemon) -> None:
    assert live.daemon.webhook_url is not None
    base = live.daemon.webhook_url.rsplit("/webhooks/", 1)[0]
    health = httpx.get(f"{base}/healthz", timeout=5)
    assert health.status_code == 200 and health.json()["daemon"] == live.daemon.id
    metrics = httpx.get(f"{base}/metrics", timeout=5)
    assert metrics.status_code == 200 and "cyberdesk_runner_runs_in_flight" in metrics.text


async def test_webhooks_with_values_the_sdk_does_not_know_are_accepted_and_change_nothing() -> None:
    class Sink:
        def __init__(self) -> None:
            self.recorded: list[Any] = []

        async def record(self, news: Any) -> None:
            self.recorded += news

    metrics, secret, sink = Metrics(), generate_secret(), Sink()
    receiver = WebhookReceiver(secret=secret, sink=sink, metrics=metrics)  # type: ignore[arg-type]
    app = build_app(metrics=metrics, health=lambda: (True, {}), webhook=receiver, webhook_path="/hook")
    run = {
        "id": "5d1e0d6a-7c2b-4c6e-9a51-0f8e2b7c1a01",
        "workflow_id": "7a2f4b1c-0d3e-4f5a-8b6c-9d0e1f2a3b02",
        "machine_id": None,
        "status": "awaiting_human_review",  # a run status added after this SDK
        "created_at": "2026-11-02T09:00:00Z",
    }
    for event in (
        {"event_type": "run_complete", "run": run},
        {"event_type": "machine_created", "machine": {}},
    ):
        body = json.dumps(event).encode()
        answer = await _get(app, "/hook", method="POST", content=body, headers=sign(body, secret))
        assert answer.status_code == 200  # not a 400: Svix would retry it, then disable the endpoint
    assert sink.recorded == []  # the run stays in flight; polling settles it
    samples = _samples((await _get(app, "/metrics")).text)
    assert samples[("cyberdesk_runner_webhook_deliveries_total", (("result", "accepted"),))] == 2
