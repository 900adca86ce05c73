"""The one request core: auth, timeouts, idempotency keys, retries and the mapping of every outcome to ``ApiResponse``.

The decisions are plain functions written once (:func:`encode_query`, :func:`retry_reason`, :func:`retry_delay`,
:func:`parse_retry_after`, :func:`to_api_response`); :meth:`Core.send_sync` and :meth:`Core.send` are the only two
loops that touch httpx.
"""

import asyncio
import copy
import datetime as dt
import email.utils
import functools
import json
import logging
import math
import random as _random
import threading
import time
import weakref
from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping
from enum import Enum
from typing import Any, TypeVar
from urllib.parse import quote
from uuid import uuid4

import aiohttp
import attrs
import httpx
from httpx_aiohttp import HttpxAiohttpClient

from ._direct import DirectLane
from ._operation import Call, FilePart, QueryValue
from ._response import ApiResponse
from ._streaming import Parsed, receive, receive_sync, streams
from .errors import ApiError, ErrorKind
from .models._base import ModelError, isoformat
from .models.common import HTTPValidationError

T = TypeVar("T")
_C = TypeVar("_C", httpx.Client, httpx.AsyncClient)

logger = logging.getLogger("cyberdesk")

DEFAULT_BASE_URL = "https://api.cyberdesk.io"
DEFAULT_TIMEOUT = httpx.Timeout(30.0, connect=5.0)
IDEMPOTENCY_HEADER = "Idempotency-Key"
WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})

# What a transport may raise for a failed exchange. aiohttp errors that httpx_aiohttp does not map pass through,
# and TimeoutError (= asyncio.TimeoutError) is an OSError.
_TRANSPORT_ERRORS = (httpx.RequestError, aiohttp.ClientError, OSError)


@attrs.frozen(kw_only=True)
class RetryEvent:
    """Passed to ``RetryConfig.on_retry`` before each retry."""

    #: 1 for the first retry (the second request).
    attempt: int
    #: Seconds the client will wait before the retry.
    delay: float
    reason: ErrorKind
    status_code: int | None
    method: str
    path: str


def _non_negative(_: object, attribute: "attrs.Attribute[Any]", value: float) -> None:
    if value < 0:
        raise ValueError(f"RetryConfig.{attribute.name} must be >= 0, got {value!r}")


@attrs.frozen(kw_only=True)
class RetryConfig:
    """When and how long to wait before repeating a request.

    Retried: 408, 429, 500, 502, 503, 504, a 409 with ``Idempotency-Status: in_progress``, timeouts and network
    errors; a write (POST/PUT/PATCH/DELETE) only when it carries an ``Idempotency-Key``. The wait is the server's
    ``Retry-After`` (capped at ``max_retry_after_seconds``) or else full-jitter exponential backoff:
    ``random() * min(max_delay_seconds, min_delay_seconds * 2**retry_index)``.
    """

    #: Retries after the first request (3 means at most 4 requests).
    max_retries: int = attrs.field(default=3, validator=_non_negative)
    min_delay_seconds: float = attrs.field(default=0.25, validator=_non_negative)
    max_delay_seconds: float = attrs.field(default=8.0, validator=_non_negative)
    max_retry_after_seconds: float = attrs.field(default=60.0, validator=_non_negative)
    on_retry: Callable[[RetryEvent], None] | None = None
    #: Injectable for tests: the sync and async sleeps and the jitter source (``[0, 1)``).
    sleep: Callable[[float], None] = time.sleep
    async_sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
    random: Callable[[], float] = _random.random


@attrs.frozen
class Prepared:
    """A call made concrete for one client: URL, query, body bytes and headers (never the API key)."""

    method: str
    url: str
    path: str
    params: tuple[tuple[str, str], ...]
    content: bytes | None
    headers: dict[str, str]
    #: Reads always; writes only with an idempotency key (a replay then cannot apply twice).
    retryable: bool
    #: A multipart body (httpx encodes it, with its boundary, per request).
    files: Mapping[str, FilePart] | None = None


Outcome = httpx.Response | Exception


def _query_scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Enum):
        return str(value.value)
    if isinstance(value, dt.datetime):
        return isoformat(value)
    return str(value)


def encode_query(query: Mapping[str, QueryValue]) -> list[tuple[str, str]]:
    """Drop ``None``; booleans as true/false; datetimes ISO (naive = UTC); sequences as repeated parameters."""
    params: list[tuple[str, str]] = []
    for name, value in query.items():
        if value is None:
            continue
        if isinstance(value, list | tuple):
            params.extend((name, _query_scalar(v)) for v in value)
        else:
            params.append((name, _query_scalar(value)))
    return params


#: `json.dumps(body, separators=(",", ":"), allow_nan=False)`, its encoder made once rather than per call.
_BODY_ENCODER = json.JSONEncoder(separators=(",", ":"), allow_nan=False)


def prepare(call: Call[Any], base_url: str, idempotency_enabled: bool) -> Prepared:
    path = call.path
    if call.path_params:
        path = path.format_map({k: quote(str(v), safe="") for k, v in call.path_params.items()})
    headers: dict[str, str] = {}
    content = None
    if call.body is not None:
        content = _BODY_ENCODER.encode(call.body.to_dict()).encode()
        headers["Content-Type"] = "application/json"
    retryable = True
    if call.method in WRITE_METHODS:
        key = call.idempotency_key or (str(uuid4()) if idempotency_enabled else None)
        if key:
            headers[IDEMPOTENCY_HEADER] = key
        retryable = key is not None
    params = tuple(encode_query(call.query))
    return Prepared(call.method, base_url + path, path, params, content, headers, retryable, call.files)


def build_request(client: httpx.Client | httpx.AsyncClient, prepared: Prepared) -> httpx.Request:
    # An already parsed URL, and no params argument when there are none: given a string and an empty tuple,
    # httpx parses the URL three times per request.
    return client.build_request(
        prepared.method,
        _parsed_url(prepared.url),
        params=prepared.params or None,
        content=prepared.content,
        headers=prepared.headers,
        files=prepared.files,
    )


@functools.lru_cache(maxsize=1024)
def _parsed_url(url: str) -> httpx.URL:
    return httpx.URL(url)


class _NoCookies(httpx.Cookies):
    """The API authenticates every request by its bearer token and sets no cookies; httpx would still inspect
    every response for them, at about a tenth of a small call's cost."""

    def extract_cookies(self, response: httpx.Response) -> None:  # noqa: ARG002 (keeps the signature)
        return None


def _without_cookies(client: _C) -> _C:
    client._cookies = _NoCookies()  # httpx's setter would wrap it into a plain Cookies
    return client


#: What a read response's stream is replaced with (see `_unbind`).
_READ = httpx.ByteStream(b"")


def _unbind(outcome: Outcome) -> None:
    """Break the reference cycle httpx makes between a response and its stream (`BoundStream` refers back to
    the response), once the body is read or the download done: otherwise the response, its request and the
    request's body are freed only by the cyclic garbage collector, whenever it next runs. A create call with a
    1 MB file sends 1.4 MB of JSON; a daemon creating such runs kept hundreds of them (bench/files_bench.py)."""
    if isinstance(outcome, httpx.Response) and outcome.is_closed:
        outcome.stream = _READ


def _is_timeout(exc: Exception) -> bool:
    return isinstance(exc, (httpx.TimeoutException, TimeoutError))


def _in_progress(response: httpx.Response) -> bool:
    status: str = response.headers.get("Idempotency-Status", "")
    return status.strip().lower() == "in_progress"


def retry_reason(prepared: Prepared, outcome: Outcome) -> ErrorKind | None:
    """Why this outcome deserves another try, or ``None``."""
    if not prepared.retryable:
        return None
    if isinstance(outcome, Exception):
        return ErrorKind.TIMEOUT if _is_timeout(outcome) else ErrorKind.NETWORK
    if outcome.status_code in RETRY_STATUSES or (outcome.status_code == 409 and _in_progress(outcome)):
        return ErrorKind.HTTP_STATUS
    return None


def parse_retry_after(value: str | None, now: dt.datetime) -> float | None:
    """``Retry-After`` in seconds: a number of seconds or an HTTP-date (relative to ``now``); ``None`` if absent
    or unparseable; never negative."""
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        seconds = (when if when.tzinfo else when.replace(tzinfo=dt.UTC)).timestamp() - now.timestamp()
    return max(0.0, seconds) if math.isfinite(seconds) else None


def retry_delay(config: RetryConfig, outcome: Outcome, retry_index: int) -> float:
    """Seconds to wait before retry number ``retry_index + 1``."""
    if isinstance(outcome, httpx.Response):
        after = parse_retry_after(outcome.headers.get("Retry-After"), dt.datetime.now(dt.UTC))
        if after is not None:
            return min(after, config.max_retry_after_seconds)
    ceiling = min(config.max_delay_seconds, config.min_delay_seconds * 2.0**retry_index)
    return config.random() * ceiling


def _error_detail(response: httpx.Response) -> Any:
    try:
        body = response.json()
    except ValueError:
        return response.text
    if response.status_code == 422 and isinstance(body, dict) and isinstance(body.get("detail"), list):
        try:
            return HTTPValidationError.from_dict(body).detail
        except ModelError:
            return body
    return body


def to_api_response(
    call: Call[T], prepared: Prepared, outcome: Outcome, parsed: Parsed[T] | None = None
) -> ApiResponse[T]:
    """The final outcome of a call as an ``ApiResponse``; ``parsed``: its body's, when parsed as it arrived."""
    method, path = prepared.method, prepared.path
    if isinstance(outcome, Exception):
        kind = ErrorKind.TIMEOUT if _is_timeout(outcome) else ErrorKind.NETWORK
        reason = f"{type(outcome).__name__}: {outcome}".rstrip(": ")
        return ApiResponse(error=ApiError(kind=kind, method=method, path=path, detail=reason))
    status = outcome.status_code
    if status == call.success:
        try:
            return ApiResponse(data=call.parse(outcome) if parsed is None else parsed.get())
        except (ValueError, TypeError) as exc:
            reason = f"unexpected response body: {exc}"
            error = ApiError(
                kind=ErrorKind.DECODE, method=method, path=path, status_code=status, detail=reason
            )
            return ApiResponse(error=error)
    return ApiResponse(
        error=ApiError(
            kind=ErrorKind.HTTP_STATUS,
            method=method,
            path=path,
            status_code=status,
            detail=_error_detail(outcome),
            retry_after=parse_retry_after(outcome.headers.get("Retry-After"), dt.datetime.now(dt.UTC)),
            idempotency_status=outcome.headers.get("Idempotency-Status"),
        )
    )


class _Secret:
    """Keeps the API key out of reprs, logs and debugger views of the client."""

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "<secret>"


async def _close_with_loop(client: httpx.AsyncClient) -> AsyncGenerator[None, None]:
    """Closes ``client`` on its own event loop when nobody else did.

    Advanced once when the pool is made, then left suspended. The loop finalises its async generators when it
    shuts down (``asyncio.run`` and ``asyncio.Runner`` do), or when this one is garbage collected with its client:
    the ``finally`` then closes the pool, on its loop. An async client its program never closed (as in the
    official SDK's README) thus leaves no aiohttp "Unclosed client session" warnings at exit.
    """
    try:
        yield
    finally:
        if not client.is_closed:
            await client.aclose()


class Core:
    """One client's connection pools (created lazily, once) and the two request loops."""

    def __init__(
        self,
        *,
        api_key: str,
        base_url: str,
        timeout: httpx.Timeout,
        retry: RetryConfig,
        idempotency_enabled: bool,
        max_connections: int,
        transport: httpx.BaseTransport | None,
        async_transport: httpx.AsyncBaseTransport | None,
    ) -> None:
        self._api_key = _Secret(api_key)
        self._base_url = base_url
        self._timeout = timeout
        self._retry = retry
        self._idempotency_enabled = idempotency_enabled
        self._limits = httpx.Limits(
            max_connections=max_connections, max_keepalive_connections=max_connections
        )
        self._transport = transport
        self._async_transport = async_transport
        self._client: httpx.Client | None = None
        self._aclient: httpx.AsyncClient | None = None
        #: Plain async calls skip httpx on the SDK's own aiohttp pool (_direct.py); None with a caller's transport.
        self._direct: DirectLane | None = None
        # The loop an aiohttp session is bound to; None when the async transport is the caller's.
        self._aclient_loop: asyncio.AbstractEventLoop | None = None
        self._lock = threading.Lock()
        self._sync_finalizer: weakref.finalize[[], Core] | None = None
        #: Closes the async pool when its event loop shuts down, if nobody did (see _close_with_loop).
        self._closer: AsyncGenerator[None, None] | None = None
        self._closed = False
        #: The core whose pools this one uses: itself, or the core it was derived from (`with_retry`).
        self._owner = self

    def with_retry(self, retry: RetryConfig) -> "Core":
        """A core with its own retry policy that sends through this core's pools (and never closes them)."""
        twin = copy.copy(self)
        twin._retry = retry
        return twin

    def _client_options(self) -> dict[str, Any]:
        return {"timeout": self._timeout, "headers": {"Authorization": f"Bearer {self._api_key.reveal()}"}}

    def _sync_client(self) -> httpx.Client:
        client = self._client
        if client is None:
            with self._lock:
                self._check_open()
                if self._client is None:
                    self._client = _without_cookies(
                        httpx.Client(transport=self._transport, limits=self._limits, **self._client_options())
                    )
                    # A client its program never closes (as in the official SDK's README) closes its sockets
                    # when it is garbage collected or at exit, instead of leaving ResourceWarnings.
                    self._sync_finalizer = weakref.finalize(self, self._client.close)
                client = self._client
        return client

    async def _async_client(self) -> httpx.AsyncClient:
        loop = asyncio.get_running_loop()
        client = self._aclient
        if client is None:
            self._check_open()
            if self._async_transport is not None:
                client = _without_cookies(
                    httpx.AsyncClient(transport=self._async_transport, **self._client_options())
                )
            else:
                # aiohttp under httpx: httpx's own async pool collapses with many requests in flight.
                client = _without_cookies(HttpxAiohttpClient(limits=self._limits, **self._client_options()))
                self._aclient_loop = loop
                self._direct = DirectLane.of(client)
            self._aclient = client
            # No await between the check above and here: concurrent first calls make one pool.
            self._closer = _close_with_loop(client)
            await anext(self._closer)
        elif self._aclient_loop is not None and self._aclient_loop is not loop:
            raise RuntimeError(
                "CyberdeskClient: its async connection pool belongs to another event loop; "
                "use one client per event loop (and close it with `await client.aclose()`)"
            )
        return client

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError("CyberdeskClient is closed")

    def _next_delay(self, prepared: Prepared, outcome: Outcome, retry_index: int) -> float | None:
        """The wait before the next attempt, or ``None`` to stop; reports the retry to the log and ``on_retry``."""
        reason = retry_reason(prepared, outcome)
        if reason is None or retry_index >= self._retry.max_retries:
            return None
        delay = retry_delay(self._retry, outcome, retry_index)
        status = outcome.status_code if isinstance(outcome, httpx.Response) else None
        event = RetryEvent(
            attempt=retry_index + 1,
            delay=delay,
            reason=reason,
            status_code=status,
            method=prepared.method,
            path=prepared.path,
        )
        logger.info(
            "retrying %s %s in %.2fs (retry %d of %d, %s %s)",
            event.method,
            event.path,
            delay,
            event.attempt,
            self._retry.max_retries,
            reason,
            status if status is not None else type(outcome).__name__,
        )
        if self._retry.on_retry is not None:
            self._retry.on_retry(event)
        return delay

    def send_sync(self, call: Call[T]) -> ApiResponse[T]:
        prepared = prepare(call, self._base_url, self._idempotency_enabled)
        client = self._owner._sync_client()
        retry_index = 0
        streamed = streams(call)
        while True:
            outcome: Outcome
            parsed: Parsed[T] | None = None
            try:
                if not streamed:
                    outcome = client.send(build_request(client, prepared))
                else:
                    outcome = client.send(build_request(client, prepared), stream=True)
                    parsed = receive_sync(call, outcome)
            except _TRANSPORT_ERRORS as exc:
                outcome = exc
            _unbind(outcome)
            delay = self._next_delay(prepared, outcome, retry_index)
            if delay is None:
                return to_api_response(call, prepared, outcome, parsed)
            self._retry.sleep(delay)
            retry_index += 1

    async def send(self, call: Call[T]) -> ApiResponse[T]:
        prepared = prepare(call, self._base_url, self._idempotency_enabled)
        client = await self._owner._async_client()
        direct = self._owner._direct
        if direct is not None and not direct.takes(call):
            direct = None
        streamed = streams(call)
        retry_index = 0
        while True:
            outcome: Outcome
            parsed: Parsed[T] | None = None
            try:
                if direct is not None:
                    outcome = await direct.send(
                        prepared.method, prepared.url, prepared.params, prepared.content, prepared.headers
                    )
                elif not streamed:
                    outcome = await client.send(build_request(client, prepared))
                else:
                    outcome = await client.send(build_request(client, prepared), stream=True)
                    parsed = await receive(call, outcome)
            except _TRANSPORT_ERRORS as exc:
                outcome = exc
            _unbind(outcome)
            delay = self._next_delay(prepared, outcome, retry_index)
            if delay is None:
                return to_api_response(call, prepared, outcome, parsed)
            await self._retry.async_sleep(delay)
            retry_index += 1

    def close(self) -> None:
        if self._owner is not self:
            return  # the pools are the owner's to close
        if self._aclient is not None and self._aclient_loop is not None:
            raise RuntimeError(
                "CyberdeskClient was used with async methods: close it with `await client.aclose()`"
            )
        self._closed = True
        self._close_sync_client()
        self._aclient = None

    def _close_sync_client(self) -> None:
        self._client = None
        if self._sync_finalizer is not None:
            self._sync_finalizer()  # closes the client, once

    async def aclose(self) -> None:
        if self._owner is not self:
            return
        self._closed = True
        aclient, self._aclient = self._aclient, None
        self._direct = None
        closer, self._closer = self._closer, None
        if aclient is not None:
            await aclient.aclose()
        if closer is not None:
            await closer.aclose()
        self._close_sync_client()
