"""The value types config settings are made of, each with its check: listen addresses (`host:port`), http(s)
URLs, signing secrets, alert URLs, and "empty means not given". Error messages never quote a secret.
"""

from __future__ import annotations

import binascii
import ipaddress
from typing import Annotated, Any, NamedTuple
from urllib.parse import urlsplit

from pydantic import AfterValidator, BeforeValidator, ConfigDict, PlainSerializer, SecretStr

from cyberdesk_runner.spec.diagnostics import describe

__all__ = [
    "FROZEN",
    "HostPort",
    "HttpUrl",
    "ListenAddress",
    "check_alert_url",
    "check_optional_secret",
    "check_webhook_secret",
    "empty_to_none",
    "is_loopback",
]

#: Every settings section: unknown keys are errors, values do not change once loaded.
FROZEN = ConfigDict(extra="forbid", frozen=True)


class HostPort(NamedTuple):
    """A listen address, written `host:port` (`[::1]:8790` for IPv6)."""

    host: str
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


def parse_host_port(value: Any) -> Any:
    if isinstance(value, HostPort):
        return value
    example = "expected host:port like 127.0.0.1:8790"
    if not isinstance(value, str):
        raise ValueError(f"{example}, got {describe(value)}")
    host, _, port = value.strip().rpartition(":")
    host = host.removeprefix("[").removesuffix("]")
    # Port 0 asks the OS for a free port (tests, several daemons on one host).
    if not host or not port.isdigit() or not 0 <= int(port) < 65536:
        raise ValueError(f"{example} (0.0.0.0:8790 for every interface), got {value!r}")
    return HostPort(host, int(port))


def empty_to_none(value: Any) -> Any:
    # `${VAR:-}` gives "" for an unset variable: read it as "not given".
    return None if value == "" else value


def check_http_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"expected an http(s) URL like https://api.cyberdesk.io, got {url!r}")
    return url.rstrip("/")


def check_webhook_secret(secret: SecretStr) -> SecretStr:
    # Never quote the value: it is a secret.
    problem = "expected a Svix signing secret like whsec_<base64> (from the Cyberdesk webhook settings)"
    text = secret.get_secret_value()
    if not text.startswith("whsec_") or len(text) == len("whsec_"):
        raise ValueError(problem)
    try:
        binascii.a2b_base64(text.removeprefix("whsec_"), strict_mode=True)
    except binascii.Error:
        raise ValueError(f"{problem}; the part after whsec_ is not base64") from None
    return secret


HttpUrl = Annotated[str, AfterValidator(check_http_url)]
ListenAddress = Annotated[HostPort, BeforeValidator(parse_host_port), PlainSerializer(str, return_type=str)]


def check_alert_url(url: SecretStr) -> SecretStr:
    # Never quote the value: a Slack hook URL is a secret.
    parts = urlsplit(url.get_secret_value())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError("expected an http(s) URL (the value is not shown: it may be a secret)")
    return url


def check_optional_secret(secret: SecretStr | None) -> SecretStr | None:
    return None if secret is None else check_webhook_secret(secret)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
