"""Bodies streamed into a file (``Call.download_to``) by the request core, never held whole in memory.

The body goes to ``<name>.part`` and is renamed onto ``<name>`` once complete and as long as its
``Content-Length`` says; a failure removes the part file, so the target is either whole or untouched.
"""

import os
from pathlib import Path
from typing import Any

import httpx

from ._operation import Call


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


def receive_sync(call: Call[Any], response: httpx.Response) -> None:
    """The body of a streamed response: into ``call.download_to`` on success, else into memory (errors)."""
    try:
        target = call.download_to
        if target is None or response.status_code != call.success:
            response.read()
            return
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
    finally:
        response.close()


async def receive(call: Call[Any], response: httpx.Response) -> None:
    """As :func:`receive_sync`, for the async client (chunks are small: plain writes do not stall the loop)."""
    try:
        target = call.download_to
        if target is None or response.status_code != call.success:
            await response.aread()
            return
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
    finally:
        await response.aclose()
