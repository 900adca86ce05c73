"""Sending the outbox: claim due alerts (the store holds them for this sender), post each, record the result.

A try that fails (connection error, a non-2xx answer) is tried again with exponential backoff, or after the
receiver's Retry-After, for up to 24 hours, always with the same `webhook-id`. What is recorded of a failure is
a status code or an exception's class name: never the URL, which may be a secret (Slack hooks are).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta

import attrs
import httpx
import structlog

from cyberdesk_runner.alerts.formats import request_for
from cyberdesk_runner.config import AlertDestination
from cyberdesk_runner.store import Store
from cyberdesk_runner.store.consequences import AlertRoute, DueAlert

log = structlog.get_logger("cyberdesk_runner.alerts")

#: How long a claimed alert is held for its sender (longer than one try can take).
CLAIM_HOLD = timedelta(seconds=30)
_TIMEOUT = httpx.Timeout(10.0)


def routes_of(destinations: tuple[AlertDestination, ...]) -> tuple[AlertRoute, ...]:
    return tuple(
        AlertRoute(d.name, frozenset(d.on), frozenset(d.jobs) if d.jobs is not None else None)
        for d in destinations
    )


@attrs.define
class RoundResult:
    sent: int = 0
    failed_tries: int = 0
    given_up: int = 0


async def send_round(
    store: Store,
    destinations: Mapping[str, AlertDestination],
    client: httpx.AsyncClient,
    now: Callable[[], datetime],
    held: set[str] | None = None,
) -> RoundResult:
    """Send every alert due now; returns what happened. `held` gets the ids claimed and not yet settled, so a
    sender stopped mid-round can give them back (`store.outbox.release_claims`)."""
    result = RoundResult()
    held = set() if held is None else held
    due = await asyncio.to_thread(store.outbox.claim_alerts, now(), CLAIM_HOLD)
    held.update(a.id for a in due)
    for alert in due:
        await _send_one(store, destinations, client, now, alert, result)
        held.discard(alert.id)
    return result


async def _send_one(
    store: Store,
    destinations: Mapping[str, AlertDestination],
    client: httpx.AsyncClient,
    now: Callable[[], datetime],
    alert: DueAlert,
    result: RoundResult,
) -> None:
    destination = destinations.get(alert.destination)
    if destination is None:
        await asyncio.to_thread(
            store.outbox.alert_try_failed, alert.id, "no such destination in the config", now()
        )
        result.failed_tries += 1
        return
    error, retry_after = await _post(client, destination, alert, now())
    if error is None:
        await asyncio.to_thread(store.outbox.alert_sent, alert.id, now())
        result.sent += 1
        log.info("alert_sent", alert=alert.id, type=alert.type, destination=alert.destination)
        return
    status = await asyncio.to_thread(store.outbox.alert_try_failed, alert.id, error, now(), retry_after)
    result.failed_tries += 1
    result.given_up += status == "failed"
    log.warning("alert_try_failed", alert=alert.id, destination=alert.destination, error=error, status=status)


async def _post(
    client: httpx.AsyncClient, destination: AlertDestination, alert: DueAlert, now: datetime
) -> tuple[str | None, timedelta | None]:
    body, headers = request_for(destination, alert.id, alert.payload, now)
    try:
        response = await client.post(
            destination.url.get_secret_value(), content=body, headers=headers, timeout=_TIMEOUT
        )
    except httpx.HTTPError as exc:
        return type(exc).__name__, None  # str(exc) may quote the URL
    if response.is_success:
        return None, None
    return f"HTTP {response.status_code}", _retry_after(response)


def _retry_after(response: httpx.Response) -> timedelta | None:
    value = response.headers.get("retry-after", "")
    return timedelta(seconds=min(float(value), 3600)) if value.replace(".", "", 1).isdigit() else None
