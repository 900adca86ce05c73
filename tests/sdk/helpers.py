"""Helpers of the SDK tests: canned API payloads, a recording MockTransport handler, time that never passes."""

import json
from collections.abc import Awaitable, Callable, Iterable, Iterator
from typing import Any
from uuid import UUID

import httpx

from cyberdesk import ApiResponse, CyberdeskClient, RetryConfig

API_KEY = "sk-test-abc123"
BASE = "https://api.cyberdesk.io"
NOW = "2024-05-01T12:00:00Z"

RID = "5d1e0d6a-7c2b-4c6e-9a51-0f8e2b7c1a01"
WID = "7a2f4b1c-0d3e-4f5a-8b6c-9d0e1f2a3b02"
MID = "9c3e5d2b-1e4f-4a6b-8c7d-0e1f2a3b4c03"
PID = "2b4d6f8a-0c1e-4a3b-9d5f-7e9a1b3c5d04"
CID = "3c5e7a9b-1d2f-4b4c-8e6a-8f0b2c4d6e05"
TID = "4d6f8b0c-2e3a-4c5d-9f7b-9a1c3d5e7f06"


def run_json(**over: Any) -> dict[str, Any]:
    return {
        "id": RID,
        "workflow_id": WID,
        "machine_id": MID,
        "status": "scheduling",
        "created_at": NOW,
        **over,
    }


def machine_json(**over: Any) -> dict[str, Any]:
    return {
        "id": MID,
        "unkey_key_id": "key_1",
        "status": "connected",
        "is_available": True,
        "alerts_enabled": False,
        "created_at": NOW,
        "last_seen": NOW,
        "name": "desk-1",
        **over,
    }


def pool_json(**over: Any) -> dict[str, Any]:
    return {
        "id": PID,
        "name": "pool-1",
        "organization_id": "org_1",
        "created_at": NOW,
        "updated_at": NOW,
        **over,
    }


def workflow_json(**over: Any) -> dict[str, Any]:
    return {"id": WID, "main_prompt": "Do it", "created_at": NOW, "updated_at": NOW, **over}


def connection_json(**over: Any) -> dict[str, Any]:
    return {
        "id": CID,
        "websocket_id": "ws_1",
        "machine_id": MID,
        "connected_at": NOW,
        "disconnected_at": None,
        "last_ping": NOW,
        "status": "connected",
        **over,
    }


def trajectory_json(**over: Any) -> dict[str, Any]:
    return {
        "id": TID,
        "workflow_id": WID,
        "trajectory_data": [{"action": "click", "x": 1, "y": 2}],
        "dimensions": {"width": 1920, "height": 1080},
        "is_approved": False,
        "has_been_approved": False,
        "is_generated": True,
        "is_main": False,
        "created_at": NOW,
        "updated_at": NOW,
        **over,
    }


AID = "6e8a0c2d-4f5b-4d6e-8a9c-1b3d5f7a9c07"
GID = "8f9b1d3e-5a6c-4e7f-9b0d-2c4e6a8b0d08"


def attachment_json(**over: Any) -> dict[str, Any]:
    return {
        "id": AID,
        "run_id": RID,
        "filename": "invoice.pdf",
        "content_type": "application/pdf",
        "attachment_type": "output",
        "size_bytes": 5,
        "storage_path": f"org_1/{RID}/output/invoice.pdf",
        "created_at": NOW,
        **over,
    }


def tag_json(**over: Any) -> dict[str, Any]:
    return {"id": TID, "name": "Production", "organization_id": "org_1", "order": 0, "created_at": NOW,
            "updated_at": NOW, **over}  # fmt: skip


def model_configuration_json(**over: Any) -> dict[str, Any]:
    return {"id": CID, "name": "fast", "provider": "anthropic", "model": "claude", "is_system_default": False,
            "created_at": NOW, "updated_at": NOW, **over}  # fmt: skip


def page_json(items: list[Any], total: int | None = None, skip: int = 0, limit: int = 100) -> dict[str, Any]:
    return {"items": items, "total": len(items) if total is None else total, "skip": skip, "limit": limit}


class Chunks(httpx.SyncByteStream, httpx.AsyncByteStream):
    """A body that arrives in pieces (made as they are pulled), that fails instead of sending piece
    ``fail_after``, and that counts the pieces the client pulled."""

    def __init__(self, pieces: Iterable[bytes], fail_after: int | None = None) -> None:
        self.pieces, self.fail_after = pieces, fail_after
        self.pulled = 0

    def __iter__(self) -> Iterator[bytes]:
        for i, piece in enumerate(self.pieces):
            if self.fail_after is not None and i == self.fail_after:
                raise httpx.ReadError("connection reset mid-body")
            self.pulled += 1
            yield piece

    async def __aiter__(self):  # type: ignore[no-untyped-def]
        for piece in self.__iter__():
            yield piece


Reply = httpx.Response | Callable[[httpx.Request], httpx.Response] | Exception


class Api:
    """A MockTransport handler that records every request and answers from a queue (the last reply repeats)."""

    def __init__(self, *replies: Reply) -> None:
        self.replies = list(replies) or [httpx.Response(200, json={})]
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        reply = self.replies.pop(0) if len(self.replies) > 1 else self.replies[0]
        if isinstance(reply, Exception):
            raise reply
        if callable(reply):
            return reply(request)
        # A fresh copy: a response object is bound to the (sync or async) client that received it.
        return httpx.Response(reply.status_code, headers=reply.headers, content=reply.read())

    @property
    def last(self) -> httpx.Request:
        return self.requests[-1]


def body_of(request: httpx.Request) -> Any:
    return json.loads(request.content) if request.content else None


class Sleeps:
    """Stands in for time.sleep / asyncio.sleep: records the delays, never waits."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.delays.append(seconds)

    async def async_sleep(self, seconds: float) -> None:
        self.delays.append(seconds)


def no_wait_retry(sleeps: Sleeps, **kw: Any) -> RetryConfig:
    return RetryConfig(sleep=sleeps.sleep, async_sleep=sleeps.async_sleep, random=lambda: 0.5, **kw)


async def call(
    client: CyberdeskClient, mode: str, resource: str, op: str, /, *args: Any, **kwargs: Any
) -> Any:
    """Invoke ``client.<resource>.<op>`` in the given mode (``op_sync()`` or ``await op()``)."""
    group = getattr(client, resource)
    if mode == "sync":
        result: ApiResponse[Any] = getattr(group, f"{op}_sync")(*args, **kwargs)
        return result
    coroutine: Awaitable[ApiResponse[Any]] = getattr(group, op)(*args, **kwargs)
    return await coroutine


def is_uuid(value: str | None) -> bool:
    try:
        UUID(str(value))
    except ValueError:
        return False
    return True


def query_of(request: httpx.Request) -> list[tuple[str, str]]:
    return list(request.url.params.multi_items())
