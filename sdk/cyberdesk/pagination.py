"""Iterate over every item of a list endpoint, page by page: ``iter()`` (async) and ``iter_sync()``.

The iterators take the list method's own parameters: the filters, plus ``skip`` (where to start, default 0) and
``limit``, which here is the page size (default :data:`DEFAULT_PAGE_SIZE`). They stop after the page that reaches
``total``, or at an empty page. Items created or deleted while iterating may shift the offsets (the API pages by
offset), so an item can be seen twice or missed.

Unlike the calls, the iterators raise: a failed page (after the client's retries), or a malformed argument (when
iteration starts, before any request), raises :class:`CyberdeskError`, whose ``.error`` is the :class:`ApiError`.
"""

from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any, Concatenate, Generic, ParamSpec, Self, TypeVar, overload

import attrs

from ._operation import Call, Resource, describe_call, operation_name
from .errors import ApiError, CyberdeskError
from .models.common import Page

P = ParamSpec("P")
T = TypeVar("T")

DEFAULT_PAGE_SIZE = 100


def first_page(call: Call[Page[T]]) -> Call[Page[T]]:
    """Fill in the defaults of the first request: skip 0, limit = page size."""
    query = dict(call.query)
    query["skip"] = query.get("skip") or 0
    query["limit"] = query.get("limit") or DEFAULT_PAGE_SIZE
    return attrs.evolve(call, query=query)


def next_page(call: Call[Page[T]], page: Page[T]) -> Call[Page[T]] | None:
    """The request of the page after ``page`` (fetched by ``call``), or ``None`` when it was the last one."""
    current = call.query.get("skip")
    skip = (current if isinstance(current, int) else 0) + len(page.items)
    if not page.items or skip >= page.total:
        return None
    return attrs.evolve(call, query={**call.query, "skip": skip})


class _Pages(Generic[P, T]):
    def __init__(self, describe: Callable[Concatenate[Any, P], Call[Page[T]]]) -> None:
        self._describe = describe
        self._name = describe.__name__
        self._operation = self._name
        self.__doc__ = (
            f"Every item of ``{describe.__name__.lstrip('_')}``, across pages (see cyberdesk.pagination)."
        )

    def __set_name__(self, owner: type, name: str) -> None:
        self._name = name
        self._operation = operation_name(owner, name)

    def _first_call(self, obj: Resource, args: Any, kwargs: Any) -> Call[Page[T]] | ApiError:
        call = describe_call(self._describe, obj, args, kwargs, self._operation)
        return call if isinstance(call, ApiError) else first_page(call)


class AsyncPages(_Pages[P, T]):
    @overload
    def __get__(self, obj: None, owner: type | None = None) -> Self: ...
    @overload
    def __get__(self, obj: Resource, owner: type | None = None) -> Callable[P, AsyncIterator[T]]: ...
    def __get__(self, obj: Resource | None, owner: type | None = None) -> Any:
        if obj is None:
            return self
        core = obj._core

        def iterate(*args: P.args, **kwargs: P.kwargs) -> AsyncIterator[T]:
            first = self._first_call(obj, args, kwargs)

            async def items() -> AsyncIterator[T]:
                if isinstance(first, ApiError):
                    raise CyberdeskError(first)
                call: Call[Page[T]] | None = first
                while call is not None:
                    page = (await core.send(call)).unwrap()
                    for item in page.items:
                        yield item
                    call = next_page(call, page)

            return items()

        iterate.__name__ = self._name
        iterate.__doc__ = self.__doc__
        return iterate


class SyncPages(_Pages[P, T]):
    @overload
    def __get__(self, obj: None, owner: type | None = None) -> Self: ...
    @overload
    def __get__(self, obj: Resource, owner: type | None = None) -> Callable[P, Iterator[T]]: ...
    def __get__(self, obj: Resource | None, owner: type | None = None) -> Any:
        if obj is None:
            return self
        core = obj._core

        def iterate(*args: P.args, **kwargs: P.kwargs) -> Iterator[T]:
            first = self._first_call(obj, args, kwargs)

            def items() -> Iterator[T]:
                if isinstance(first, ApiError):
                    raise CyberdeskError(first)
                call: Call[Page[T]] | None = first
                while call is not None:
                    page = core.send_sync(call).unwrap()
                    yield from page.items
                    call = next_page(call, page)

            return items()

        iterate.__name__ = self._name
        iterate.__doc__ = self.__doc__
        return iterate


def paginated(
    describe: Callable[Concatenate[Any, P], Call[Page[T]]],
) -> tuple[AsyncPages[P, T], SyncPages[P, T]]:
    """The async and sync item iterators of one list operation description."""
    return AsyncPages(describe), SyncPages(describe)
