"""A fresh PostgreSQL schema for the scale-out test (server on 127.0.0.1:5432, database `test`). An
unreachable server fails the test: it must run in CI, never skip."""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable, Iterator

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import OperationalError

PG_URL = os.environ.get("CYBERDESK_RUNNER_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


@pytest.fixture
def pg_schema() -> Iterator[Callable[[], str]]:
    admin = sa.create_engine(PG_URL)
    made: list[str] = []

    def make() -> str:
        schema = f"scaleout_{secrets.token_hex(6)}"
        try:
            with admin.begin() as conn:
                conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
        except OperationalError as exc:
            pytest.fail(f"PostgreSQL is not reachable at {PG_URL} ({exc.orig})", pytrace=False)
        made.append(schema)
        return f"{PG_URL}?options=-csearch_path%3D{schema}"

    yield make
    with admin.begin() as conn:
        for schema in made:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
    admin.dispose()
