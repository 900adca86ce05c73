"""Transient database errors (deadlock, serialization failure, a dropped connection) make a store method run
again; other errors do not."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator

import psycopg
import pytest
import sqlalchemy as sa
from store_helpers import LEASE, T0, Chooser, add_jobs, manual_fire

from cyberdesk_runner.store import Store
from cyberdesk_runner.store.core import Aggregate
from cyberdesk_runner.store.engine import is_transient
from cyberdesk_runner.store.records import Assignment, DispatchView


def _error(orig: BaseException, *, invalidated: bool = False) -> sa.exc.DBAPIError:
    return sa.exc.OperationalError("SELECT 1", {}, orig, connection_invalidated=invalidated)


@pytest.mark.parametrize(
    ("error", "transient"),
    [
        (_error(psycopg.errors.DeadlockDetected("deadlock detected")), True),
        (_error(psycopg.errors.SerializationFailure("could not serialize")), True),
        (_error(psycopg.errors.AdminShutdown("terminating connection")), True),
        (_error(psycopg.OperationalError("connection failed: Connection refused")), True),
        (_error(Exception("closed"), invalidated=True), True),
        (sa.exc.IntegrityError("INSERT", {}, psycopg.errors.UniqueViolation("duplicate key")), False),
        (_error(psycopg.errors.UndefinedTable("no such table")), False),
        (ValueError("not a database error"), False),
    ],
)
def test_what_counts_as_transient(error: BaseException, transient: bool) -> None:
    assert is_transient(error) is transient


class _Flaky(Aggregate):  # every public method of an aggregate is retried
    def __init__(self, failures: list[BaseException]) -> None:
        self.failures = failures
        self.calls = 0

    def work(self) -> str:
        self.calls += 1
        if self.failures:
            raise self.failures.pop(0)
        return "done"


def test_transient_errors_are_retried_until_success() -> None:
    flaky = _Flaky(
        [_error(psycopg.errors.DeadlockDetected("x")), _error(Exception("gone"), invalidated=True)]
    )
    assert flaky.work() == "done" and flaky.calls == 3


def test_other_errors_and_endless_trouble_are_raised() -> None:
    unique = _Flaky([sa.exc.IntegrityError("INSERT", {}, psycopg.errors.UniqueViolation("dup"))])
    with pytest.raises(sa.exc.IntegrityError):
        unique.work()
    assert unique.calls == 1
    stuck = _Flaky([_error(psycopg.errors.DeadlockDetected("x")) for _ in range(10)])
    with pytest.raises(sa.exc.OperationalError):
        stuck.work()
    assert stuck.calls == 5


@pytest.fixture
def named_pg_store(pg_schema: Callable[[], str]) -> Iterator[tuple[Store, str]]:
    name = f"cdr-retry-{secrets.token_hex(4)}"
    store = Store(f"{pg_schema()}&application_name={name}")
    store.upgrade()
    yield store, name
    store.close()


@pytest.mark.postgres
def test_a_connection_dropped_mid_dispatch_is_retried_and_recorded_once(
    named_pg_store: tuple[Store, str], pg_admin: sa.Engine
) -> None:
    store, name = named_pg_store
    add_jobs(store, "a")
    manual_fire(store, "a", 3)
    choose = Chooser()
    calls = 0

    def choose_then_lose_the_connection(view: DispatchView) -> list[Assignment]:
        nonlocal calls
        calls += 1
        if calls == 1:  # the server goes away while the transaction is open
            with pg_admin.begin() as conn:
                conn.execute(
                    sa.text(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                        "WHERE application_name = :name AND state = 'idle in transaction'"
                    ),
                    {"name": name},
                )
        return choose(view)

    refs = store.dispatch.assign(T0, choose_then_lose_the_connection, lease=LEASE)
    assert calls == 2 and len(refs) == 3
    assert store.counts.work().creating_attempts == 3  # the first try left nothing behind


@pytest.mark.postgres
def test_a_pooled_connection_the_server_dropped_is_replaced(
    named_pg_store: tuple[Store, str], pg_admin: sa.Engine
) -> None:
    store, name = named_pg_store
    add_jobs(store, "a")  # leaves an idle connection in the pool
    with pg_admin.begin() as conn:
        killed = conn.execute(
            sa.text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = :name"),
            {"name": name},
        ).all()
    assert killed and all(ok for (ok,) in killed)
    assert [j.name for j in store.jobs.all()] == ["a"]  # no pre-ping: the retry opens a fresh connection
    manual_fire(store, "a", 1)
    assert store.counts.work().pending_items == 1
