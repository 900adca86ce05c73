"""Verify and sign Svix webhook deliveries.

A delivery is the raw JSON event (``run_complete`` or ``downed_machines``) signed with the headers ``svix-id``,
``svix-timestamp`` and ``svix-signature`` (HMAC-SHA256 over ``"{id}.{timestamp}.{body}"``, with the key of a
``whsec_<base64>`` secret). :func:`verify` checks it with svix's verifier (5 minute timestamp tolerance) and
returns the typed event::

    event = verify(await request.body(), request.headers, secret)
    if isinstance(event, RunCompletedEvent) and event.run.status == "success":
        ...

Every failure raises :class:`WebhookVerificationError`: its ``reason`` (a :class:`Rejection`) says what kind of
problem it was and its message says what was wrong, in our words whatever the installed svix version says, and
never with the secret.
"""

import base64
import json
import math
import secrets
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any, Protocol
from uuid import uuid4

from .models import DownedMachinesEvent, ModelError, RunCompletedEvent, UnknownWebhookEvent

#: ``UnknownWebhookEvent``: a type added to Cyberdesk after this SDK; the delivery is genuine, accept it.
WebhookEvent = RunCompletedEvent | DownedMachinesEvent | UnknownWebhookEvent

SIGNATURE_HEADERS = ("svix-id", "svix-timestamp", "svix-signature")

_EVENT_TYPES: dict[str, type[WebhookEvent]] = {
    "run_complete": RunCompletedEvent,
    "downed_machines": DownedMachinesEvent,
}


#: Svix's (and Standard Webhooks') tolerance for the distance between a delivery's timestamp and now.
TIMESTAMP_TOLERANCE = timedelta(minutes=5)


class Rejection(StrEnum):
    """Why a delivery was rejected: what a receiver can match on (the message is for people)."""

    MISSING_HEADER = "missing_header"
    MALFORMED_HEADER = "malformed_header"
    STALE_TIMESTAMP = "stale_timestamp"
    BAD_SIGNATURE = "bad_signature"
    MALFORMED_BODY = "malformed_body"
    INVALID_SECRET = "invalid_secret"


class WebhookVerificationError(Exception):
    """A delivery that must be rejected (answer 400): bad or missing signature headers, a stale or future
    timestamp, a body that is not the signed one, or a body that is not an event. ``reason`` says which."""

    def __init__(self, reason: Rejection, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class _Verifier(Protocol):
    """What is used of svix's ``Webhook``: ``verify`` returns the body parsed (svix 1.x) or None (svix 2.x)."""

    def verify(self, data: bytes | str, headers: dict[str, str]) -> Any: ...

    def sign(self, msg_id: str, timestamp: datetime, data: str) -> str: ...


class _StandardWebhook:
    """svix's verifier without svix's package: ``svix.webhooks.Webhook`` (svix 2.x) is standardwebhooks'
    ``Webhook`` under svix's header names, but importing it runs ``svix/__init__``, which loads svix's whole
    generated API client: about 7 MB of memory for the life of the process (a daemon's webhook receiver), and
    over a second on a loaded machine. Same scheme, same checks (tests/sdk/test_webhooks.py: with svix's own)."""

    def __init__(self, secret: str) -> None:
        from standardwebhooks.webhooks import Webhook

        self._inner = Webhook(secret)

    def verify(self, data: bytes | str, headers: dict[str, str]) -> Any:
        standard = {"webhook-" + name.removeprefix("svix-"): value for name, value in headers.items()}
        return self._inner.verify(data, standard)  # the body, parsed once the signature matched

    def sign(self, msg_id: str, timestamp: datetime, data: str) -> str:
        return self._inner.sign(msg_id, timestamp, data)


def _verifier_type() -> Callable[[str], _Verifier]:
    # Imported on first use, not with `import cyberdesk` (every CLI command would pay for it).
    try:
        import standardwebhooks.webhooks  # noqa: F401 - what svix 2.x (a dependency of it) verifies with
    except ImportError:  # an svix that verifies by itself (1.x)
        from svix.webhooks import Webhook

        return Webhook
    return _StandardWebhook


def _webhook(secret: str) -> _Verifier:
    try:
        if not secret.removeprefix("whsec_"):
            raise ValueError("empty")  # svix 2.x refuses it too; svix 1.x would accept an empty key
        return _verifier_type()(secret)
    except Exception as exc:  # svix raises binascii.Error, RuntimeError or its own empty-secret error
        # ``from None``: the secret must not surface through a chained traceback either.
        raise WebhookVerificationError(
            Rejection.INVALID_SECRET,
            f"invalid webhook secret ({type(exc).__name__}); expected 'whsec_' followed by base64",
        ) from None


def _check_timestamp(value: str, now: datetime) -> None:
    """Our own words for the one header check whose failure has a cause worth naming (clock skew, a replay);
    svix checks it again, with the same tolerance."""
    try:
        sent = datetime.fromtimestamp(float(value), UTC)
    except (ValueError, OverflowError, OSError):
        raise WebhookVerificationError(
            Rejection.MALFORMED_HEADER, f"svix-timestamp {value[:40]!r} is not a Unix time in seconds"
        ) from None
    if abs(sent - now) > TIMESTAMP_TOLERANCE:
        side = "old" if sent < now else "new"
        raise WebhookVerificationError(
            Rejection.STALE_TIMESTAMP,
            f"webhook timestamp too {side}: {sent:%Y-%m-%dT%H:%M:%SZ} is more than "
            f"{TIMESTAMP_TOLERANCE.seconds // 60} minutes from now (a replay, or a clock out of sync)",
        )


def parse_event(data: Any) -> WebhookEvent:
    """The typed event of a decoded (already verified) delivery body, chosen by ``event_type`` (an event type this
    SDK does not know is an :class:`UnknownWebhookEvent`, not an error)."""
    if not isinstance(data, dict):
        raise WebhookVerificationError(Rejection.MALFORMED_BODY, "webhook body is not a JSON object")
    event_type = data.get("event_type", "run_complete" if "run" in data else "downed_machines")
    if not isinstance(event_type, str):
        raise WebhookVerificationError(
            Rejection.MALFORMED_BODY, f"webhook event_type {event_type!r} is not a string"
        )
    model = _EVENT_TYPES.get(event_type, UnknownWebhookEvent)
    try:
        return model.from_dict(data)
    except ModelError as exc:
        raise WebhookVerificationError(
            Rejection.MALFORMED_BODY, f"malformed {event_type} event: {exc}"
        ) from None


def verify(payload: bytes | str, headers: Mapping[str, str], secret: str) -> WebhookEvent:
    """Check the Svix signature of a delivery and return its typed event.

    ``payload`` must be the raw body exactly as received; ``headers`` any mapping (case-insensitive lookup).
    A receiver that checks every delivery against one secret keeps a :class:`WebhookVerifier` instead.
    """
    return WebhookVerifier(secret).verify(payload, headers)


class WebhookVerifier:
    """:func:`verify` for one secret, decoded once rather than for every delivery: the same checks in the same
    order, with the same errors (an invalid secret too is reported by ``verify``, once the headers are checked)."""

    def __init__(self, secret: str) -> None:
        self._verifier: _Verifier | None = None
        self._invalid: WebhookVerificationError | None = None
        try:
            self._verifier = _webhook(secret)
        except WebhookVerificationError as exc:
            self._invalid = exc

    def __repr__(self) -> str:
        return "<WebhookVerifier>"  # never the secret

    def verify(self, payload: bytes | str, headers: Mapping[str, str]) -> WebhookEvent:
        """Check the Svix signature of a delivery and return its typed event (see :func:`verify`)."""
        given = {k.lower(): v for k, v in headers.items()}
        signature = {h: given.get(h, "") for h in SIGNATURE_HEADERS}
        missing = [h for h, value in signature.items() if not value]
        if missing:
            raise WebhookVerificationError(
                Rejection.MISSING_HEADER, f"missing webhook header(s): {', '.join(missing)}"
            )
        if self._verifier is None:
            assert self._invalid is not None
            raise WebhookVerificationError(self._invalid.reason, str(self._invalid)) from None
        _check_timestamp(signature["svix-timestamp"], datetime.now(UTC))
        data: Any = None
        try:
            data = self._verifier.verify(payload, signature)
        except json.JSONDecodeError:
            pass  # parsed once the signature matched (svix 1.x, standardwebhooks); ours below says what is wrong
        except Exception as exc:
            # Whatever svix raises: its own WebhookVerificationError (2.x, and 1.x for most problems), a ValueError
            # for a garbled svix-signature (older 1.x), a UnicodeDecodeError... all mean "not signed with this
            # secret".
            raise WebhookVerificationError(
                Rejection.BAD_SIGNATURE,
                f"webhook signature does not verify ({type(exc).__name__}): no svix-signature matches "
                "this body and timestamp with the configured secret",
            ) from None
        if (
            data is None
        ):  # svix 2.x returns nothing; a JSON `null` body is refused by parse_event all the same
            try:
                data = json.loads(payload)
            except ValueError as exc:
                raise WebhookVerificationError(
                    Rejection.MALFORMED_BODY, f"webhook body is not JSON: {exc}"
                ) from None
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
        raise WebhookVerificationError(Rejection.MALFORMED_BODY, "webhook payload is not UTF-8") from None
    return {
        "svix-id": msg_id,
        "svix-timestamp": str(math.floor(when.timestamp())),
        "svix-signature": signature,
    }


def generate_secret() -> str:
    """A new random signing secret in Svix's ``whsec_<base64>`` format."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()


__all__ = [
    "Rejection",
    "WebhookEvent",
    "WebhookVerificationError",
    "WebhookVerifier",
    "generate_secret",
    "parse_event",
    "sign",
    "verify",
]
