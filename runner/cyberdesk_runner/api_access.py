"""Whether the API refused our key (401/403: a definite answer, not an outage), and how that is said.

A refused key does not heal by waiting, except while the key is being rotated: one-shot commands stop with a
config error, the long-running daemon keeps trying but says why in its own words.
"""

from __future__ import annotations

from http import HTTPStatus

from cyberdesk import ApiError, CyberdeskError

__all__ = ["API_KEY_REFUSED", "ApiKeyRefused", "is_key_refused", "key_refused_message", "status_of"]

#: How /healthz and `status` name the API's state when it refuses the key (else "ok" or "unreachable").
API_KEY_REFUSED = "API key refused"

_REFUSALS = frozenset({HTTPStatus.UNAUTHORIZED, HTTPStatus.FORBIDDEN})


class ApiKeyRefused(Exception):
    """The API answered 401 or 403: the configured key is wrong, revoked or lacks access."""

    def __init__(self, base_url: str, status_code: int | None = None) -> None:
        self.base_url = base_url
        self.status_code = status_code
        super().__init__(key_refused_message(base_url, status_code))


def is_key_refused(failure: BaseException | ApiError | None) -> bool:
    """True for a 401/403 answer, given as the ApiError or the CyberdeskError raised by iter()/unwrap()."""
    error = failure.error if isinstance(failure, CyberdeskError) else failure
    return isinstance(error, ApiError) and error.status_code in _REFUSALS


def status_of(failure: BaseException | ApiError | None) -> int | None:
    error = failure.error if isinstance(failure, CyberdeskError) else failure
    return error.status_code if isinstance(error, ApiError) else None


def key_refused_message(base_url: str, status_code: int | None = None) -> str:
    """One line naming the API, never the key."""
    code = f" ({status_code} {HTTPStatus(status_code).phrase})" if status_code in _REFUSALS else ""
    return (
        f"the Cyberdesk API at {base_url} refused the API key{code}: check cyberdesk.api_key "
        "(or unset it to use the embedded emulator)"
    )
