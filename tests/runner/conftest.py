"""PostgreSQL for every runner test that needs it. These tests never skip: an unreachable server fails them."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator

import pytest
import sqlalchemy as sa
from pg_support import PG_URL, pg_url_for
from receiver import Receiver
from sqlalchemy.exc import OperationalError


@pytest.fixture(scope="session")
def pg_admin() -> Iterator[sa.Engine]:
    engine = sa.create_engine(PG_URL)
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
    except OperationalError as exc:
        engine.dispose()
        pytest.fail(
            f"PostgreSQL is not reachable at {PG_URL} ({exc.orig}); these tests need it: start it "
            "(.ci/run does) or point CYBERDESK_RUNNER_TEST_PG at one",
            pytrace=False,
        )
    yield engine
    engine.dispose()


@pytest.fixture
def pg_schema(pg_admin: sa.Engine) -> Iterator[Callable[[], str]]:
    """A factory of fresh, empty PostgreSQL schemas (as store URLs), dropped after the test."""
    made: list[str] = []

    def make() -> str:
        schema = f"test_{secrets.token_hex(6)}"
        with pg_admin.begin() as conn:
            conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
        made.append(schema)
        return pg_url_for(schema)

    yield make
    with pg_admin.begin() as conn:
        for schema in made:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A webhook receiver on loopback (alerts), closed after the test."""
    found = Receiver()
    yield found
    found.close()
