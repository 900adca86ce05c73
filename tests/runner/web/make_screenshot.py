"""Make the README's screenshot of the status page with the browser tests' setup (run by hand):

.venv/bin/python tests/runner/web/make_screenshot.py docs/status-page.png
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent)]

from browser_support import launch  # noqa: E402
from playwright.sync_api import sync_playwright  # noqa: E402
from web_support import serve_page  # noqa: E402


def main(target: Path) -> None:
    with tempfile.TemporaryDirectory() as folder, serve_page(Path(folder)) as live:
        live.trigger("claims")
        time.sleep(3)  # the claims fire ends (one item fails)
        live.trigger("steps")
        live.trigger("claims")
        time.sleep(3.5)  # both under way: progress bars part done
        with sync_playwright() as playwright:
            browser = launch(playwright)
            page = browser.new_page(viewport={"width": 1200, "height": 900})
            page.goto(live.url + "/")
            page.screenshot(path=str(target), full_page=True)
            browser.close()
    print(f"wrote {target}")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "docs/status-page.png"))
