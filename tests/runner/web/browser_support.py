"""Chromium for the browser tests, the screenshot and the page benchmark: Debian's `chromium` package, driven by
Playwright through `executable_path` (no browser is downloaded)."""

from __future__ import annotations

import shutil

import pytest
from playwright.sync_api import Browser, Playwright

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--headless",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]


def chromium_path() -> str | None:
    return shutil.which("chromium")


def launch(playwright: Playwright) -> Browser:
    path = chromium_path()
    if path is None:
        pytest.skip("no chromium on PATH (.ci/run installs Debian's chromium package)")
    return playwright.chromium.launch(executable_path=path, args=CHROMIUM_ARGS)
