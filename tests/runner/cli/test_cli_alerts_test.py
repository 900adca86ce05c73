"""`cyberdesk-runner alerts test NAME`: a signed test event to one destination, now. An unknown NAME or a receiver
that refuses is a clear error; neither the URL nor the secret is ever printed."""

from __future__ import annotations

import base64
import json
import socket
from pathlib import Path

import pytest
from receiver import Receiver
from svix.webhooks import Webhook
from typer.testing import CliRunner, Result

from cyberdesk_runner.cli import build_app

SECRET = "whsec_" + base64.b64encode(b"alerts-test-command-secret-01").decode()
#: Parts of the URLs that are secrets (a Slack hook's path is its credential).
HIDDEN = (SECRET, "ops-hook-secret", "T000/B000/slack-secret")


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port  # nothing listens on it any more


@pytest.fixture
def config(tmp_path: Path, receiver: Receiver, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("OPS_URL", receiver.url("/ops-hook-secret"))
    monkeypatch.setenv("OPS_SECRET", SECRET)
    monkeypatch.setenv("CHAT_URL", receiver.url("/services/T000/B000/slack-secret"))
    monkeypatch.setenv("GONE_URL", f"http://127.0.0.1:{_closed_port()}/ops-hook-secret")
    (tmp_path / "jobs").mkdir()
    path = tmp_path / "config.yaml"
    path.write_text(
        f"""
store: sqlite:///{tmp_path / "store.sqlite"}
jobs: jobs
alerts:
  - {{name: ops, url: "${{OPS_URL}}", secret: "${{OPS_SECRET}}"}}
  - {{name: chat, url: "${{CHAT_URL}}", format: slack}}
  - {{name: gone, url: "${{GONE_URL}}", secret: "${{OPS_SECRET}}"}}
"""
    )
    return path


def _invoke(config: Path, name: str) -> Result:
    result = CliRunner().invoke(build_app(), ["alerts", "test", name, "--config", str(config)])
    for hidden in HIDDEN:
        assert hidden not in result.output
    return result


def test_a_signed_test_event_reaches_a_json_destination(config: Path, receiver: Receiver) -> None:
    result = _invoke(config, "ops")
    assert result.exit_code == 0, result.output
    [delivery] = receiver.accepted
    assert delivery.path == "/ops-hook-secret"
    Webhook(SECRET).verify(
        delivery.body, delivery.headers
    )  # raises unless signed with the destination's secret
    event = json.loads(delivery.body)
    assert event["type"] == "test" and event["id"] == delivery.headers["webhook-id"]
    assert event["id"] in result.output and "ops" in result.output


def test_a_slack_destination_gets_a_readable_message(config: Path, receiver: Receiver) -> None:
    result = _invoke(config, "chat")
    assert result.exit_code == 0, result.output
    [delivery] = receiver.accepted
    message = json.loads(delivery.body)
    assert "Test alert" in message["text"] and message["blocks"]
    assert "webhook-signature" not in delivery.headers


def test_an_unknown_destination_is_named_with_the_known_ones(config: Path, receiver: Receiver) -> None:
    result = _invoke(config, "opps")
    assert result.exit_code == 3
    assert "no alert destination named 'opps'" in result.output
    assert "ops, chat, gone" in result.output
    assert not receiver.accepted


def test_a_refusing_or_unreachable_receiver_fails_without_showing_the_url(
    config: Path, receiver: Receiver
) -> None:
    receiver.down = True
    refused = _invoke(config, "ops")
    assert refused.exit_code == 1
    assert "test alert to ops failed: HTTP 503" in refused.output
    unreachable = _invoke(config, "gone")
    assert unreachable.exit_code == 1
    assert "test alert to gone failed: ConnectError" in unreachable.output
    assert "127.0.0.1" not in refused.output + unreachable.output
