"""The store's schema history: Alembic migrations shipped inside the package and run programmatically.

No alembic.ini is needed: `alembic_config()` points Alembic at this folder and hands `env.py` an open
connection. `upgrade()` is what the daemon (through `Store.upgrade`) and `cyberdesk-runner db upgrade` run.
The same revisions run on SQLite (batch mode, for the ALTERs SQLite lacks) and on PostgreSQL.

Adding a revision (developers): change `store/tables.py`, then write `versions/vNNNN_<what>.py` by hand or
let Alembic draft it against a store at head:

    from cyberdesk_runner.store.migrations import draft_revision
    draft_revision("sqlite:////tmp/draft.sqlite", "what changed")

and check it: tests/runner/store/test_migrations.py compares the migrated schema with tables.py.
"""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection, Engine

__all__ = ["alembic_config", "current_revision", "draft_revision", "head_revision", "upgrade"]

SCRIPT_LOCATION = Path(__file__).resolve().parent
#: The revision that matches the schema `create_all` made before migrations existed.
BASELINE = "0001"
# Serialises upgrades of daemons starting at once; the key spells "cdmigr".
_UPGRADE_LOCK_KEY = 0x6364_6D69_6772
_LEGACY_MARKER_TABLE = "job"


def alembic_config(connection: Connection | None = None) -> Config:
    config = Config()
    # configparser interpolation: a '%' in the install path must be doubled.
    config.set_main_option("script_location", str(SCRIPT_LOCATION).replace("%", "%%"))
    config.attributes["connection"] = connection
    return config


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None
    return head


def current_revision(engine: Engine) -> str | None:
    """The store's revision; None for an empty database (and for a store made before migrations existed)."""
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the schema to `revision`, in one transaction.

    On PostgreSQL an advisory lock makes daemons that start together upgrade one after the other: the second
    finds the schema at head and does nothing (DDL is transactional there). SQLite's BEGIN IMMEDIATE already
    lets one writer in at a time.
    """
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(sa.select(sa.func.pg_advisory_xact_lock(_UPGRADE_LOCK_KEY)))
        config = alembic_config(conn)
        context = MigrationContext.configure(conn)
        if context.get_current_revision() is None and sa.inspect(conn).has_table(_LEGACY_MARKER_TABLE):
            # Made by `create_all` before migrations existed: that schema is the baseline revision.
            command.stamp(config, BASELINE)
        command.upgrade(config, revision)


def draft_revision(url: str, message: str) -> None:
    """Autogenerate a new revision file from the difference between a store at head and tables.py."""
    from cyberdesk_runner.store.engine import create_store_engine

    engine = create_store_engine(url)
    try:
        upgrade(engine)
        with engine.begin() as conn:
            command.revision(alembic_config(conn), message=message, autogenerate=True)
    finally:
        engine.dispose()
