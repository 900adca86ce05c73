"""The status page's views, rendered on the server (Jinja2, autoescaped): loaded with the first request for a page
(`routes.py`), so a daemon whose page nobody opens carries neither Jinja2 nor the page's reads.

The page's script asks for the same URL every 2 seconds with `X-Live: 1` and gets only the `<main>` part, whose
changed sections it swaps in: live, with no reload and no lost scroll.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from cyberdesk_runner.cli.render import ago, span, when
from cyberdesk_runner.cli.shapes import items_text
from cyberdesk_runner.fleet import Fleet
from cyberdesk_runner.store import Store
from cyberdesk_runner.web.page import StatusPage, utc_now

__all__ = ["page_views"]

View = Callable[[Request], Awaitable[Response]]

#: How often the page asks for news (milliseconds): the issue's bound is 2 s.
REFRESH_MS = 2000
_HEADERS = {
    # Style attributes carry the progress bars' widths; <style> elements and every other source stay forbidden.
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; "
    "style-src-attr 'unsafe-inline'; img-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'none'; "
    "frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
_BAR_PARTS = ("succeeded", "failed", "cancelled", "running", "pending")


def progress(items: dict[str, int]) -> list[tuple[str, float, int]]:
    """A fire's item counts as bar segments: (status, percent of the width, count), empty ones left out."""
    total = items.get("total") or 0
    if not total:
        return []
    return [(part, 100.0 * items[part] / total, items[part]) for part in _BAR_PARTS if items.get(part)]


def _environment() -> Environment:
    env = Environment(
        loader=PackageLoader("cyberdesk_runner.web", "templates"),
        autoescape=select_autoescape(default=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters |= {"when": when, "ago": ago, "span": span, "items_text": items_text, "progress": progress}
    return env


def page_views(
    store: Store, fleet: Callable[[], Fleet | None], now: Callable[[], datetime] | None = None
) -> dict[str, View]:
    """The page's views by route name (`routes.ROUTES`)."""
    page = StatusPage(store, fleet=fleet)
    now = now or utc_now
    templates = _environment()

    def render(request: Request, template: str, status: int = 200, **context: Any) -> Response:
        fragment = request.headers.get("x-live") == "1"
        html = templates.get_template(template).render(fragment=fragment, refresh_ms=REFRESH_MS, **context)
        return HTMLResponse(html, status_code=status, headers=_HEADERS)

    def not_found(request: Request, what: str) -> Response:
        return render(request, "missing.html", status=404, what=what)

    rendered: dict[bool, tuple[object, str]] = {}

    def overview_html(fragment: bool) -> str:
        # Browsers polling together share the overview (a one-second cache) and so its HTML too.
        document = page.overview(now())
        last = rendered.get(fragment)
        if last is not None and last[0] is document:
            return last[1]
        html = templates.get_template("overview.html").render(
            fragment=fragment, refresh_ms=REFRESH_MS, page=document
        )
        rendered[fragment] = (document, html)
        return html

    async def overview(request: Request) -> Response:
        # Asked and rendered in a worker thread: a big page must not hold up webhooks on the event loop.
        html = await asyncio.to_thread(overview_html, request.headers.get("x-live") == "1")
        return HTMLResponse(html, headers=_HEADERS)

    async def jobs(request: Request) -> Response:
        number = request.query_params.get("page", "1")
        listing = await asyncio.to_thread(page.jobs_listing, now(), int(number)) if number.isdigit() else None
        if listing is None:
            return not_found(
                request, f"page {int(number)} of jobs" if number.isdigit() else "such page of jobs"
            )
        return render(request, "jobs.html", listing=listing)

    async def job(request: Request) -> Response:
        name = request.path_params["name"]
        document = await asyncio.to_thread(page.job, name, now())
        return render(request, "job.html", job=document) if document else not_found(request, f"job {name}")

    async def fire(request: Request) -> Response:
        fire_id = request.path_params["id"]
        document = await asyncio.to_thread(page.show, "fire", fire_id, now())
        return (
            render(request, "show.html", doc=document) if document else not_found(request, f"fire {fire_id}")
        )

    async def item(request: Request) -> Response:
        item_id = request.path_params["id"]
        document = await asyncio.to_thread(page.show, "item", item_id, now())
        return (
            render(request, "show.html", doc=document) if document else not_found(request, f"item {item_id}")
        )

    return {"overview": overview, "jobs": jobs, "job": job, "fire": fire, "item": item}
