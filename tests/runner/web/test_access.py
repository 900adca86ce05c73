"""Access to the daemon's HTTP server: loopback by default, no start on another address without `server.auth`,
and with it the page and /metrics need the credentials while /healthz stays open. Requests go through the real
app (`server.build_app`) over httpx's ASGI transport."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from cyberdesk_runner.cli import build_app as build_cli
from cyberdesk_runner.config import ConfigError, ServerAuth, load_config
from cyberdesk_runner.daemon import Daemon, UnprotectedServer
from cyberdesk_runner.metrics import Metrics
from cyberdesk_runner.passwords import hash_password, verify_password
from cyberdesk_runner.server import build_app

TOKEN = "tok-7f3a9c1e5b2d4f60"
PASSWORD = "correct horse battery"
# A cheap scrypt cost for tests; the format and the check are the same as the default's.
PASSWORD_HASH = hash_password(PASSWORD, log_n=4)


def _config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(text)
    return path


def _basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


async def _get(app: Any, path: str, headers: dict[str, str] | None = None, **kwargs: Any) -> httpx.Response:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://runner.test"
    ) as client:
        return await client.get(path, headers=headers, **kwargs)


def _app(auth: ServerAuth) -> Any:
    return build_app(
        metrics=Metrics(), health=lambda: (True, {"ok": True}), webhook=None, webhook_path="/w", auth=auth
    )


# -- the address ---------------------------------------------------------------------------------------


def test_the_server_listens_on_loopback_unless_told_otherwise(tmp_path: Path) -> None:
    config = load_config(_config(tmp_path, "jobs: jobs\n"), {})
    assert config.http_listen is not None and config.http_listen.host == "127.0.0.1"
    assert config.unprotected_exposure() is None


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ('server: {listen: "0.0.0.0:8790"}\n', "server.listen"),
        ('server: {listen: "[::]:8790"}\n', "server.listen"),
        ('server: {listen: "192.168.1.20:8790"}\n', "server.listen"),
        (
            'tracking: {webhook: {listen: "0.0.0.0:8791", secret: "whsec_dGVzdHNlY3JldA=="}}\n',
            "tracking.webhook.listen",
        ),
    ],
)
async def test_the_daemon_refuses_to_start_on_another_address_without_auth(
    tmp_path: Path, text: str, key: str
) -> None:
    config = load_config(_config(tmp_path, text), {})
    with pytest.raises(UnprotectedServer) as raised:
        await Daemon(config).run()
    assert key in str(raised.value) and "server.auth" in str(raised.value)
    # Refused before anything was made: no store file.
    assert not (tmp_path / "cyberdesk-runner.sqlite").exists()


def test_the_run_command_says_why_it_refuses_and_exits_4(tmp_path: Path) -> None:
    path = _config(tmp_path, 'server: {listen: "0.0.0.0:0"}\n')
    result = CliRunner().invoke(build_cli(), ["run", "--config", str(path)])
    assert result.exit_code == 4
    assert "server.auth" in result.output and "0.0.0.0:0" in result.output


@pytest.mark.parametrize("listen", ["127.0.0.1:0", "[::1]:0", "localhost:0"])
def test_loopback_addresses_need_no_auth(tmp_path: Path, listen: str) -> None:
    config = load_config(_config(tmp_path, f'server: {{listen: "{listen}"}}\n'), {})
    assert config.unprotected_exposure() is None


def test_with_auth_another_address_is_allowed(tmp_path: Path) -> None:
    text = f'server: {{listen: "0.0.0.0:0", auth: {{token: "{TOKEN}"}}}}\n'
    assert load_config(_config(tmp_path, text), {}).unprotected_exposure() is None


# -- the auth settings ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("auth", "problem"),
    [
        ("{token: tiny-Tk9}", "too short"),
        (f"{{token: {TOKEN}, user: ann, password_hash: '{PASSWORD_HASH}'}}", "not both"),
        ("{user: ann}", "give token, or both user and password_hash"),
        ("{user: ann, password_hash: 'plain-text-password'}", "expected a scrypt password hash"),
    ],
)
def test_bad_auth_settings_are_config_errors_that_never_quote_a_secret(
    tmp_path: Path, auth: str, problem: str
) -> None:
    with pytest.raises(ConfigError) as raised:
        load_config(_config(tmp_path, f"server:\n  auth: {auth}\n"), {})
    text = str(raised.value)
    assert "config.yaml:2:" in text and "server.auth" in text and problem in text
    for secret in ("tiny-Tk9", TOKEN, PASSWORD_HASH, "plain-text-password"):
        assert secret not in text


def test_password_hashes_verify_only_their_password() -> None:
    assert PASSWORD_HASH.startswith("$scrypt$ln=4,r=8,p=1$")
    assert verify_password(PASSWORD, PASSWORD_HASH)
    assert not verify_password(PASSWORD + "!", PASSWORD_HASH)
    assert hash_password(PASSWORD, log_n=4) != PASSWORD_HASH  # salted


def test_hash_password_command_prints_a_hash_of_the_password_read() -> None:
    result = CliRunner().invoke(build_cli(), ["hash-password", "--stdin"], input="s3cret-pass\n")
    assert result.exit_code == 0, result.output
    made = result.output.strip()
    assert "s3cret-pass" not in made and verify_password("s3cret-pass", made)
    assert CliRunner().invoke(build_cli(), ["hash-password", "--stdin"], input="short\n").exit_code == 2


# -- requests ------------------------------------------------------------------------------------------

TOKEN_AUTH = ServerAuth(token=TOKEN)  # type: ignore[arg-type]
USER_AUTH = ServerAuth(user="ann", password_hash=PASSWORD_HASH)  # type: ignore[arg-type]


@pytest.mark.parametrize("auth", [TOKEN_AUTH, USER_AUTH], ids=["token", "user"])
async def test_healthz_stays_open(auth: ServerAuth) -> None:
    response = await _get(_app(auth), "/healthz")
    assert response.status_code == 200 and response.json() == {"ok": True}


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer tok-wrong-wrong-wrong"},
        {"Authorization": f"Bearer {TOKEN}x"},
        {"Authorization": f"Token {TOKEN}"},
        {"Authorization": "Basic !!!not-base64"},
        _basic("anyone", "wrong-token-value"),
        {"Cookie": f"session={TOKEN}; auth=1"},
        {"X-Forwarded-User": "admin", "X-Auth-Token": TOKEN, "Remote-User": "ann"},
    ],
    ids=["none", "wrong", "longer", "scheme", "garbage", "basic-wrong", "cookie", "proxy-headers"],
)
@pytest.mark.parametrize("path", ["/metrics", "/"])
async def test_with_a_token_the_page_and_metrics_refuse_anything_else(
    headers: dict[str, str], path: str
) -> None:
    response = await _get(_app(TOKEN_AUTH), path, headers=headers)
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Basic ")
    assert TOKEN not in response.text


async def test_the_token_opens_metrics_as_a_bearer_or_as_a_basic_password() -> None:
    app = _app(TOKEN_AUTH)
    assert (await _get(app, "/metrics", {"Authorization": f"Bearer {TOKEN}"})).status_code == 200
    assert (await _get(app, "/metrics", _basic("browser", TOKEN))).status_code == 200


@pytest.mark.parametrize(
    ("user", "password", "status"),
    [
        ("ann", PASSWORD, 200),
        ("ann", PASSWORD + "x", 401),
        ("bob", PASSWORD, 401),
        ("ann", "", 401),
        ("ann", PASSWORD_HASH, 401),  # the hash is not the password
    ],
)
async def test_with_a_user_the_password_is_checked_against_its_hash(
    user: str, password: str, status: int
) -> None:
    app = _app(USER_AUTH)
    response = await _get(app, "/metrics", _basic(user, password))
    assert response.status_code == status
    assert PASSWORD_HASH not in response.text
    # A bearer token means nothing when a user is configured.
    assert (await _get(app, "/metrics", {"Authorization": f"Bearer {PASSWORD}"})).status_code == 401
