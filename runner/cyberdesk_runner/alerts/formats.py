"""An alert's HTTP request: a JSON event signed with the Standard Webhooks scheme (svix), or a Slack message.

The `webhook-id` is the alert's stable id, the same on every try, so a receiver drops repeats; the timestamp
and signature are made at each try (receivers reject signatures older than 5 minutes).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from cyberdesk.webhooks import sign
from cyberdesk_runner.config import AlertDestination

_TITLES = {
    "item_failed": "Item failed",
    "fire_failed": "Fire failed",
    "fire_succeeded": "Fire succeeded",
    "fire_late": "Fire late",
    "fire_skipped": "Slot skipped",
    "desktop_disconnected": "Desktop disconnected",
    "daemon_lost": "Daemon lost",
    "digest": "Alert digest",
    "test": "Test alert",
}


def request_for(
    destination: AlertDestination, alert_id: str, payload: Mapping[str, Any], now: datetime
) -> tuple[bytes, dict[str, str]]:
    """(body, headers) of one try."""
    if destination.format == "slack":
        return json.dumps(slack_message(payload)).encode(), {"content-type": "application/json"}
    body = json.dumps(payload, separators=(",", ":"), ensure_ascii=False)
    headers = {"content-type": "application/json", "webhook-id": alert_id}
    if destination.secret is not None:
        # The SDK's svix signature (Standard Webhooks under svix's header names), without svix's package.
        signed = sign(body.encode(), destination.secret.get_secret_value(), msg_id=alert_id, timestamp=now)
        signature = signed["svix-signature"]
        headers |= {"webhook-timestamp": str(int(now.timestamp())), "webhook-signature": signature}
    return body.encode(), headers


def slack_message(payload: Mapping[str, Any]) -> dict[str, Any]:
    """A readable Block Kit message with the same facts as the JSON event."""
    kind = str(payload.get("type"))
    title = _TITLES.get(kind, kind)
    if kind == "digest":
        text = f"*{title}*: {payload.get('summary')}"
    else:
        subject = payload.get("job") or payload.get("desktop") or payload.get("daemon") or ""
        text = f"*{title}*" + (f": `{subject}`" if subject else "")
        facts = [
            (name, payload.get(key))
            for name, key in (("fire", "fire"), ("item", "item"), ("desktop", "desktop"), ("error", "error"))
        ]
        lines = [f"*{name}*: {value}" for name, value in facts if value]
        if payload.get("inputs"):
            lines.append("*inputs*: " + ", ".join(f"{k}={v}" for k, v in payload["inputs"].items()))
        if lines:
            text += "\n" + "\n".join(lines)
    fallback = text.replace("*", "").replace("`", "")
    return {"text": fallback, "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": text}}]}
