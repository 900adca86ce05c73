"""The status page's routes: `/` (the overview), `/jobs` (every job, paged), `/jobs/{name}`, `/fires/{id}`,
`/items/{id}`, `/static/...`.

Their views (`views.py`: Jinja2, the page's reads) are loaded in a worker thread when a page is first asked for:
a daemon whose page nobody opens does without them (about 3 MB). Every asset is package data: no CDN, no build
step; the Content-Security-Policy allows nothing else.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from cyberdesk_runner.fleet import Fleet
from cyberdesk_runner.store import Store

if TYPE_CHECKING:
    from cyberdesk_runner.web.views import View

__all__ = ["page_routes"]

#: Each page's path, by the name of its view.
ROUTES = {
    "overview": "/",
    "jobs": "/jobs",
    "job": "/jobs/{name}",
    "fire": "/fires/{id}",
    "item": "/items/{id}",
}


def page_routes(
    store: Store, fleet: Callable[[], Fleet | None], now: Callable[[], datetime] | None = None
) -> list[BaseRoute]:
    """The page's routes over `store` and the daemon's fleet snapshot (`fleet`; None until it is known)."""
    loading: asyncio.Future[dict[str, View]] | None = None

    async def views() -> dict[str, View]:
        nonlocal loading
        if loading is None:  # once, whichever request comes first; the others wait for it
            loading = asyncio.ensure_future(asyncio.to_thread(_load_views, store, fleet, now))
        return await asyncio.shield(loading)

    def route(name: str, path: str) -> Route:
        async def endpoint(request: Request) -> Response:
            return await (await views())[name](request)

        return Route(path, endpoint, name=name)

    return [
        *(route(name, path) for name, path in ROUTES.items()),
        Mount("/static", StaticFiles(packages=[("cyberdesk_runner.web", "static")]), name="static"),
    ]


def _load_views(
    store: Store, fleet: Callable[[], Fleet | None], now: Callable[[], datetime] | None
) -> dict[str, View]:
    from cyberdesk_runner.web.views import page_views

    return page_views(store, fleet, now)
