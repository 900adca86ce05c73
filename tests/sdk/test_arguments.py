"""A malformed argument, on every method of every resource, sync and async, is answered with an
``invalid_argument`` ApiError naming the argument, and no request is sent.

The operations are enumerated from the resources themselves, so a method added later is covered without
touching this file.
"""

import inspect
import typing
from collections.abc import Iterator, Sequence
from pathlib import PurePath
from typing import Any
from uuid import UUID

import httpx
import pytest

from cyberdesk import ApiResponse, CyberdeskClient, CyberdeskError, ErrorKind
from cyberdesk._operation import AsyncFlow, AsyncMethod, Resource, SyncFlow, SyncMethod
from cyberdesk.pagination import AsyncPages, SyncPages

from .helpers import API_KEY, MID

MALFORMED = "invalid-id"


def _takes_uuid(annotation: Any) -> str | None:
    """``"one"`` for an id parameter (``UUID | str``), ``"many"`` for a sequence of ids, else ``None``."""
    args = typing.get_args(annotation)
    if annotation is UUID or UUID in args:
        return "one"
    for arg in args or (annotation,):
        origin = typing.get_origin(arg)
        if isinstance(origin, type) and issubclass(origin, Sequence) and _takes_uuid(typing.get_args(arg)[0]):
            return "many"
    return None


def _well_formed(annotation: Any) -> Any:
    """A well-formed value for another required argument, so that only the one under test is malformed."""
    shape = _takes_uuid(annotation)
    if shape is not None:
        return MID if shape == "one" else [MID]
    if annotation is str or str in typing.get_args(annotation) or PurePath in typing.get_args(annotation):
        return "well-formed"
    return None


def _operations() -> Iterator[tuple[str, str, Any, inspect.Parameter, dict[str, Any]]]:
    """(resource, method name, descriptor, the id parameter, other required arguments) for every id parameter."""
    client = CyberdeskClient(API_KEY)
    resources = {name: r for name, r in vars(client).items() if isinstance(r, Resource)}
    assert {"machines", "pools", "workflows", "runs", "connections", "trajectories", "computer"} <= set(
        resources
    )
    for resource_name, resource in resources.items():
        for name, descriptor in vars(type(resource)).items():
            if not isinstance(
                descriptor, AsyncMethod | SyncMethod | AsyncFlow | SyncFlow | AsyncPages | SyncPages
            ):
                continue
            describe = descriptor._describe
            hints = typing.get_type_hints(describe)
            params = list(inspect.signature(describe).parameters.values())[1:]  # without self
            required = {
                p.name: _well_formed(hints.get(p.name))
                for p in params
                if p.default is inspect.Parameter.empty
            }
            for param in params:
                shape = _takes_uuid(hints.get(param.name))
                if shape is not None:
                    yield resource_name, name, descriptor, param, {**required, param.name: shape}


OPERATIONS = list(_operations())


def test_every_resource_has_operations_taking_ids() -> None:
    resources = {resource for resource, *_ in OPERATIONS}
    assert {"machines", "pools", "workflows", "runs", "connections", "trajectories", "computer"} <= resources
    assert len(OPERATIONS) > 60  # every sync and async method and iterator with an id parameter


def _arguments(param: inspect.Parameter, values: dict[str, Any]) -> dict[str, Any]:
    """Every argument by keyword: the malformed id, and ``None`` for the other required ones (never reached)."""
    return {
        name: (MALFORMED if value == "one" else [MID, MALFORMED]) if name == param.name else value
        for name, value in values.items()
    }


@pytest.mark.parametrize(
    ("resource", "name", "descriptor", "param", "values"),
    OPERATIONS,
    ids=[f"{r}.{n}({p.name})" for r, n, _, p, _ in OPERATIONS],
)
async def test_a_malformed_id_is_an_invalid_argument_error_and_sends_nothing(
    resource: str, name: str, descriptor: Any, param: inspect.Parameter, values: dict[str, Any]
) -> None:
    sent: list[httpx.Request] = []

    def transport(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return httpx.Response(400)

    client = CyberdeskClient(
        API_KEY, transport=httpx.MockTransport(transport), async_transport=httpx.MockTransport(transport)
    )
    method = getattr(getattr(client, resource), name)
    kwargs = _arguments(param, values)
    if isinstance(descriptor, AsyncPages | SyncPages):
        with pytest.raises(CyberdeskError) as raised:
            if isinstance(descriptor, AsyncPages):
                [item async for item in method(**kwargs)]
            else:
                list(method(**kwargs))
        error = raised.value.error
    else:
        result = method(**kwargs)
        response = await result if isinstance(descriptor, AsyncMethod | AsyncFlow) else result
        assert isinstance(response, ApiResponse) and response.data is None
        assert response.error is not None
        error = response.error
    assert error.kind is ErrorKind.INVALID_ARGUMENT
    assert error.argument == param.name and error.is_definite_failure
    assert param.name in str(error) and MALFORMED in str(error) and f"{resource}.{name}" in str(error)
    assert sent == []
    await client.aclose()


def test_the_seed_readme_error_handling_example() -> None:
    client = CyberdeskClient(API_KEY)
    response = client.machines.get_sync("invalid-id")
    assert response.data is None and response.error is not None
    assert str(response.error) == (
        "machines.get_sync: invalid_argument: machine_id: 'invalid-id' is not a valid UUID (no request sent)"
    )
    client.close()


def test_a_wrongly_called_method_still_raises_type_error() -> None:
    client = CyberdeskClient(API_KEY)
    with pytest.raises(TypeError):
        client.machines.get_sync()  # type: ignore[call-arg]
    client.close()
