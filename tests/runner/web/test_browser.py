"""The status page in Chromium, on a real daemon running on the emulator: the jobs appear, a fire's progress
moves and a failed item's error shows up without a reload, the deep links work, phones and dark mode."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from browser_support import launch
from playwright.sync_api import Browser, Page, expect, sync_playwright
from web_support import FAILURE, SECRET, LivePage

from cyberdesk_runner.web import page as page_module

pytestmark = pytest.mark.browser

#: Longest wait for something the daemon does to show on the page (runs take 1 to 2 s; the page polls every 2 s).
WAIT_MS = 30_000


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        chromium = launch(playwright)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: Browser, live_page: LivePage) -> Iterator[Page]:
    context = browser.new_context()
    tab = context.new_page()
    tab.goto(live_page.url + "/")
    # A reload would lose this: the live updates must swap content in, not reload.
    tab.evaluate("window.__notReloaded = true")
    yield tab
    context.close()


def _not_reloaded(page: Page) -> bool:
    return bool(page.evaluate("window.__notReloaded === true"))


def test_the_jobs_appear(page: Page) -> None:
    expect(page.get_by_role("heading", name=re.compile("^Jobs"))).to_be_visible()
    jobs = page.locator("#jobs tbody tr")
    expect(jobs).to_have_count(3)
    expect(page.locator('tr[data-job="claims"]')).to_contain_text(
        "at 06:00 on Monday to Friday, America/New_York"
    )
    expect(page.locator('tr[data-job="steps"]')).to_contain_text("manual only")
    expect(page.locator("tr[data-desktop] >> text=desk-off")).to_be_visible()


def test_a_fires_progress_moves_without_a_reload(page: Page, live_page: LivePage) -> None:
    page.mouse.wheel(0, 300)
    fire_id = live_page.trigger("steps")  # four items, one at a time, about 2 s each
    row = page.locator(f'#fires tr[data-fire="{fire_id}"]')
    expect(row).to_be_visible(timeout=WAIT_MS)
    expect(row).to_contain_text(re.compile(r"[1-3]/4 ok"), timeout=WAIT_MS)
    first = row.locator(".counts").inner_text()
    done = row.locator(".seg.s-succeeded")
    bar = row.locator(".bar").bounding_box()
    box = done.bounding_box()
    # The bar is drawn: its succeeded part takes its share of the width (the page's CSP lets the widths through).
    assert bar is not None and box is not None and 0.2 * bar["width"] <= box["width"] <= 0.8 * bar["width"]
    expect(row.locator(".counts")).not_to_have_text(first, timeout=WAIT_MS)
    # Once done, the fire leaves the in-flight list, and its job's last fire says so.
    expect(row).to_have_count(0, timeout=WAIT_MS)
    expect(page.locator('tr[data-job="steps"]')).to_contain_text("succeeded", timeout=WAIT_MS)
    assert _not_reloaded(page)


def test_a_failed_items_error_shows(page: Page, live_page: LivePage) -> None:
    before = page.locator("#failures tbody tr[data-attempt]").count()
    live_page.trigger("claims")
    failures = page.locator("#failures tbody tr[data-attempt]")
    expect(failures).to_have_count(before + 1, timeout=WAIT_MS)
    expect(failures.first.locator(".error")).to_have_text(FAILURE)
    assert _not_reloaded(page)
    assert SECRET not in page.content()


def test_deep_links_lead_to_the_fire_and_its_items(page: Page, live_page: LivePage) -> None:
    live_page.trigger("claims")
    last = page.locator('tr[data-job="claims"] a[href^="/fires/"]')
    expect(last).to_contain_text(re.compile("failed"), timeout=WAIT_MS)
    last.click()
    expect(page).to_have_url(re.compile(r"/fires/fire_[0-9a-f]+$"))
    expect(page.get_by_role("heading", level=1)).to_contain_text("Fire")
    expect(page.locator("text=token = ***").first).to_be_visible()
    items = page.locator("tr[data-item]")
    expect(items).to_have_count(3)
    page.locator("tr[data-item]", has_text="failed").locator("a").click()
    expect(page).to_have_url(re.compile(r"/items/item_[0-9a-f]+$"))
    expect(page.locator("dd.error").last).to_contain_text(FAILURE)
    expect(page.locator("code", has_text="claim_id = C-BAD")).to_be_visible()
    # A deep link typed in (or shared) works on its own.
    url = page.url
    other = page.context.new_page()
    other.goto(url)
    expect(other.get_by_role("heading", level=1)).to_contain_text("Item")
    assert SECRET not in other.content()


def test_readable_on_a_phone_and_dark_when_the_system_is(browser: Browser, live_page: LivePage) -> None:
    context = browser.new_context(viewport={"width": 390, "height": 844}, color_scheme="dark", is_mobile=True)
    try:
        phone = context.new_page()
        phone.goto(live_page.url + "/")
        # Nothing wider than the screen but the tables' own scrolling boxes.
        assert phone.evaluate("document.documentElement.scrollWidth") <= 390
        background = phone.evaluate("getComputedStyle(document.body).backgroundColor")
        red, green, blue = (int(v) for v in re.findall(r"\d+", background)[:3])
        assert red + green + blue < 100, background
    finally:
        context.close()


def test_a_long_jobs_table_is_cut_to_a_page_with_a_link_to_all_jobs(
    browser: Browser, live_page: LivePage, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(page_module, "JOBS_SHOWN", 2)
    context = browser.new_context()
    try:
        tab = context.new_page()
        tab.goto(live_page.url + "/")
        # At the latest with the next live refresh (the overview is cached for a second).
        more = tab.get_by_role("link", name="1 more job")
        expect(more).to_be_visible(timeout=WAIT_MS)
        expect(tab.locator("#jobs tbody tr")).to_have_count(2)
        more.click()
        expect(tab).to_have_url(re.compile(r"/jobs$"))
        expect(tab.get_by_role("heading", level=1)).to_contain_text("Jobs")
        expect(tab.locator("tbody tr[data-job]")).to_have_count(2)
        tab.get_by_role("link", name="Next").click()
        expect(tab).to_have_url(re.compile(r"/jobs\?page=2$"))
        expect(tab.locator("tbody tr[data-job]")).to_have_count(1)
    finally:
        context.close()
