"""The store's schema history: Alembic migrations shipped inside the package and run programmatically.

No alembic.ini is needed: `alembic_config()` points Alembic at this folder and hands `env.py` an open
connection. `upgrade()` is what the daemon (through `Store.upgrade`) and `cyberdesk-runner db upgrade` run.
The same revisions run on SQLite (batch mode, for the ALTERs SQLite lacks) and on PostgreSQL.

Adding a revision (developers): change `store/tables.py`, then write `versions/vNNNN_<what>.py` by hand or
let Alembic draft it against a store at head:

    from cyberdesk_runner.store.migrations import draft_revision
    draft_revision("sqlite:////tmp/draft.sqlite", "what changed")

and check it: tests/runner/store/test_store_migrations.py compares the migrated schema with tables.py; then set
`HEAD` below to the new revision (a test checks it against Alembic's own answer).

Alembic is imported only when the schema needs it: a daemon whose store is already at `HEAD` (every start but
the first after an update) reads the version row itself and never loads Alembic (and the Mako templates it
brings): about 10 MB of the daemon's memory (bench/runner_bench.py, the RSS part).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

if TYPE_CHECKING:
    from alembic.config import Config

__all__ = [
    "HEAD",
    "alembic_config",
    "current_revision",
    "draft_revision",
    "head_revision",
    "target_metadata",
    "upgrade",
]

SCRIPT_LOCATION = Path(__file__).resolve().parent
#: The newest revision in versions/ (Alembic's head), known without loading Alembic.
HEAD = "0012"
#: Where Alembic records a store's revision (its default version table).
_VERSION_TABLE = "alembic_version"
#: The revision that matches the schema `create_all` made before migrations existed.
BASELINE = "0001"
# Serialises upgrades of daemons starting at once; the key spells "cdmigr".
_UPGRADE_LOCK_KEY = 0x6364_6D69_6772
_LEGACY_MARKER_TABLE = "job"


def alembic_config(connection: Connection | None = None) -> Config:
    from alembic.config import Config

    config = Config()
    # configparser interpolation: a '%' in the install path must be doubled.
    config.set_main_option("script_location", str(SCRIPT_LOCATION).replace("%", "%%"))
    config.attributes["connection"] = connection
    return config


def head_revision() -> str:
    return HEAD


def target_metadata() -> sa.MetaData:
    """Every table of the store, as the migrations must make them: tables.py's (with the index declared apart,
    tables.ACTIVE_DESKTOP_INDEX) and those of the modules that own their tables (the outbox's, the files'), which
    a process loads only when it uses them."""
    from sqlmodel import SQLModel

    import cyberdesk_runner.store.consequences
    import cyberdesk_runner.store.files  # noqa: F401
    from cyberdesk_runner.store.tables import declare_active_desktop_index

    declare_active_desktop_index()
    return SQLModel.metadata


def current_revision(engine: Engine) -> str | None:
    """The store's revision; None for an empty database (and for a store made before migrations existed)."""
    with engine.connect() as conn:
        return _revision(conn)


def _revision(conn: Connection) -> str | None:
    """The version row as Alembic writes it (one row: this history has no branches), read without Alembic."""
    if not sa.inspect(conn).has_table(_VERSION_TABLE):
        return None
    rows = conn.execute(sa.text(f"SELECT version_num FROM {_VERSION_TABLE}")).scalars().all()
    if len(rows) > 1:
        raise RuntimeError(f"the store records several schema revisions ({', '.join(sorted(rows))})")
    return rows[0] if rows else None


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the schema to `revision`, in one transaction.

    On PostgreSQL an advisory lock makes daemons that start together upgrade one after the other: the second
    finds the schema at head and does nothing (DDL is transactional there). SQLite's BEGIN IMMEDIATE already
    lets one writer in at a time.
    """
    if revision in ("head", HEAD) and current_revision(engine) == HEAD:
        return  # nothing to do: the usual start, which need not load Alembic
    from alembic import command

    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(sa.select(sa.func.pg_advisory_xact_lock(_UPGRADE_LOCK_KEY)))
        config = alembic_config(conn)
        if _revision(conn) is None and sa.inspect(conn).has_table(_LEGACY_MARKER_TABLE):
            # Made by `create_all` before migrations existed: that schema is the baseline revision.
            command.stamp(config, BASELINE)
        command.upgrade(config, revision)


def draft_revision(url: str, message: str) -> None:
    """Autogenerate a new revision file from the difference between a store at head and tables.py."""
    from alembic import command

    from cyberdesk_runner.store.engine import create_store_engine

    engine = create_store_engine(url)
    try:
        upgrade(engine)
        with engine.begin() as conn:
            command.revision(alembic_config(conn), message=message, autogenerate=True)
    finally:
        engine.dispose()
