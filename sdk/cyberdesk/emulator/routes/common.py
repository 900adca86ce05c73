"""Helpers shared by the route modules: JSON responses, pagination, includes and time filters."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from datetime import datetime
from enum import Enum
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Query
from fastapi.responses import Response

from cyberdesk.emulator.clock import epoch

T = TypeVar("T")

# The spec documents skip=0 and limit=100 as defaults; the wrapper sends neither unless asked.
Skip = Annotated[int, Query(ge=0)]
Limit = Annotated[int, Query(ge=1, le=10_000)]


def json_response(data: Any, status_code: int = 200) -> Response:
    # Pre-encoded bytes skip FastAPI's jsonable_encoder, by far its most expensive step.
    body = json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode()
    return Response(body, status_code=status_code, media_type="application/json")


def no_content() -> Response:
    return Response(status_code=204)


def includes(value: str | None) -> set[str]:
    """`include=a,b` (comma-separated, as the client joins them)."""
    return {part.strip() for part in value.split(",") if part.strip()} if value else set()


def window(items: Sequence[T], skip: int, limit: int) -> list[T]:
    return list(items[skip : skip + limit])


def in_range(ts: float, start: datetime | None, end: datetime | None) -> bool:
    """Inclusive bounds, as the API documents for created_at_from/_to."""
    return (start is None or ts >= epoch(start)) and (end is None or ts <= epoch(end))


def contains(needle: str | None, *haystack: str | None) -> bool:
    if not needle:
        return True
    lowered = needle.lower()
    return any(h is not None and lowered in h.lower() for h in haystack)


_F = TypeVar("_F", bound=Callable[..., Any])


def route(method: str, path: str, status_code: int = 200, **options: Any) -> Callable[[_F], _F]:
    """Marks a handler method; `make_router` registers the marked methods in definition order."""

    def mark(handler: _F) -> _F:
        setattr(handler, "__emulator_route__", (method, path, status_code, options))  # noqa: B010
        return handler

    return mark


def make_router(handlers: object, prefix: str = "", tags: list[str | Enum] | None = None) -> APIRouter:
    """An APIRouter with the bound, marked methods of `handlers` (literal paths must come first)."""
    router = APIRouter(prefix=prefix, tags=tags)
    for name, attr in vars(type(handlers)).items():
        spec = getattr(attr, "__emulator_route__", None)
        if spec is not None:
            method, path, status_code, options = spec
            router.add_api_route(
                path, getattr(handlers, name), methods=[method], status_code=status_code, **options
            )
    return router
