"""One description per endpoint (:class:`Call`), turned into an async ``name()`` and a sync ``name_sync()`` method.

A resource writes each operation once, as a function returning a ``Call``::

    def _get(self, run_id: UUID | str, *, include: Sequence[str] | None = None) -> Call[RunResponseWithIncludes]:
        return Call("GET", "/v1/runs/{run_id}", json_body(RunResponseWithIncludes.from_dict), ...)

    get, get_sync = operation(_get)

The descriptors keep the description's exact parameter list (a ``ParamSpec``), so type checkers and IDEs see
``runs.get(run_id, *, include=...)`` and its return type, awaitable or not.

A description validates its arguments (:func:`ids`, :func:`uuid_arg`) and raises a ``ValueError`` (best an
:class:`~cyberdesk.errors.ArgumentError` naming the argument) for a malformed one; :func:`describe_call`, used by
every method and iterator, turns that into an ``invalid_argument`` :class:`ApiError`, and no request is sent.

A method made of several requests (``run_attachments.save_to_file``: metadata, then the file) is written once as a
generator that yields each ``Call`` and receives its ``ApiResponse`` (:func:`flow`); it too serves both forms.
"""

import datetime as dt
import inspect
import re
from collections.abc import Callable, Coroutine, Generator, Mapping, Sequence
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Any, Concatenate, Generic, ParamSpec, Protocol, Self, TypeVar, overload
from uuid import UUID

import attrs
import httpx

from ._response import ApiResponse
from .errors import ApiError, ArgumentError, ErrorKind
from .models._base import Model, ModelError
from .models.common import Page

if TYPE_CHECKING:
    from ._core import Core

P = ParamSpec("P")
T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)

QueryValue = str | int | float | bool | UUID | dt.datetime | Enum | Sequence[str | Enum] | None
Query = dict[str, QueryValue]
Parse = Callable[[httpx.Response], T]
#: A multipart part: (filename, content, content type).
FilePart = tuple[str, bytes, str]


@attrs.frozen
class Call(Generic[T]):
    """Everything about one request that does not depend on the client: what to send, what success looks like."""

    method: str
    #: A template such as ``/v1/runs/{run_id}``; the values of ``path_params`` are percent-quoted into it.
    path: str
    #: Turns the success response into ``T``; a ``ValueError``/``TypeError`` from it becomes a ``decode`` error.
    #: A :class:`ParseChunks` is fed the body as it arrives instead (the request core streams the answer).
    parse: Parse[T]
    path_params: Mapping[str, str | UUID] = attrs.field(factory=dict, kw_only=True)
    #: ``None`` values are dropped; sequences are repeated (``fields=a&fields=b``).
    query: Mapping[str, QueryValue] = attrs.field(factory=dict, kw_only=True)
    body: Model | None = attrs.field(default=None, kw_only=True)
    #: The one status that means success; any other is an error.
    success: int = attrs.field(default=200, kw_only=True)
    #: Caller-chosen ``Idempotency-Key`` of a write (the client mints one otherwise).
    idempotency_key: str | None = attrs.field(default=None, kw_only=True)
    #: A ``multipart/form-data`` body instead of JSON: form field -> part.
    files: Mapping[str, FilePart] | None = attrs.field(default=None, kw_only=True)
    #: Stream a successful response's body into this file (written as ``<name>.part``, renamed when complete)
    #: instead of reading it into memory; ``parse`` then sees a response whose body was not read.
    download_to: Path | None = attrs.field(default=None, kw_only=True)


def json_body(parse: Callable[[Any], T]) -> Parse[T]:
    """Parse the JSON body with ``parse`` (e.g. ``RunResponse.from_dict``)."""

    def parse_response(response: httpx.Response) -> T:
        return parse(response.json())

    return parse_response


def json_list(parse: Callable[[Any], T]) -> Parse[list[T]]:
    """Parse a bare JSON array, each item with ``parse``."""

    def parse_response(response: httpx.Response) -> list[T]:
        items = response.json()
        if not isinstance(items, list):
            raise ModelError(f"expected an array, got {type(items).__name__}")
        return [parse(item) for item in items]

    return parse_response


class ChunkParser(Protocol[T_co]):
    """Parses one body fed in pieces; raises ``ValueError`` (or ``TypeError``) as soon as it is malformed."""

    def feed(self, chunk: bytes) -> None: ...

    #: At the end of the body: what it held (a ``ValueError`` if it ended early).
    def result(self) -> T_co: ...


@attrs.frozen
class ParseChunks(Generic[T]):
    """A ``Call.parse`` that reads a successful answer as it arrives, chunk by chunk, instead of whole: a big
    answer is never held as one piece (its bytes, their text, a document of it). ``start`` makes the parser of
    one attempt. Called on a response whose body is already read, it parses that body the same way."""

    start: Callable[[], ChunkParser[T]]

    def __call__(self, response: httpx.Response) -> T:
        parser = self.start()
        parser.feed(response.content)
        return parser.result()


def no_content(_: httpx.Response) -> None:
    return None


def raw_bytes(response: httpx.Response) -> bytes:
    return response.content


def saved_file(path: Path) -> Parse["SavedFile"]:
    """The result of a ``download_to`` call: where the body went and how many bytes it had."""

    def parse_response(_: httpx.Response) -> SavedFile:
        return SavedFile(path=path, size=path.stat().st_size)

    return parse_response


@attrs.frozen
class SavedFile:
    """A downloaded file: its path and its size in bytes."""

    path: Path
    size: int


def page_of(parse: Callable[[Any], T]) -> Parse[Page[T]]:
    """Parse a page (``items``, ``total``, ``skip``, ``limit`` required) whose items are parsed by ``parse``."""

    def parse_response(response: httpx.Response) -> Page[T]:
        return Page.from_dict(response.json(), parse)

    return parse_response


def uuid_arg(name: str, value: UUID | str) -> UUID:
    """Validate an id argument before any request is made."""
    if isinstance(value, UUID):
        return value
    try:
        return UUID(value)
    except (ValueError, TypeError, AttributeError):
        raise ArgumentError(name, f"{_short_repr(value)} is not a valid UUID") from None


def _short_repr(value: object, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def ids(**values: UUID | str) -> dict[str, str | UUID]:
    """Path ids, validated: ``ids(run_id=run_id)``."""
    return {name: uuid_arg(name, value) for name, value in values.items()}


def opt_uuid_arg(name: str, value: UUID | str | None) -> UUID | None:
    return None if value is None else uuid_arg(name, value)


def csv(values: Sequence[str] | None) -> str | None:
    """``include=["a", "b"]`` goes out as ``include=a,b``."""
    if values is None or isinstance(values, str):
        return values
    return ",".join(values)


class Resource:
    """A group of operations bound to one client's request core."""

    def __init__(self, core: "Core") -> None:
        self._core = core


def operation_name(owner: type, name: str) -> str:
    """How errors name a method: the client's attribute for its resource, then the method (``workflow_tags.get``)."""
    return f"{re.sub(r'(?<!^)(?=[A-Z])', '_', owner.__name__).lower()}.{name}"


def describe_call(
    describe: Callable[..., Call[T]], obj: Resource, args: Any, kwargs: Any, operation: str
) -> Call[T] | ApiError:
    """The call ``describe`` makes of these arguments, or the ``invalid_argument`` error of a malformed one.

    ``operation`` names the SDK method for the error (``machines.get_sync``). A ``TypeError`` (a missing or
    unexpected argument) is a bug in the caller's code and is raised as Python would.
    """
    try:
        return describe(obj, *args, **kwargs)
    except ValueError as exc:
        return invalid_argument(exc, operation)


def invalid_argument(exc: ValueError, operation: str) -> ApiError:
    """The ``invalid_argument`` error of a description that refused its arguments (nothing was sent)."""
    argument = exc.argument if isinstance(exc, ArgumentError) else None
    return ApiError(
        kind=ErrorKind.INVALID_ARGUMENT, method="", path=operation, detail=str(exc), argument=argument
    )


async def _answer(response: ApiResponse[T]) -> ApiResponse[T]:
    return response


class _Method(Generic[P, T]):
    def __init__(self, describe: Callable[Concatenate[Any, P], Call[T]]) -> None:
        self._describe = describe
        self._name = describe.__name__.lstrip("_")
        self._operation = self._name
        self.__doc__ = describe.__doc__
        # The description's parameters without ``self``: what help() and inspect show for the bound method.
        signature = inspect.signature(describe)
        self._signature = signature.replace(parameters=list(signature.parameters.values())[1:])

    def __set_name__(self, owner: type, name: str) -> None:
        self._name = name
        self._operation = operation_name(owner, name)

    def _bind(self, obj: Resource, method: Callable[..., Any]) -> None:
        method.__name__ = method.__qualname__ = self._name
        method.__doc__ = self.__doc__
        method.__signature__ = self._signature  # type: ignore[attr-defined]
        # Cache on the instance: later lookups skip the descriptor (non-data descriptors lose to __dict__).
        obj.__dict__[self._name] = method


class AsyncMethod(_Method[P, T]):
    @overload
    def __get__(self, obj: None, owner: type | None = None) -> Self: ...
    @overload
    def __get__(
        self, obj: Resource, owner: type | None = None
    ) -> Callable[P, Coroutine[Any, Any, ApiResponse[T]]]: ...
    def __get__(self, obj: Resource | None, owner: type | None = None) -> Any:
        if obj is None:
            return self
        describe, core, operation = self._describe, obj._core, self._operation

        # Not ``async def``: the description (id validation included) runs when called, before any await.
        def method(*args: P.args, **kwargs: P.kwargs) -> Coroutine[Any, Any, ApiResponse[T]]:
            call = describe_call(describe, obj, args, kwargs, operation)
            if isinstance(call, ApiError):
                return _answer(ApiResponse(error=call))
            return core.send(call)

        self._bind(obj, method)
        return method


class SyncMethod(_Method[P, T]):
    @overload
    def __get__(self, obj: None, owner: type | None = None) -> Self: ...
    @overload
    def __get__(self, obj: Resource, owner: type | None = None) -> Callable[P, ApiResponse[T]]: ...
    def __get__(self, obj: Resource | None, owner: type | None = None) -> Any:
        if obj is None:
            return self
        describe, core, operation = self._describe, obj._core, self._operation

        def method(*args: P.args, **kwargs: P.kwargs) -> ApiResponse[T]:
            call = describe_call(describe, obj, args, kwargs, operation)
            if isinstance(call, ApiError):
                return ApiResponse(error=call)
            return core.send_sync(call)

        self._bind(obj, method)
        return method


def operation(describe: Callable[Concatenate[Any, P], Call[T]]) -> tuple[AsyncMethod[P, T], SyncMethod[P, T]]:
    """The async and sync methods of one operation description."""
    return AsyncMethod(describe), SyncMethod(describe)


#: A method of several requests: yields each ``Call``, receives its ``ApiResponse``, returns the final one.
Flow = Generator[Call[Any], ApiResponse[Any], ApiResponse[T]]


class AsyncFlow(_Method[P, T]):
    def __init__(self, describe: Callable[Concatenate[Any, P], Flow[T]]) -> None:
        super().__init__(describe)  # type: ignore[arg-type]
        self._flow = describe

    @overload
    def __get__(self, obj: None, owner: type | None = None) -> Self: ...
    @overload
    def __get__(
        self, obj: Resource, owner: type | None = None
    ) -> Callable[P, Coroutine[Any, Any, ApiResponse[T]]]: ...
    def __get__(self, obj: Resource | None, owner: type | None = None) -> Any:
        if obj is None:
            return self
        describe, core, operation = self._flow, obj._core, self._operation

        def method(*args: P.args, **kwargs: P.kwargs) -> Coroutine[Any, Any, ApiResponse[T]]:
            steps = describe(obj, *args, **kwargs)
            try:
                first = next(steps)  # the arguments are checked now, as for a single call
            except ValueError as exc:
                return _answer(ApiResponse(error=invalid_argument(exc, operation)))

            async def run() -> ApiResponse[T]:
                call = first
                while True:
                    try:
                        call = steps.send(await core.send(call))
                    except StopIteration as done:
                        result: ApiResponse[T] = done.value
                        return result

            return run()

        self._bind(obj, method)
        return method


class SyncFlow(_Method[P, T]):
    def __init__(self, describe: Callable[Concatenate[Any, P], Flow[T]]) -> None:
        super().__init__(describe)  # type: ignore[arg-type]
        self._flow = describe

    @overload
    def __get__(self, obj: None, owner: type | None = None) -> Self: ...
    @overload
    def __get__(self, obj: Resource, owner: type | None = None) -> Callable[P, ApiResponse[T]]: ...
    def __get__(self, obj: Resource | None, owner: type | None = None) -> Any:
        if obj is None:
            return self
        describe, core, operation = self._flow, obj._core, self._operation

        def method(*args: P.args, **kwargs: P.kwargs) -> ApiResponse[T]:
            steps = describe(obj, *args, **kwargs)
            try:
                call = next(steps)
            except ValueError as exc:
                return ApiResponse(error=invalid_argument(exc, operation))
            while True:
                try:
                    call = steps.send(core.send_sync(call))
                except StopIteration as done:
                    result: ApiResponse[T] = done.value
                    return result

        self._bind(obj, method)
        return method


def flow(describe: Callable[Concatenate[Any, P], Flow[T]]) -> tuple[AsyncFlow[P, T], SyncFlow[P, T]]:
    """The async and sync methods of one multi-request description (a generator of ``Call``s)."""
    return AsyncFlow(describe), SyncFlow(describe)
