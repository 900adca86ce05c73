"""`create_app(emulator)`: the ASGI application (FastAPI routes inside the emulator's middleware)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import AbstractAsyncContextManager

from fastapi import APIRouter, FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response

from cyberdesk.emulator.emulator import Emulator
from cyberdesk.emulator.errors import EmulatorError
from cyberdesk.emulator.middleware import EmulatorMiddleware
from cyberdesk.emulator.routes import (
    attachments,
    computer,
    connections,
    control,
    machines,
    model_configurations,
    pools,
    runs,
    tags,
    trajectories,
    usage,
    workflows,
)
from cyberdesk.emulator.ticker import run_ticker


def create_app(emulator: Emulator | None = None) -> EmulatorMiddleware:
    """The emulator as an ASGI app; usable in-process with `httpx.ASGITransport(app=create_app(em))`.

    The background ticker starts with the ASGI lifespan (uvicorn), not under ASGITransport: in-process
    tests then move time only through `emulator.advance()` and requests, which keeps them deterministic.
    """
    em = emulator if emulator is not None else Emulator()

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        task = asyncio.create_task(run_ticker(em))
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    routers = {name: build(em) for name, build in _BUILDERS.items()}
    # One small app per resource: FastAPI matches routes linearly and each test costs microseconds,
    # so dispatching on the path's resource segment first halves the routing cost of a request.
    # The fallback app serves /v1/health, /_emulator/* and 404s and runs the lifespan (the ticker).
    control_app = _fastapi([routers["health"]], lifespan=lifespan)
    per_resource = {name: _fastapi([router]) for name, router in routers.items() if name != "health"}
    routes = [route for router in routers.values() for route in router.routes]

    def docs() -> FastAPI:
        # Built on first use: re-including every route costs more than the rest of create_app.
        return _fastapi([build(em) for build in _BUILDERS.values()], docs=True)

    return EmulatorMiddleware(control_app, em, per_resource, docs, routes)


# The first path segment after /v1/ -> the routes of that resource.
_BUILDERS: dict[str, Callable[[Emulator], APIRouter]] = {
    "health": control.build,
    "runs": runs.build,
    "machines": machines.build,
    "pools": pools.build,
    "workflows": workflows.build,
    "connections": connections.build,
    "trajectories": trajectories.build,
    "computer": computer.build,
    "run-attachments": attachments.build,
    "usage": usage.build,
    "workflow-tags": tags.build_tags,
    "workflow-tag-groups": tags.build_groups,
    "model-configurations": model_configurations.build,
}


async def _emulator_error(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, EmulatorError)
    return JSONResponse({"detail": exc.detail}, status_code=exc.status_code)


# Fields whose values may be secret or personal (file contents, sensitive inputs, keys): a 422 names them and
# says what is wrong, but never echoes what was sent.
_CONFIDENTIAL = frozenset(
    {
        "content",
        "file_inputs",
        "shared_file_inputs",
        "sensitive_input_values",
        "sensitive_inputs",
        "shared_sensitive_inputs",
        "machine_sensitive_parameters",
        "pool_sensitive_parameters",
        "api_key",
    }
)


async def _validation_error(_: Request, exc: Exception) -> Response:
    """FastAPI's 422 body, minus `input` where it could carry a confidential value: under a confidential field,
    or a whole object or list (a missing field's error carries the entire body)."""
    assert isinstance(exc, RequestValidationError)
    errors = []
    for error in exc.errors():
        error = dict(error)
        if _CONFIDENTIAL.intersection(str(part) for part in error.get("loc", ())) or isinstance(
            error.get("input"), dict | list
        ):
            error.pop("input", None)
            error.pop("ctx", None)
        errors.append(error)
    return JSONResponse({"detail": jsonable_encoder(errors)}, status_code=422)


def _fastapi(
    routers: Iterable[APIRouter],
    lifespan: Callable[[FastAPI], AbstractAsyncContextManager[None]] | None = None,
    docs: bool = False,
) -> FastAPI:
    api = FastAPI(
        title="Cyberdesk cloud emulator",
        version="1",
        lifespan=lifespan,
        docs_url="/docs" if docs else None,
        redoc_url=None,
        openapi_url="/openapi.json" if docs else None,
    )
    api.add_exception_handler(EmulatorError, _emulator_error)
    api.add_exception_handler(RequestValidationError, _validation_error)
    for router in routers:
        api.include_router(router)
    return api
