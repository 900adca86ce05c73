"""One parametrized store fixture for the Store contract: every test runs on SQLite and on PostgreSQL.

PostgreSQL is the server on 127.0.0.1:5432 (database `test`, trust auth; `.ci/run` starts it). These tests never
skip: an unreachable server fails them, loudly. Isolation: one schema per test session (search_path in the URL),
upgraded once and emptied before each test; migration tests make fresh schemas of their own (`pg_schema`, in
tests/runner/conftest.py).
SQLite: a copy of a store upgraded once per session.
"""

from __future__ import annotations

import secrets
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from pg_support import pg_url_for
from store_helpers import T0, job

from cyberdesk_runner.store import Store

_TABLES = (
    "job, fire, item, attempt, event, daemon, lease, alert, result_file, desktop_down, step_run, attempt_file, "
    "output_file"
)


@pytest.fixture(scope="session")
def _pg_session_url(pg_admin: sa.Engine) -> Iterator[str]:
    schema = f"store_{secrets.token_hex(6)}"
    with pg_admin.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    store = Store(pg_url_for(schema))
    store.upgrade()
    store.close()
    yield pg_url_for(schema)
    with pg_admin.begin() as conn:
        conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))


@pytest.fixture(scope="session")
def _sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "store.sqlite"
    store = Store(f"sqlite:///{path}")
    store.upgrade()
    store.close()
    return path


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty store at the newest schema revision, as a URL."""
    if request.param == "sqlite":
        path = tmp_path / "store.sqlite"
        shutil.copyfile(request.getfixturevalue("_sqlite_template"), path)
        return f"sqlite:///{path}"
    url: str = request.getfixturevalue("_pg_session_url")
    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(sa.text(f"TRUNCATE {_TABLES} RESTART IDENTITY"))
    finally:
        engine.dispose()
    return url


@pytest.fixture
def open_store(store_url: str) -> Iterator[Callable[[], Store]]:
    """Opens more stores on the same database: each one is another daemon (its own owner id and pool)."""
    opened: list[Store] = []

    def make() -> Store:
        store = Store(store_url)
        opened.append(store)
        return store

    yield make
    for store in opened:
        store.close()


@pytest.fixture
def store(open_store: Callable[[], Store]) -> Store:
    return open_store()


@pytest.fixture
def pg_store(pg_schema: Callable[[], str]) -> Iterator[Store]:
    """A PostgreSQL store of its own (a fresh schema) with job `a`, for what only PostgreSQL does."""
    store = Store(pg_schema())
    store.upgrade()
    store.jobs.sync([job("a")], T0)
    yield store
    store.close()
