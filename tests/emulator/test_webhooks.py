"""run_complete webhooks: bare event bodies signed with the Svix scheme, retried on failure."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from typing import Any

import httpx
import pytest
from httpx_aiohttp import AiohttpTransport
from svix.webhooks import Webhook, WebhookVerificationError

from cyberdesk.emulator import Emulator, EmulatorOptions, ManualClock
from cyberdesk.emulator.cli import ServeOptions
from cyberdesk.emulator.ticker import MIN_PAUSE, pause
from cyberdesk.emulator.webhooks import WebhookDispatcher

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
    for entry in em.webhooks.log:  # each attempt says when its request went out and when it was answered
        assert datetime.fromisoformat(entry["sent_at"]) <= datetime.fromisoformat(entry["at"])


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


class FakeMonotonic:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_the_rate_cap_holds_in_every_second_and_does_not_starve() -> None:
    time = FakeMonotonic()
    dispatcher = WebhookDispatcher((0.5,), 5.0, monotonic=time, rate=50)
    dispatcher.add_endpoint("https://hooks.test/a", SECRET)
    for n in range(2000):
        dispatcher.enqueue({"event_id": f"evt_{n}", "run": {"id": f"run_{n}"}}, f"msg_{n}")
    taken_at: list[float] = []
    for _ in range(1000):  # ten seconds in ticks of 10 ms, as the served emulator's ticker polls
        taken_at += [time.now] * len(dispatcher.take_due())
        time.now += 0.01
    # Any one-second window holds at most a second's worth plus the burst (a tenth of a second's worth).
    for start in taken_at:
        assert sum(1 for at in taken_at if start <= at < start + 1.0) <= 50 + 5
    assert 500 <= len(taken_at) <= 505  # ten seconds at the cap: deliveries go on at the cap's pace
    assert dispatcher.pending == 2000  # every delivery taken is in flight until attempted; none is lost


def test_a_capped_dispatcher_says_when_the_next_attempt_may_go() -> None:
    time = FakeMonotonic()
    dispatcher = WebhookDispatcher((0.5,), 5.0, monotonic=time, rate=2)
    dispatcher.add_endpoint("https://hooks.test/a", SECRET)
    for n in range(3):
        dispatcher.enqueue({"event_id": f"evt_{n}", "run": {"id": f"run_{n}"}}, f"msg_{n}")
    assert len(dispatcher.take_due()) == 1  # a burst of at least one
    assert dispatcher.next_due_in() == pytest.approx(0.5)
    assert dispatcher.take_due() == []
    time.now += 0.5
    assert len(dispatcher.take_due()) == 1


async def test_capped_deliveries_still_arrive_signed(make_emulator: Callable[..., Emulator]) -> None:
    receiver = Receiver()
    em = make_emulator(webhook_transport=receiver.transport(), webhook_rate=1000)
    em.add_webhook_endpoint("https://hooks.test/a", SECRET)
    for _ in range(3):
        em.create_run(wf(em))
    em.run_until_idle()
    await em.deliver_webhooks()
    assert len(receiver.requests) == 3
    for request in receiver.requests:
        verified(request)


@pytest.mark.parametrize("rate", [0, -5])
def test_the_webhook_rate_must_be_positive(rate: float) -> None:
    with pytest.raises(ValueError, match="webhook_rate must be > 0"):
        EmulatorOptions(webhook_rate=rate)


async def test_deliveries_go_through_aiohttp_unless_a_transport_is_given() -> None:
    # The command line's options (`cyberdesk-runner emulator`, `python -m cyberdesk.emulator`) give no
    # transport; the served emulator's ticker and `deliver_webhooks()` both send through `client()`.
    em = Emulator(ServeOptions(webhook_rate=200).emulator_options())
    assert em.webhooks.rate == 200
    async with em.webhooks.client() as client:
        assert isinstance(client._transport, AiohttpTransport)
    mock = httpx.MockTransport(lambda request: httpx.Response(204))
    async with Emulator(webhook_transport=mock).webhooks.client() as client:
        assert client._transport is mock


def test_the_ticker_wakes_when_the_next_run_ends_not_a_whole_tick_later(
    make_emulator: Callable[..., Emulator], clock: ManualClock
) -> None:
    em = make_emulator()  # runs take exactly 100 simulated seconds
    assert pause(em, 0.01) == 0.01  # nothing scheduled: the ticker's interval
    em.create_run(wf(em))
    em.process_due()  # placed: it ends 100 simulated seconds from now, at the emulator's speed
    ends_in = em.next_due_in()
    assert ends_in is not None and ends_in > 0
    clock.advance(ends_in - 0.004)
    assert pause(em, 0.01) == pytest.approx(0.004, abs=1e-6)  # sooner than the interval: when the run ends
    clock.advance(0.004)
    assert pause(em, 0.01) == MIN_PAUSE  # due now: the next pass comes at once, but never spins


def test_the_ticker_waits_for_capped_or_retried_webhooks_only_when_it_has_room_for_them(
    make_emulator: Callable[..., Emulator],
) -> None:
    em = make_emulator(webhook_rate=2, webhook_url="https://hooks.test/a", webhook_secret=SECRET)
    for n in range(3):
        em.webhooks.enqueue({"event_id": f"evt_{n}", "run": {"id": f"run_{n}"}}, f"msg_{n}")
    assert pause(em, 1.0) == MIN_PAUSE  # the first is due at once
    em.webhooks.take_due()
    assert pause(em, 1.0) == pytest.approx(0.5, abs=0.05)  # the cap lets the next go in half a second
    assert pause(em, 1.0, webhooks=False) == 1.0  # no room for deliveries: they do not wake the ticker
