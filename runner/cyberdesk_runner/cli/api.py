"""How one-shot commands (`validate`, `trigger --dry-run`) ask the API: the configured one, or, with no key, an
emulator built from the config's `emulator` settings and served in-process (nothing listens, nothing runs).

A refused key ends the command with one line and the config error code; other failures are the caller's to judge.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

import httpx

from cyberdesk import CyberdeskClient, CyberdeskError, RetryConfig
from cyberdesk_runner.api_access import is_key_refused, key_refused_message, status_of
from cyberdesk_runner.cli.common import ExitCode, fail
from cyberdesk_runner.config import Config

__all__ = ["ask_api", "where"]

T = TypeVar("T")

#: Seconds to wait for an answer: people and CI run these commands, and should not wait long.
_TIMEOUT = 10.0
_EMULATOR_URL = "http://embedded-emulator"


def where(settings: Config) -> str:
    """The API these commands ask, in words."""
    return "the embedded emulator" if settings.uses_emulator else str(settings.cyberdesk.base_url)


def ask_api(settings: Config, question: Callable[[CyberdeskClient], Awaitable[T]]) -> T:
    """`question`'s answer; exits (CONFIG) when the API refuses the key, raises CyberdeskError for other failures."""

    async def ask() -> T:
        async with _client(settings) as client:
            return await question(client)

    try:
        return asyncio.run(ask())
    except CyberdeskError as exc:
        if is_key_refused(exc):
            fail(key_refused_message(where(settings), status_of(exc)), ExitCode.CONFIG)
        raise


def _client(settings: Config) -> CyberdeskClient:
    retry = RetryConfig(max_retries=2, max_delay_seconds=2.0)
    if settings.cyberdesk.api_key is not None:
        return CyberdeskClient(
            settings.cyberdesk.api_key.get_secret_value(),
            base_url=str(settings.cyberdesk.base_url),
            timeout=_TIMEOUT,
            retry=retry,
        )
    from cyberdesk.emulator import FixtureError, create_app

    try:
        emulator = settings.emulator.build()
    except FixtureError as exc:
        fail(f"emulator.fixture: {exc}", ExitCode.CONFIG)
    transport = httpx.ASGITransport(app=create_app(emulator))
    return CyberdeskClient(emulator.api_key, base_url=_EMULATOR_URL, retry=retry, async_transport=transport)
