"""run_complete webhooks: bare event bodies signed with the Svix scheme, retried on failure."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from svix.webhooks import Webhook, WebhookVerificationError

from cyberdesk.emulator import Emulator

from .conftest import wf

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


class Receiver:
    """An httpx transport standing in for a webhook endpoint; fails the first `fail_first` calls."""

    def __init__(self, fail_first: int = 0, status: int = 500) -> None:
        self.requests: list[httpx.Request] = []
        self.fail_first = fail_first
        self.status = status

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if len(self.requests) <= self.fail_first:
            if self.status == 0:
                raise httpx.ConnectError("connection refused", request=request)
            return httpx.Response(self.status)
        return httpx.Response(204)

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle)


def verified(request: httpx.Request, secret: str = SECRET) -> dict[str, Any]:
    headers = {k: request.headers[k] for k in ("svix-id", "svix-timestamp", "svix-signature")}
    Webhook(secret).verify(request.content, headers)  # raises WebhookVerificationError when forged
    event: dict[str, Any] = json.loads(request.content)
    return event


async def test_terminal_runs_send_signed_run_complete(make_emulator: Callable[..., Emulator]) -> None:
    receiver = Receiver()
    em = make_emulator(
        webhook_transport=receiver.transport(), webhook_url="https://hooks.test/cd", webhook_secret=SECRET
    )
    ok = em.create_run(wf(em), input_values={"claim_id": "C-1"})
    cancelled = em.create_run(wf(em))
    silent = em.create_run(wf(em, "Nightly desktop health check"))  # webhooks disabled on this workflow
    em.process_due()
    em.cancel_run(cancelled.id)
    em.advance(100)
    await em.deliver_webhooks()
    assert silent.status == "success"
    assert len(receiver.requests) == 2
    events = {verified(r)["run"]["id"]: verified(r) for r in receiver.requests}
    assert set(events) == {ok.id, cancelled.id}
    event = events[ok.id]
    assert event["event_type"] == "run_complete"
    assert set(event) == {"event_id", "event_type", "occurred_at", "run"}
    assert event["run"]["status"] == "success" and "machine_id" in event["run"]
    assert event["occurred_at"] == event["run"]["ended_at"]
    assert events[cancelled.id]["run"]["status"] == "cancelled"
    request = receiver.requests[0]
    assert str(request.url) == "https://hooks.test/cd"
    assert request.headers["content-type"] == "application/json"
    with pytest.raises(WebhookVerificationError):
        verified(request, "whsec_" + "A" * 32)
    counters = em.webhooks.counters()
    assert counters["delivered"] == 2 and counters["failed"] == 0 and counters["pending"] == 0


@pytest.mark.parametrize("status", [503, 0])
async def test_failed_deliveries_are_retried_with_the_same_id(
    make_emulator: Callable[..., Emulator], status: int
) -> None:
    receiver = Receiver(fail_first=2, status=status)
    em = make_emulator(webhook_transport=receiver.transport(), webhook_retry_delays=(0.0, 0.0, 0.0, 0.0))
    em.add_webhook_endpoint("https://hooks.test/a", SECRET)
    em.create_run(wf(em))
    em.process_due()
    em.advance(100)
    await em.deliver_webhooks()
    assert len(receiver.requests) == 3
    assert len({r.headers["svix-id"] for r in receiver.requests}) == 1
    for request in receiver.requests:
        verified(request)  # each attempt is signed afresh
    assert em.webhooks.counters() == {
        "delivered": 1,
        "failed": 0,
        "attempts": 3,
        "failed_attempts": 2,
        "pending": 0,
    }
    states = [entry["state"] for entry in em.webhooks.log]
    assert states == ["pending", "pending", "delivered"]


async def test_delivery_gives_up_after_five_attempts(make_emulator: Callable[..., Emulator]) -> None:
    receiver = Receiver(fail_first=100)
    em = make_emulator(webhook_transport=receiver.transport(), webhook_retry_delays=(0.0, 0.0, 0.0, 0.0))
    em.add_webhook_endpoint("https://hooks.test/a", SECRET)
    em.create_run(wf(em))
    em.run_until_idle()
    await em.deliver_webhooks()
    assert len(receiver.requests) == 5
    assert em.webhooks.counters()["failed"] == 1


async def test_every_endpoint_gets_every_event(make_emulator: Callable[..., Emulator]) -> None:
    receiver = Receiver()
    em = make_emulator(webhook_transport=receiver.transport())
    other_secret = "whsec_" + "B" * 32
    em.add_webhook_endpoint("https://one.test/", SECRET)
    em.add_webhook_endpoint("https://two.test/", other_secret)
    em.create_run(wf(em))
    em.run_until_idle()
    await em.deliver_webhooks()
    by_host = {r.url.host: r for r in receiver.requests}
    assert set(by_host) == {"one.test", "two.test"}
    verified(by_host["one.test"])
    verified(by_host["two.test"], other_secret)
    assert json.loads(by_host["one.test"].content) == json.loads(by_host["two.test"].content)


def test_invalid_secret_is_rejected_up_front(em: Emulator) -> None:
    with pytest.raises(Exception):  # noqa: B017 - svix raises its own error types for bad base64
        em.add_webhook_endpoint("https://x.test", "not base64 !!")
