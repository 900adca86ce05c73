"""Async calls straight to the SDK's own aiohttp session, without httpx's request and stream machinery.

The default async pool is aiohttp under httpx (``httpx_aiohttp``). For a plain call (a JSON or empty body, a
whole-body answer: no download or answer parsed as it arrives, no multipart upload, no proxy) httpx's part of that is only overhead: building
an ``httpx.Request`` (headers merged and copied, the URL parsed and joined), then reading the answer through
two layers of async byte streams. It is most of a create call's CPU beside aiohttp's own (bench/runner_bench.py:
the daemon creates a run and receives its webhook for about the CPU httpx spends on one call). :func:`send`
makes the same request on the same session: the headers httpx would send (its defaults, the client's and the
call's; aiohttp adds Host and Content-Length as it does under httpx), the same timeouts, aiohttp's errors mapped
to httpx's as ``httpx_aiohttp`` maps them, and an ``httpx.Response`` built from the answer, which decodes a
``Content-Encoding`` as httpx does. Everything else still goes through httpx.

An answer without a ``Content-Encoding`` (what the API sends) is handed over as an ``httpx.Response`` whose body is
already in place: httpx's constructor would otherwise pass the bytes through its stream and decoder machinery, at
about the cost of parsing the answer into its model. The lane checks once, when made, that such a response reads as
httpx's own (``content``, ``json()``, ``text``, closed); if a httpx release changes that, the lane is off.
"""

from collections.abc import Mapping, Sequence
from typing import Any

import aiohttp
import httpx
from httpx_aiohttp.transport import AiohttpTransport, map_aiohttp_exceptions

from ._operation import Call
from ._streaming import streams

_HTTP_1_1 = {"http_version": b"HTTP/1.1"}
#: The stream of an answer whose body is already read (never read from: `is_stream_consumed` is set).
_READ = httpx.ByteStream(b"")


def _answer(
    status: int, raw_headers: Sequence[tuple[bytes, bytes]], body: bytes, extensions: dict[str, Any]
) -> httpx.Response:
    """An answer whose body is not encoded, as httpx's constructor leaves it after reading it, without its stream
    and decoder work: same status, headers (a Content-Length added when the answer had none), content, closed and
    consumed."""
    if not any(name.lower() == b"content-length" for name, _ in raw_headers):
        raw_headers = [*raw_headers, (b"Content-Length", str(len(body)).encode())]
    response = httpx.Response(status, headers=raw_headers, stream=_READ, extensions=extensions)
    response._content = body
    response.is_closed = response.is_stream_consumed = True
    return response


def _answers_as_httpx() -> bool:
    """Whether `_answer` builds what httpx's constructor builds (it sets httpx's private `_content`)."""
    body = b'{"a": "\xc3\xa9"}'
    sized = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    chunked = [(b"content-type", b"application/json"), (b"transfer-encoding", b"chunked")]
    try:
        for raw in (sized, chunked):
            ours, theirs = _answer(200, raw, body, {}), httpx.Response(200, headers=raw, content=body)
            if not (
                ours.content == theirs.content
                and ours.json() == theirs.json()
                and ours.text == theirs.text
                and ours.is_closed == theirs.is_closed
                and ours.is_stream_consumed == theirs.is_stream_consumed
                and ours.headers.multi_items() == theirs.headers.multi_items()
            ):
                return False
    except Exception:
        return False
    return True


class DirectLane:
    """The aiohttp session under one ``HttpxAiohttpClient`` and what every direct call on it shares."""

    def __init__(
        self, session: aiohttp.ClientSession, headers: Mapping[str, str], timeout: httpx.Timeout
    ) -> None:
        self._session = session
        #: httpx's default headers (User-Agent, Accept...) and the client's (Authorization), as httpx sends them.
        self._headers = dict(headers)
        self._timeout = aiohttp.ClientTimeout(
            sock_connect=timeout.connect, sock_read=timeout.read, connect=timeout.pool
        )

    @classmethod
    def of(cls, client: httpx.AsyncClient) -> "DirectLane | None":
        """The lane of a client whose every request goes to the SDK's own aiohttp pool; None when a proxy from the
        environment is mounted (httpx picks a transport per URL then)."""
        # These are httpx's and httpx_aiohttp's internals, read as of the locked versions. A release that moves
        # them must not break a call: the lane is off then, and every call goes through httpx as before.
        try:
            transport = client._transport
            if client._mounts or type(transport) is not AiohttpTransport:
                return None
            if not isinstance(transport.client, aiohttp.ClientSession):
                transport.client = transport.get_client()  # what the transport does on its first request
            session: object = transport.client
        except AttributeError:
            return None
        if not isinstance(session, aiohttp.ClientSession) or not _answers_as_httpx():
            return None
        headers = {name.decode("latin-1"): value.decode("latin-1") for name, value in client.headers.raw}
        return cls(session, headers, client.timeout)

    def takes(self, call: Call[Any]) -> bool:
        """Whether the call is a plain one: a whole-body answer (no file to stream into, no body parsed as it
        arrives), no multipart body."""
        return not streams(call) and not call.files

    async def send(
        self,
        method: str,
        url: str,
        params: tuple[tuple[str, str], ...],
        content: bytes | None,
        headers: Mapping[str, str],
    ) -> httpx.Response:
        if params:
            url = str(httpx.URL(url, params=params))  # httpx's encoding of the query, as it would send it
        merged = self._headers | dict(headers) if headers else self._headers
        with map_aiohttp_exceptions():
            async with self._session.request(
                method,
                url,
                headers=merged,
                data=content or None,
                allow_redirects=False,
                auto_decompress=False,  # httpx.Response decodes, as it does under httpx_aiohttp
                compress=False,
                timeout=self._timeout,
            ) as answer:
                body = await answer.read()
        extensions = dict(_HTTP_1_1)
        if answer.reason:
            extensions["reason_phrase"] = answer.reason.encode()
        if "Content-Encoding" not in answer.headers:
            return _answer(answer.status, answer.raw_headers, body, extensions)
        # Decoded by httpx, as under httpx_aiohttp.
        return httpx.Response(answer.status, headers=answer.raw_headers, content=body, extensions=extensions)
