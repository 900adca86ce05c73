"""Fixtures for scheduler tests: a real Store (a SQLite file, or a fresh PostgreSQL schema), job files written
to a temporary folder and loaded by a real JobCatalog, a small Fleet and a ManualClock (no sleeping)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sched_helpers import Harness

from cyberdesk_runner.clock import ManualClock
from cyberdesk_runner.store import Store


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A store URL of its own per test: a SQLite file, or a PostgreSQL schema dropped afterwards."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'store.sqlite'}"
        return
    yield request.getfixturevalue("pg_schema")()


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    store = Store(store_url)
    store.create_schema()
    yield store
    store.close()


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(datetime(2026, 6, 1, 12, 0, tzinfo=UTC))


@pytest.fixture
def harness(store: Store, clock: ManualClock, tmp_path: Path) -> Harness:
    folder = tmp_path / "jobs"
    folder.mkdir()
    return Harness(store, folder, clock)
