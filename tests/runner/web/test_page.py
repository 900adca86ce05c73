"""The status page of a real daemon on the emulator, over HTTP: what each section and deep link shows, that it
never shows a secret, and the live fragment the page's script asks for."""

from __future__ import annotations

import re
import subprocess
import sys

import httpx
import pytest
from daemon_support import eventually
from web_support import FAILURE, SECRET, LivePage

from cyberdesk_runner.store.views import FireView
from cyberdesk_runner.web import page as page_module


def _get(live: LivePage, path: str, **headers: str) -> httpx.Response:
    return httpx.get(live.url + path, headers=headers, timeout=10)


def _fire_done(live: LivePage, fire_id: str) -> bool:
    store = live.store()
    try:
        view = store.queries.fire_view(fire_id)
    finally:
        store.close()
    return view is not None and view.finished_at is not None


def test_the_overview_shows_jobs_failures_desktops_and_daemons(live_page: LivePage) -> None:
    fire_id = live_page.trigger("claims")
    eventually(lambda: _fire_done(live_page, fire_id), what="the claims fire to finish", timeout=60)
    page = _get(live_page, "/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    html = page.text
    assert "default-src 'none'" in page.headers["content-security-policy"]
    # Jobs: schedule in words, next fire in the job's zone and in UTC, last fire.
    claims = re.search(r'<tr data-job="claims">(.*?)</tr>', html, re.S)
    assert claims is not None
    row = claims.group(1)
    assert "at 06:00 on Monday to Friday, America/New_York" in row
    assert re.search(r"\d{4}-\d\d-\d\d 06:00 E[SD]T<br><small>\d{4}-\d\d-\d\d 1[01]:00 UTC", row)
    assert f'href="/fires/{fire_id}"' in row and "failed" in row
    assert '<tr data-job="steps">' in html and "manual only" in html
    # Failures with their error, linked to their item.
    failure = re.search(r'<tr data-attempt="[^"]+">(.*?)</tr>', html, re.S)
    assert failure is not None and FAILURE in failure.group(1) and 'href="/items/item_' in failure.group(1)
    # Desktops: idle and disconnected ones too; daemons with a heartbeat age.
    assert re.search(r"desk-off</th>\s*<td><span class=\"status s-disconnected\">", html)
    assert re.search(r"desk-1</th>\s*<td><span class=\"status s-(idle|busy)\">", html)
    assert live_page.daemon.id in html and " ago" in html
    assert SECRET not in html


def test_fires_and_items_link_to_what_show_shows_with_secrets_masked(live_page: LivePage) -> None:
    fire_id = live_page.trigger("claims")
    eventually(lambda: _fire_done(live_page, fire_id), what="the claims fire to finish", timeout=60)
    fire = _get(live_page, f"/fires/{fire_id}")
    assert fire.status_code == 200
    assert "token = ***" in fire.text and SECRET not in fire.text
    items = re.findall(r'href="/items/(item_[^"]+)"', fire.text)
    assert len(set(items)) == 3
    pages = [_get(live_page, f"/items/{item_id}").text for item_id in set(items)]
    bad = [p for p in pages if "<code>claim_id = C-BAD</code>" in p]
    assert len(bad) == 1 and FAILURE in bad[0] and "token = ***" in bad[0]
    assert all(SECRET not in p for p in pages)

    # The fire of the `after:` job it triggered, linked both ways.
    def followup() -> str | None:
        store = live_page.store()
        try:
            fires = store.queries.fire_views(job="followup", limit=50)
        finally:
            store.close()
        return next((f.id for f in fires if f.upstream_fire_id == fire_id), None)

    downstream = eventually(followup, what="the followup fire", timeout=30)
    assert f'href="/fires/{downstream}"' in _get(live_page, f"/fires/{fire_id}").text
    assert f'href="/fires/{fire_id}"' in _get(live_page, f"/fires/{downstream}").text
    job = _get(live_page, "/jobs/claims")
    assert job.status_code == 200 and fire_id in job.text and "token = ***" in job.text


def test_unknown_ids_are_404_pages_that_repeat_nothing_unsafe(live_page: LivePage) -> None:
    for path in ("/fires/fire_nope", "/items/item_nope", "/jobs/nope", "/fires/<script>x"):
        response = _get(live_page, path)
        assert response.status_code == 404 and "Not found" in response.text
        assert "<script>x" not in response.text
    # An item id under /fires/ is not a fire.
    store = live_page.store()
    try:
        item_id = store.queries.item_views(store.queries.fire_views(limit=1)[0].id)[0].id
    finally:
        store.close()
    assert _get(live_page, f"/fires/{item_id}").status_code == 404


def test_the_live_fragment_is_the_main_part_only(live_page: LivePage) -> None:
    fragment = _get(live_page, "/", **{"X-Live": "1"})
    assert fragment.status_code == 200
    assert "<html" not in fragment.text and '<section id="jobs"' in fragment.text
    full = _get(live_page, "/")
    assert '<main id="live" data-refresh="2000">' in full.text
    # Every asset comes from the daemon itself.
    assets = re.findall(r'(?:src|href)="([^"#]+)"', full.text)
    assert assets and all(a.startswith("/") for a in assets)
    for asset in ("/static/page.css", "/static/live.js"):
        assert _get(live_page, asset).status_code == 200


def _fires_of(live: LivePage, job: str) -> list[FireView]:
    store = live.store()
    try:
        return store.queries.fire_views(job=job, limit=50)
    finally:
        store.close()


def test_the_overview_lists_the_jobs_with_news_first_and_links_to_all(
    live_page: LivePage, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A page of two rows for three jobs: `steps` in flight, `claims` failed just now, `followup` nothing to say.
    monkeypatch.setattr(page_module, "JOBS_SHOWN", 2)
    claims = live_page.trigger("claims")
    eventually(lambda: _fire_done(live_page, claims), what="the claims fire to finish", timeout=60)
    followup = eventually(
        lambda: next((f.id for f in _fires_of(live_page, "followup") if f.upstream_fire_id == claims), None),
        what="the followup fire",
        timeout=30,
    )
    eventually(lambda: _fire_done(live_page, followup), what="the followup fire to finish", timeout=60)
    steps = live_page.trigger("steps")  # four items one at a time, several seconds in flight

    def overview_rows() -> list[str] | None:
        html = _get(live_page, "/").text
        rows = re.findall(r'<tr data-job="([^"]+)">', html)
        return rows if rows == ["steps", "claims"] else None

    eventually(overview_rows, what="steps then claims on the overview", timeout=20)
    assert not _fire_done(live_page, steps), "the steps fire ended before the overview was checked"
    html = _get(live_page, "/").text
    assert re.search(r'<a href="/jobs">1 more job</a>', html) and "Jobs <small>(3)</small>" in html

    first = _get(live_page, "/jobs")
    assert first.status_code == 200
    assert re.findall(r'<tr data-job="([^"]+)">', first.text) == ["claims", "followup"]
    assert 'rel="next" href="/jobs?page=2"' in first.text
    second = _get(live_page, "/jobs?page=2")
    assert re.findall(r'<tr data-job="([^"]+)">', second.text) == ["steps"]
    assert 'rel="prev" href="/jobs?page=1"' in second.text and 'rel="next"' not in second.text
    for path in ("/jobs?page=3", "/jobs?page=0", "/jobs?page=<b>"):
        missing = _get(live_page, path)
        assert missing.status_code == 404 and "<b>" not in missing.text
    assert SECRET not in first.text + second.text


def test_a_daemon_loads_the_pages_views_only_when_a_page_is_asked_for() -> None:
    """Jinja2 and the page's reads (about 3 MB) stay out of a daemon whose page nobody opens; the tests above ask
    for pages of a daemon started the same way."""
    probe = (
        "import sys; import cyberdesk_runner.cli.run, cyberdesk_runner.daemon; "
        "print(sorted(m for m in ('jinja2', 'cyberdesk_runner.web.views', 'cyberdesk_runner.web.page') "
        "if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
