"""Bodies the request core streams, never held whole in memory: into a file (``Call.download_to``), or through
the call's parser as they arrive (a :class:`~cyberdesk._operation.ParseChunks` ``Call.parse``).

A download goes to ``<name>.part`` and is renamed onto ``<name>`` once complete and as long as its
``Content-Length`` says; a failure removes the part file, so the target is either whole or untouched.

A parsed body's outcome is a :class:`Parsed`: its value, or the parser's ``ValueError``/``TypeError`` (a ``decode``
error, as a whole body's parse raising it). A network failure while reading is raised, and retried, as any other.
"""

import os
from pathlib import Path
from typing import Any, Generic, TypeVar

import attrs
import httpx

from ._operation import Call, ChunkParser, ParseChunks

T = TypeVar("T")


class IncompleteBody(OSError):
    """A streamed body ended before its ``Content-Length``: a network failure, retried like one."""


def _part_file(target: Path) -> Path:
    return target.with_name(target.name + ".part")


def _check_length(response: httpx.Response, written: int) -> None:
    # Content-Length counts the bytes on the wire: comparable to what was written only without Content-Encoding.
    expected = response.headers.get("Content-Length")
    if response.headers.get("Content-Encoding", "identity") != "identity" or expected is None:
        return
    if expected.isdigit() and int(expected) != written:
        raise IncompleteBody(f"the body ended after {written} of {expected} bytes")


@attrs.frozen
class Parsed(Generic[T]):
    """What a body parsed as it arrived held, or why it could not be parsed."""

    value: T | None = None
    error: ValueError | TypeError | None = None

    def get(self) -> T:
        """The value, or raise the parser's error."""
        if self.error is not None:
            raise self.error
        return self.value  # type: ignore[return-value]  # None only with an error


def streams(call: Call[Any]) -> bool:
    """Whether the core reads this call's answer as a stream (a download, or a body parsed as it arrives)."""
    return call.download_to is not None or isinstance(call.parse, ParseChunks)


class _Feeding(Generic[T]):
    """One attempt's parser: its first error ends the parse (the rest of the body is not read)."""

    def __init__(self, parser: ChunkParser[T]) -> None:
        self._parser = parser
        self._error: ValueError | TypeError | None = None

    def feed(self, chunk: bytes) -> bool:
        """Whether to go on reading."""
        try:
            self._parser.feed(chunk)
        except (ValueError, TypeError) as exc:
            self._error = exc
            return False
        return True

    def outcome(self) -> Parsed[T]:
        if self._error is not None:
            return Parsed(error=self._error)
        try:
            return Parsed(self._parser.result())
        except (ValueError, TypeError) as exc:
            return Parsed(error=exc)


def receive_sync(call: Call[T], response: httpx.Response) -> Parsed[T] | None:
    """The body of a streamed response: on success into ``call.download_to`` or through the call's parser (its
    outcome returned); else into memory (errors)."""
    try:
        target = call.download_to
        if response.status_code != call.success or (
            target is None and not isinstance(call.parse, ParseChunks)
        ):
            response.read()
            return None
        if isinstance(call.parse, ParseChunks):
            # A malformed body stops the read there: closing the response drops its connection.
            feeding = _Feeding(call.parse.start())
            for chunk in response.iter_bytes():
                if not feeding.feed(chunk):
                    break
            return feeding.outcome()
        assert target is not None
        part = _part_file(target)
        try:
            written = 0
            with part.open("wb") as out:
                for chunk in response.iter_bytes():
                    written += out.write(chunk)
            _check_length(response, written)
            os.replace(part, target)
        finally:
            part.unlink(missing_ok=True)  # a failed download leaves nothing behind
        return None
    finally:
        response.close()


async def receive(call: Call[T], response: httpx.Response) -> Parsed[T] | None:
    """As :func:`receive_sync`, for the async client (chunks are small: plain writes do not stall the loop)."""
    try:
        target = call.download_to
        if response.status_code != call.success or (
            target is None and not isinstance(call.parse, ParseChunks)
        ):
            await response.aread()
            return None
        if isinstance(call.parse, ParseChunks):
            feeding = _Feeding(call.parse.start())
            async for chunk in response.aiter_bytes():
                if not feeding.feed(chunk):
                    break
            return feeding.outcome()
        assert target is not None
        part = _part_file(target)
        try:
            written = 0
            with part.open("wb") as out:
                async for chunk in response.aiter_bytes():
                    written += out.write(chunk)
            _check_length(response, written)
            os.replace(part, target)
        finally:
            part.unlink(missing_ok=True)
        return None
    finally:
        await response.aclose()
