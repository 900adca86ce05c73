"""Verify and sign Svix webhook deliveries.

A delivery is the raw JSON event (``run_complete`` or ``downed_machines``) signed with the headers ``svix-id``,
``svix-timestamp`` and ``svix-signature`` (HMAC-SHA256 over ``"{id}.{timestamp}.{body}"``, with the key of a
``whsec_<base64>`` secret). :func:`verify` checks it with ``svix.Webhook(secret).verify`` (5 minute timestamp
tolerance) and returns the typed event::

    event = verify(await request.body(), request.headers, secret)
    if isinstance(event, RunCompletedEvent) and event.run.status == "success":
        ...

Every failure raises :class:`WebhookVerificationError`; its message says what was wrong, never the secret.
"""

import base64
import json
import math
import secrets
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any
from uuid import uuid4

from svix.webhooks import Webhook
from svix.webhooks import WebhookVerificationError as SvixVerificationError

from .models import DownedMachinesEvent, ModelError, RunCompletedEvent

WebhookEvent = RunCompletedEvent | DownedMachinesEvent

SIGNATURE_HEADERS = ("svix-id", "svix-timestamp", "svix-signature")

_EVENT_TYPES: dict[str, type[RunCompletedEvent] | type[DownedMachinesEvent]] = {
    "run_complete": RunCompletedEvent,
    "downed_machines": DownedMachinesEvent,
}


class WebhookVerificationError(Exception):
    """A delivery that must be rejected (answer 400): bad or missing signature headers, a stale or future
    timestamp, a body that is not the signed one, or a body that is not a known event."""


def _webhook(secret: str) -> Webhook:
    try:
        return Webhook(secret)
    except Exception as exc:  # svix raises binascii.Error, RuntimeError or its own empty-secret error
        # ``from None``: the secret must not surface through a chained traceback either.
        raise WebhookVerificationError(
            f"invalid webhook secret ({type(exc).__name__}); expected 'whsec_' followed by base64"
        ) from None


def parse_event(data: Any) -> WebhookEvent:
    """The typed event of a decoded (already verified) delivery body, chosen by ``event_type``."""
    if not isinstance(data, dict):
        raise WebhookVerificationError("webhook body is not a JSON object")
    event_type = data.get("event_type", "run_complete" if "run" in data else "downed_machines")
    model = _EVENT_TYPES.get(event_type) if isinstance(event_type, str) else None
    if model is None:
        raise WebhookVerificationError(f"unknown webhook event_type {event_type!r}")
    try:
        return model.from_dict(data)
    except ModelError as exc:
        raise WebhookVerificationError(f"malformed {event_type} event: {exc}") from None


def verify(payload: bytes | str, headers: Mapping[str, str], secret: str) -> WebhookEvent:
    """Check the Svix signature of a delivery and return its typed event.

    ``payload`` must be the raw body exactly as received; ``headers`` any mapping (case-insensitive lookup).
    """
    given = {k.lower(): v for k, v in headers.items()}
    missing = [h for h in SIGNATURE_HEADERS if not given.get(h)]
    if missing:
        raise WebhookVerificationError(f"missing webhook header(s): {', '.join(missing)}")
    webhook = _webhook(secret)
    try:
        webhook.verify(payload, {h: given[h] for h in SIGNATURE_HEADERS})
    except SvixVerificationError as exc:
        raise WebhookVerificationError(f"webhook signature check failed: {exc}") from None
    except ValueError as exc:  # a malformed signature header (bad base64 too), or a body that is not UTF-8
        raise WebhookVerificationError(f"malformed webhook delivery: {type(exc).__name__}: {exc}") from None
    try:
        data = json.loads(payload)
    except ValueError as exc:
        raise WebhookVerificationError(f"webhook body is not JSON: {exc}") from None
    return parse_event(data)


def sign(
    payload: bytes, secret: str, *, msg_id: str | None = None, timestamp: datetime | None = None
) -> dict[str, str]:
    """The Svix headers of a delivery of ``payload`` (what the sender adds; the emulator uses this)."""
    when = timestamp or datetime.now(UTC)
    when = when.astimezone(UTC) if when.tzinfo else when.replace(tzinfo=UTC)
    msg_id = msg_id or f"msg_{uuid4().hex}"
    try:
        signature = _webhook(secret).sign(msg_id, when, payload.decode())
    except UnicodeDecodeError:
        raise WebhookVerificationError("webhook payload is not UTF-8") from None
    return {
        "svix-id": msg_id,
        "svix-timestamp": str(math.floor(when.timestamp())),
        "svix-signature": signature,
    }


def generate_secret() -> str:
    """A new random signing secret in Svix's ``whsec_<base64>`` format."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()


__all__ = ["WebhookEvent", "WebhookVerificationError", "generate_secret", "parse_event", "sign", "verify"]
