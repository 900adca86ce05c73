"""Shared test setup."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from cyberdesk_runner.logs import configure


@pytest.fixture(autouse=True)
def _plain_logs() -> Iterator[None]:
    """Each test starts with the default log setup, whatever an earlier test (or CLI run) configured."""
    configure("console", "info")
    yield
