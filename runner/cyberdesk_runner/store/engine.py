"""Engine creation: SQLite in WAL mode with real transactions, or PostgreSQL through psycopg 3.

Also what counts as a transient database error: one that a store method may simply run again, because every
store method is one transaction (see `Store`).
"""

from __future__ import annotations

import sqlite3
import time
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

#: SQLSTATEs worth running the transaction again for: serialization failure, deadlock, and the server going
#: away (admin/crash shutdown, cannot connect now). Class 08 (connection exceptions) is matched by prefix.
_TRANSIENT_SQLSTATES = frozenset({"40001", "40P01", "57P01", "57P02", "57P03"})


def create_store_engine(
    url: str, *, one_connection: bool = False, page_cache_kib: int | None = None
) -> Engine:
    """The store's engine; `one_connection` (SQLite): a pool of one connection; `page_cache_kib` (SQLite): each
    connection's page cache, instead of SQLite's default 2,000 KiB."""
    parsed = sa.make_url(url)
    if parsed.get_backend_name() == "sqlite":
        return _sqlite_engine(url, one_connection=one_connection, page_cache_kib=page_cache_kib)
    if parsed.get_backend_name() == "postgresql":
        # application_name shows which connections are the runner's in pg_stat_activity (a name given in the
        # URL, e.g. one per daemon, wins). No pre-ping (a round trip per transaction): a pooled connection the
        # server dropped fails its first statement as invalidated, and Store's retry runs the method again.
        name = {} if "application_name" in parsed.query else {"application_name": "cyberdesk-runner"}
        return sa.create_engine(url, pool_size=10, max_overflow=10, pool_recycle=3600, connect_args=name)
    raise ValueError(f"store: unsupported database {parsed.get_backend_name()!r}; use sqlite or postgresql")


def is_sqlite_file(url: sa.URL) -> bool:
    """Whether `url` is a SQLite database in a file named by its path (not in memory, not a `file:` URI)."""
    database = url.database or ""
    return (
        url.get_backend_name() == "sqlite"
        and database not in ("", ":memory:")
        and not database.startswith("file:")
    )


def libpq_conninfo(url: str) -> str:
    """A SQLAlchemy PostgreSQL URL as a libpq URI for a raw psycopg connection (the LISTEN connection)."""
    parsed = sa.make_url(url)
    return parsed.set(drivername="postgresql").render_as_string(hide_password=False)


def is_database_error(exc: BaseException) -> bool:
    """Whether `exc` comes from the database (or the driver), as opposed to the caller's own code."""
    return isinstance(exc, sa.exc.SQLAlchemyError)


def describe_error(exc: BaseException) -> str:
    """A database error in one line: the driver's own message, without SQLAlchemy's statement and link."""
    cause = getattr(exc, "orig", None) or exc
    first = (str(cause).strip().splitlines() or [""])[0]
    return f"{type(cause).__name__}: {first}"


def is_transient(exc: BaseException) -> bool:
    """Whether a database error is worth one more try of the whole transaction."""
    if not isinstance(exc, sa.exc.DBAPIError):
        return False
    if exc.connection_invalidated:
        return True
    orig = exc.orig
    code = getattr(orig, "sqlstate", None)
    if isinstance(code, str):
        return code in _TRANSIENT_SQLSTATES or code.startswith("08")
    # psycopg reports a failed connect or a connection lost mid-query without a SQLSTATE. (Imported here: a
    # SQLite store never loads psycopg, which costs a daemon about 10 MB.)
    if type(orig).__module__.split(".")[0] != "psycopg":
        return False
    import psycopg

    return isinstance(orig, psycopg.OperationalError)


def _sqlite_engine(url: str, *, one_connection: bool = False, page_cache_kib: int | None = None) -> Engine:
    # The stdlib driver opens transactions lazily and never for reads, which breaks SAVEPOINT and lets a
    # deferred read-then-write transaction fail with "database is locked". Take over transaction control:
    # every transaction starts with BEGIN IMMEDIATE (one writer at a time, waiting up to busy_timeout).
    pool: dict[str, Any] = {"pool_size": 1, "max_overflow": 0} if one_connection else {}
    engine = sa.create_engine(url, connect_args={"timeout": 30, "check_same_thread": False}, **pool)

    @sa.event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA busy_timeout=30000")
        _set_wal(cursor)
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        if page_cache_kib is not None:
            cursor.execute(f"PRAGMA cache_size=-{int(page_cache_kib)}")  # negative: KiB, not pages
        cursor.close()

    @sa.event.listens_for(engine, "begin")
    def _on_begin(connection: sa.Connection) -> None:
        mode = connection.get_execution_options().get("sqlite_begin", "IMMEDIATE")
        connection.exec_driver_sql(f"BEGIN {mode}")

    return engine


def _set_wal(cursor: sqlite3.Cursor) -> None:
    """Switch the file to WAL (persistent; a no-op once done). The switch needs the file to itself, and SQLite
    answers "database is locked" at once instead of waiting when several connections open a new file together."""
    for attempt in range(100):
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or attempt == 99:
                raise
            time.sleep(0.05)
