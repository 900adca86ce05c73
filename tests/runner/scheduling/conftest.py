"""Fixtures for scheduler tests: a real Store (a SQLite file, or a fresh PostgreSQL schema), job files written
to a temporary folder and loaded by a real JobCatalog, a small Fleet and a ManualClock (no sleeping)."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from sched_helpers import Harness
from sqlalchemy.exc import OperationalError

from cyberdesk_runner.clock import ManualClock
from cyberdesk_runner.store import Store

PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A store URL of its own per test: a SQLite file, or a PostgreSQL schema dropped afterwards."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'store.sqlite'}"
        return
    schema = f"sched_{secrets.token_hex(6)}"
    admin = sa.create_engine(PG_URL)
    try:
        with admin.begin() as conn:
            conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    except OperationalError as exc:  # pragma: no cover - the server is expected to run
        admin.dispose()
        pytest.skip(f"PostgreSQL not reachable: {exc}")
    try:
        yield f"{PG_URL}?options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


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
