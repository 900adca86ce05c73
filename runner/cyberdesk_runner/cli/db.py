"""`cyberdesk-runner db upgrade` and `db current`: the store's schema revision (Alembic migrations).

The daemon upgrades the store itself when it starts; `db upgrade` is for doing it ahead of a rollout (for
example before starting several new daemons), and `db current` tells which revision a store is at.
"""

from __future__ import annotations

from pathlib import Path
from typing import NoReturn

import sqlalchemy as sa
import typer
from sqlalchemy.exc import SQLAlchemyError

from cyberdesk_runner.cli.common import ConfigOption, ExitCode, config_or_exit, fail, out
from cyberdesk_runner.config import Config
from cyberdesk_runner.store import Store

__all__ = ["register"]

db_app = typer.Typer(
    name="db", help="The store's schema: upgrade it, or show its revision.", no_args_is_help=True
)


def register(app: typer.Typer) -> None:
    """Add the `db` command group to `app`."""
    app.add_typer(db_app, name="db")


@db_app.command("upgrade")
def upgrade(config: ConfigOption = None) -> None:
    """Create the store, or migrate it to the newest schema revision (safe while daemons run)."""
    settings = config_or_exit(config)
    store = Store(settings.store)
    try:
        before, head = store.schema_revision()
        store.upgrade()
        after, _ = store.schema_revision()
    except SQLAlchemyError as exc:
        _store_failed(settings, exc)
    finally:
        store.close()
    if before == after:
        out.print(
            f"store {settings.store_display} is at revision {after} (head): nothing to do",
            markup=False,
            soft_wrap=True,
        )
    else:
        origin = "an empty database" if before is None else f"revision {before}"
        out.print(
            f"store {settings.store_display} upgraded from {origin} to {after} (head {head})",
            markup=False,
            soft_wrap=True,
        )


@db_app.command("current")
def current(config: ConfigOption = None) -> None:
    """Show the store's schema revision and whether it is the newest this version knows."""
    settings = config_or_exit(config)
    if _missing_sqlite_file(settings.store):
        out.print(
            f"store {settings.store_display}: no store yet (start the daemon or run `db upgrade`)",
            markup=False,
        )
        return
    store = Store(settings.store)
    try:
        revision, head = store.schema_revision()
        legacy = revision is None and store.is_initialised()
    except SQLAlchemyError as exc:
        _store_failed(settings, exc)
    finally:
        store.close()
    if legacy:
        state = "made before migrations (the baseline schema, 0001): `db upgrade` adopts and upgrades it"
    elif revision is None:
        state = "no schema yet (start the daemon or run `db upgrade`)"
    elif revision == head:
        state = f"revision {revision} (head)"
    else:
        state = f"revision {revision}; this version's head is {head}: run `db upgrade`"
    out.print(f"store {settings.store_display}: {state}", markup=False, soft_wrap=True)


def _missing_sqlite_file(url: str) -> bool:
    """A SQLite store whose file does not exist: reading it must not create it."""
    parsed = sa.make_url(url)
    database = parsed.database or ""
    on_disk = database not in ("", ":memory:") and not database.startswith("file:")
    return parsed.get_backend_name() == "sqlite" and on_disk and not Path(database).exists()


def _store_failed(settings: Config, exc: SQLAlchemyError) -> NoReturn:
    fail(f"cannot use the store {settings.store_display}: {type(exc).__name__}: {exc}", ExitCode.CONFIG)
