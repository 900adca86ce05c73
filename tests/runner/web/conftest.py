"""The page tests' live daemon (see web_support.py), one per module."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from web_support import LivePage, serve_page


@pytest.fixture(scope="module")
def live_page(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LivePage]:
    with serve_page(tmp_path_factory.mktemp("page")) as live:
        yield live
