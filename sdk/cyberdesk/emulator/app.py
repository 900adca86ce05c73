"""`create_app(emulator)`: the ASGI application (FastAPI routes inside the emulator's middleware)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import AbstractAsyncContextManager

from fastapi import APIRouter, FastAPI, Request
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
    pools,
    runs,
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

    routers = {name: module.build(em) for name, module in _MODULES.items()}
    # One small app per resource: FastAPI matches routes linearly and each test costs microseconds,
    # so dispatching on the path's resource segment first halves the routing cost of a request.
    # The fallback app serves /v1/health, /_emulator/* and 404s and runs the lifespan (the ticker).
    control_app = _fastapi([routers["health"]], lifespan=lifespan)
    per_resource = {name: _fastapi([router]) for name, router in routers.items() if name != "health"}
    routes = [route for router in routers.values() for route in router.routes]

    def docs() -> FastAPI:
        # Built on first use: re-including every route costs more than the rest of create_app.
        return _fastapi([module.build(em) for module in _MODULES.values()], docs=True)

    return EmulatorMiddleware(control_app, em, per_resource, docs, routes)


_MODULES = {
    "health": control,
    "runs": runs,
    "machines": machines,
    "pools": pools,
    "workflows": workflows,
    "connections": connections,
    "trajectories": trajectories,
    "computer": computer,
    "run-attachments": attachments,
    "usage": usage,
}


async def _emulator_error(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, EmulatorError)
    return JSONResponse({"detail": exc.detail}, status_code=exc.status_code)


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
    for router in routers:
        api.include_router(router)
    return api
