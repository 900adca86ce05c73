"""Webhook verification with real Svix signatures, and signing."""

import base64
import binascii
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from uuid import uuid4

import pytest
from standardwebhooks.webhooks import Webhook as StandardWebhook
from svix.webhooks import Webhook
from svix.webhooks import WebhookVerificationError as SvixVerificationError

from cyberdesk import DownedMachinesEvent, RunCompletedEvent, RunResponse, UnknownValue, UnknownWebhookEvent
from cyberdesk.webhooks import (
    Rejection,
    WebhookVerificationError,
    WebhookVerifier,
    generate_secret,
    parse_event,
    sign,
    verify,
)

from .helpers import MID, RID, run_json

SECRET = "whsec_" + base64.b64encode(b"0123456789abcdef0123456789abcdef").decode()
EVENT = {
    "event_id": "0b6c4b8e-8f7e-4d55-9a1e-2f3c4d5e6f70",
    "event_type": "run_complete",
    "occurred_at": "2024-05-01T12:00:00Z",
    "run": run_json(status="success", output_data={"invoice_total": 42}),
}
BODY = json.dumps(EVENT).encode()


def test_a_valid_delivery() -> None:
    event = verify(BODY, sign(BODY, SECRET), SECRET)
    assert isinstance(event, RunCompletedEvent) and isinstance(event.run, RunResponse)
    assert event.run.status == "success" and event.run.output_data == {"invoice_total": 42}
    assert str(event.event_id) == EVENT["event_id"]


def test_signatures_interoperate_with_svix() -> None:
    headers = sign(BODY, SECRET, msg_id="msg_1", timestamp=datetime.now(UTC))
    Webhook(SECRET).verify(BODY, headers)  # svix accepts ours
    now = datetime.now(UTC)
    theirs = {
        "svix-id": "msg_2",
        "svix-timestamp": str(int(now.timestamp())),
        "svix-signature": Webhook(SECRET).sign("msg_2", now, BODY.decode()),
    }
    assert isinstance(verify(BODY, theirs, SECRET), RunCompletedEvent)  # and we accept theirs


def test_header_names_are_case_insensitive_and_str_bodies_work() -> None:
    headers = {k.title(): v for k, v in sign(BODY, SECRET).items()}
    assert isinstance(verify(BODY.decode(), headers, SECRET), RunCompletedEvent)


def test_several_signatures_one_valid() -> None:
    headers = sign(BODY, SECRET)
    headers["svix-signature"] = "v1,AAAA " + headers["svix-signature"]
    assert isinstance(verify(BODY, headers, SECRET), RunCompletedEvent)


def test_downed_machines_event() -> None:
    body = json.dumps(
        {
            "event_type": "downed_machines",
            "organization_id": "org_1",
            "machines": [
                {"machine_id": MID, "organization_id": "org_1", "status": "disconnected",
                 "last_seen": "2024-05-01T11:00:00Z", "reason": "no heartbeat for 10 minutes"}
            ],
        }
    ).encode()  # fmt: skip
    event = verify(body, sign(body, SECRET), SECRET)
    assert isinstance(event, DownedMachinesEvent) and event.machines[0].reason.startswith("no heartbeat")


def rejections(body: bytes, headers: dict[str, str], secret: str) -> list[WebhookVerificationError]:
    """How ``verify`` and a ``WebhookVerifier`` of the secret refuse the delivery (each must)."""
    checks: list[Callable[[], object]] = [
        lambda: verify(body, headers, secret),
        lambda: WebhookVerifier(secret).verify(body, headers),
    ]
    refused = []
    for check in checks:
        with pytest.raises(WebhookVerificationError) as raised:
            check()
        refused.append(raised.value)
    return refused


def expect_rejection(body: bytes, headers: dict[str, str], secret: str, reason: Rejection) -> str:
    """The delivery is rejected for ``reason``, with a message (returned) that holds no secret nor chained cause,
    by ``verify`` and by a ``WebhookVerifier`` of the secret alike."""
    messages = []
    for refused in rejections(body, headers, secret):
        message = str(refused)
        assert refused.reason is reason, message
        key = secret.removeprefix("whsec_")  # the prefix alone is no secret (messages name the format)
        assert message and SECRET not in message and (not key or key not in message)
        assert refused.__cause__ is None
        messages.append(message)
    assert messages[0] == messages[1]
    return messages[0]


def test_a_verifier_checks_delivery_after_delivery_with_its_secret() -> None:
    verifier = WebhookVerifier(SECRET)
    for n in range(3):
        body = json.dumps({**EVENT, "event_id": str(uuid4())}).encode()
        assert verifier.verify(body, sign(body, SECRET, msg_id=f"msg_{n}")) == verify(
            body, sign(body, SECRET), SECRET
        )
    with pytest.raises(WebhookVerificationError) as raised:
        verifier.verify(BODY, sign(BODY, generate_secret()))
    assert raised.value.reason is Rejection.BAD_SIGNATURE
    assert SECRET not in repr(verifier)


def test_wrong_secret() -> None:
    other = generate_secret()
    expect_rejection(BODY, sign(BODY, other), SECRET, Rejection.BAD_SIGNATURE)


def test_tampered_body() -> None:
    tampered = BODY.replace(b"42", b"43")
    expect_rejection(tampered, sign(BODY, SECRET), SECRET, Rejection.BAD_SIGNATURE)


@pytest.mark.parametrize(("shift", "side"), [(-timedelta(minutes=10), "old"), (timedelta(minutes=10), "new")])
def test_stale_or_future_timestamp(shift: timedelta, side: str) -> None:
    headers = sign(BODY, SECRET, timestamp=datetime.now(UTC) + shift)
    message = expect_rejection(BODY, headers, SECRET, Rejection.STALE_TIMESTAMP)
    assert f"too {side}" in message  # our words: the operator learns which way the clock is off


@pytest.mark.parametrize("missing", ["svix-id", "svix-timestamp", "svix-signature"])
def test_missing_header(missing: str) -> None:
    headers = {k: v for k, v in sign(BODY, SECRET).items() if k != missing}
    assert missing in expect_rejection(BODY, headers, SECRET, Rejection.MISSING_HEADER)


@pytest.mark.parametrize(
    ("headers", "reason"),
    [
        ({"svix-signature": "garbage"}, Rejection.BAD_SIGNATURE),
        ({"svix-signature": "v1,%%%not-base64"}, Rejection.BAD_SIGNATURE),
        ({"svix-signature": "v2," + "A" * 44}, Rejection.BAD_SIGNATURE),
        ({"svix-timestamp": "not-a-number"}, Rejection.MALFORMED_HEADER),
        ({"svix-timestamp": "1e400"}, Rejection.MALFORMED_HEADER),
    ],
)
def test_malformed_headers(headers: dict[str, str], reason: Rejection) -> None:
    expect_rejection(BODY, {**sign(BODY, SECRET), **headers}, SECRET, reason)


class _Raises:
    """A stand-in for the verifier's ``verify`` (standardwebhooks', which svix 2.x wraps and the SDK calls without
    svix's package) that raises what some svix version raises."""

    def __init__(self, exc: Exception) -> None:
        self.exc = exc

    def __call__(self, *_: Any) -> Any:
        raise self.exc


@pytest.mark.parametrize(
    "raised",
    [
        SvixVerificationError("No matching signature found"),  # svix 2.x for every bad signature
        ValueError("not enough values to unpack (expected 2, got 1)"),  # older svix 1.x for a garbled one
        binascii.Error("Incorrect padding"),
        UnicodeDecodeError("utf-8", b"\xff", 0, 1, "invalid start byte"),
        RuntimeError("anything else"),
    ],
)
def test_whatever_svix_raises_becomes_our_rejection(
    monkeypatch: pytest.MonkeyPatch, raised: Exception
) -> None:
    monkeypatch.setattr(StandardWebhook, "verify", _Raises(raised))
    message = expect_rejection(BODY, sign(BODY, SECRET), SECRET, Rejection.BAD_SIGNATURE)
    assert str(raised) not in message  # our words, not the library's


def test_svix_1x_parsing_the_verified_body_is_not_a_signature_failure(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # svix 1.x returns the body parsed: a signed body that is not JSON raises json's error from inside verify.
    body = b"not json"
    monkeypatch.setattr(
        StandardWebhook, "verify", _Raises(json.JSONDecodeError("Expecting value", "not json", 0))
    )
    expect_rejection(body, sign(body, SECRET), SECRET, Rejection.MALFORMED_BODY)


@pytest.mark.parametrize(
    ("body", "words"),
    [
        (b"not json", "not JSON"),
        (b"[1, 2]", "not a JSON object"),
        (json.dumps({"event_type": "run_complete", "run": {"id": RID}}).encode(), "run."),
        (json.dumps({"event_type": 7}).encode(), "7"),
    ],
)
def test_malformed_body(body: bytes, words: str) -> None:
    assert words in expect_rejection(body, sign(body, SECRET), SECRET, Rejection.MALFORMED_BODY)


@pytest.mark.parametrize("secret", ["whsec_%%%not-base64", "", "whsec_"])
def test_an_invalid_secret_is_reported_without_its_value(secret: str) -> None:
    headers = {"svix-id": "m", "svix-timestamp": "1", "svix-signature": "v1,x"}
    # A verifier is made whatever its secret; each delivery it checks is refused for it, as by `verify`.
    expect_rejection(BODY, headers, secret, Rejection.INVALID_SECRET)
    assert all(refused.__suppress_context__ for refused in rejections(BODY, headers, secret))


def test_sign_uses_utc_seconds_whatever_the_timezone() -> None:
    moment = datetime(2024, 5, 1, 14, 0, 30, tzinfo=timezone(timedelta(hours=2)))
    headers = sign(BODY, SECRET, msg_id="msg_x", timestamp=moment)
    assert headers["svix-id"] == "msg_x"
    assert headers["svix-timestamp"] == str(int(datetime(2024, 5, 1, 12, 0, 30, tzinfo=UTC).timestamp()))
    naive = sign(BODY, SECRET, msg_id="msg_x", timestamp=datetime(2024, 5, 1, 12, 0, 30))
    assert naive == headers
    assert sign(BODY, SECRET)["svix-id"].startswith("msg_")


def test_parse_event_infers_the_type_when_absent() -> None:
    event: Any = parse_event({"run": run_json()})
    assert isinstance(event, RunCompletedEvent)


def test_an_event_type_this_sdk_does_not_know_is_accepted_and_kept() -> None:
    body = json.dumps({"event_type": "machine_created", "machine": {"id": MID}}).encode()
    event = verify(body, sign(body, SECRET), SECRET)
    assert isinstance(event, UnknownWebhookEvent)
    assert isinstance(event.event_type, UnknownValue) and event.event_type == "machine_created"
    assert event.additional_properties == {"machine": {"id": MID}}
