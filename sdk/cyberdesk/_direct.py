"""Async calls straight to the SDK's own aiohttp session, without httpx's request and stream machinery.

The default async pool is aiohttp under httpx (``httpx_aiohttp``). For a plain call (a JSON or empty body, a
whole-body answer: no download, no multipart upload, no proxy) httpx's part of that is only overhead: building
an ``httpx.Request`` (headers merged and copied, the URL parsed and joined), then reading the answer through
two layers of async byte streams. It is most of a create call's CPU beside aiohttp's own (bench/runner_bench.py:
the daemon creates a run and receives its webhook for about the CPU httpx spends on one call). :func:`send`
makes the same request on the same session: the headers httpx would send (its defaults, the client's and the
call's; aiohttp adds Host and Content-Length as it does under httpx), the same timeouts, aiohttp's errors mapped
to httpx's as ``httpx_aiohttp`` maps them, and an ``httpx.Response`` built from the answer, which decodes a
``Content-Encoding`` as httpx does. Everything else still goes through httpx.
"""

from collections.abc import Mapping
from typing import Any

import aiohttp
import httpx
from httpx_aiohttp.transport import AiohttpTransport, map_aiohttp_exceptions

from ._operation import Call

_HTTP_1_1 = {"http_version": b"HTTP/1.1"}


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
        if not isinstance(session, aiohttp.ClientSession):
            return None
        headers = {name.decode("latin-1"): value.decode("latin-1") for name, value in client.headers.raw}
        return cls(session, headers, client.timeout)

    def takes(self, call: Call[Any]) -> bool:
        """Whether the call is a plain one: no file to stream into, no multipart body."""
        return call.download_to is None and not call.files

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
        return httpx.Response(answer.status, headers=answer.raw_headers, content=body, extensions=extensions)
