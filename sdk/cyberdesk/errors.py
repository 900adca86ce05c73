"""The one error type of every call (:class:`ApiError`) and the exception that carries it (:class:`CyberdeskError`).

Calls never raise for malformed arguments, HTTP errors, timeouts, network failures or unparseable responses: they
return ``ApiResponse(error=ApiError(...))``. Only the pagination iterators raise, with :class:`CyberdeskError`.
"""

from enum import StrEnum
from http import HTTPStatus
from typing import Any

from attrs import frozen

from .models.common import ValidationError


class ErrorKind(StrEnum):
    #: The server answered with a status other than the operation's success status.
    HTTP_STATUS = "http_status"
    #: No answer in time (connect, read, write or pool timeout).
    TIMEOUT = "timeout"
    #: The connection failed or dropped (refused, reset, closed before the answer, TLS, DNS...).
    NETWORK = "network"
    #: The success status came back but its body did not parse into the expected type.
    DECODE = "decode"
    #: An argument of the call was malformed (e.g. an id that is not a UUID); no request was sent.
    INVALID_ARGUMENT = "invalid_argument"


# 408, 429 and a 409 "in progress" mean "not processed yet, try again", not "rejected".
_NOT_A_VERDICT = frozenset({HTTPStatus.REQUEST_TIMEOUT, HTTPStatus.TOO_MANY_REQUESTS})


@frozen(kw_only=True)
class ApiError:
    """Why a call failed. ``str(error)`` is one readable line; the API key never appears in it."""

    kind: ErrorKind
    #: The HTTP method; empty for ``invalid_argument`` (no request was made).
    method: str
    #: The request path with ids filled in, e.g. ``/v1/runs/5d1e...``; for ``invalid_argument`` the SDK method
    #: that refused its arguments, e.g. ``machines.get_sync``.
    path: str
    status_code: int | None = None
    #: For a 422: the FastAPI ``detail`` list as :class:`ValidationError` items. Otherwise the parsed JSON body,
    #: or the raw text, or (timeout/network/decode) a description of the failure.
    detail: list[ValidationError] | Any = None
    #: The ``Retry-After`` header in seconds (HTTP-dates converted), when the server sent one.
    retry_after: float | None = None
    #: The ``Idempotency-Status`` response header, e.g. ``in_progress`` on a 409.
    idempotency_status: str | None = None
    #: For ``invalid_argument``: the name of the malformed argument (when the SDK knows it).
    argument: str | None = None

    @property
    def is_definite_failure(self) -> bool:
        """True when the request was certainly NOT applied: a 4xx other than 408, 429 and a 409 ``in_progress``,
        or an ``invalid_argument`` (never sent).

        False means the outcome is unknown (timeout, network failure, 5xx, dropped connection) or the request was
        applied (an unexpected 2xx/3xx, an unparseable success body). Repeat such a write with the same
        idempotency key to learn its outcome.
        """
        if self.kind is ErrorKind.INVALID_ARGUMENT:
            return True  # nothing was sent
        if self.kind is not ErrorKind.HTTP_STATUS or self.status_code is None:
            return False
        if self.status_code == HTTPStatus.CONFLICT:
            return (self.idempotency_status or "").lower() != "in_progress"
        return 400 <= self.status_code < 500 and self.status_code not in _NOT_A_VERDICT

    @property
    def validation_errors(self) -> list[ValidationError]:
        """The parsed 422 items (empty for any other error)."""
        if isinstance(self.detail, list) and all(isinstance(d, ValidationError) for d in self.detail):
            return self.detail
        return []

    def __str__(self) -> str:
        head = f"{self.method} {self.path}".lstrip()
        if self.kind is ErrorKind.INVALID_ARGUMENT:
            return f"{head}: {self.kind}: {self.detail} (no request sent)"
        if self.kind is not ErrorKind.HTTP_STATUS:
            status = f"{self.status_code} {_phrase(self.status_code)}: " if self.status_code else ""
            return f"{head}: {self.kind}: {status}{self.detail}"
        head = f"{head}: {self.status_code} {_phrase(self.status_code)}"
        if self.validation_errors:
            return f"{head}: " + "; ".join(str(e) for e in self.validation_errors)
        return f"{head}: {_short(self.detail)}" if self.detail not in (None, "") else head


def _phrase(status: int | None) -> str:
    try:
        return HTTPStatus(status).phrase if status is not None else ""
    except ValueError:
        return ""


def _short(detail: Any, limit: int = 300) -> str:
    text = str(detail)
    return text if len(text) <= limit else text[: limit - 3] + "..."


class ArgumentError(ValueError):
    """A malformed argument of an SDK call. Raised while a call is described, and turned by the call into
    ``ApiResponse(error=ApiError(kind=ErrorKind.INVALID_ARGUMENT, argument=...))``: it never leaves a call."""

    def __init__(self, argument: str, reason: str) -> None:
        super().__init__(f"{argument}: {reason}")
        self.argument = argument


class CyberdeskError(Exception):
    """Raised (only) by the pagination iterators and :meth:`ApiResponse.unwrap`; carries the :class:`ApiError`."""

    def __init__(self, error: ApiError) -> None:
        super().__init__(str(error))
        self.error = error


__all__ = ["ApiError", "ArgumentError", "CyberdeskError", "ErrorKind"]
