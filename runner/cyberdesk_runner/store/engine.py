"""Engine creation: SQLite in WAL mode with real transactions, or PostgreSQL through psycopg 3."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine


def create_store_engine(url: str) -> Engine:
    parsed = sa.make_url(url)
    if parsed.get_backend_name() == "sqlite":
        return _sqlite_engine(url)
    if parsed.get_backend_name() == "postgresql":
        return sa.create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=10)
    raise ValueError(f"store: unsupported database {parsed.get_backend_name()!r}; use sqlite or postgresql")


def _sqlite_engine(url: str) -> Engine:
    # The stdlib driver opens transactions lazily and never for reads, which breaks SAVEPOINT and lets a
    # deferred read-then-write transaction fail with "database is locked". Take over transaction control:
    # every transaction starts with BEGIN IMMEDIATE (one writer at a time, waiting up to busy_timeout).
    engine = sa.create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})

    @sa.event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @sa.event.listens_for(engine, "begin")
    def _on_begin(connection: sa.Connection) -> None:
        mode = connection.get_execution_options().get("sqlite_begin", "IMMEDIATE")
        connection.exec_driver_sql(f"BEGIN {mode}")

    return engine
