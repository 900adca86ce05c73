"""How the inspecting and controlling commands reach the store, and read the ids and times they are given.

They open the store directly (no daemon needed) and never create it: a store no daemon has made yet is an
error that says so, not an empty database left behind.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa
import typer
from sqlalchemy.exc import SQLAlchemyError

from cyberdesk_runner.cli.common import ExitCode, fail
from cyberdesk_runner.config import Config
from cyberdesk_runner.durations import parse_duration
from cyberdesk_runner.store import Store
from cyberdesk_runner.store.engine import describe_error
from cyberdesk_runner.store.records import JobState
from cyberdesk_runner.store.views import Ref

NO_STORE_HINT = "start the daemon once (`cyberdesk-runner run`)"


def store_file_missing(url: str) -> bool:
    """True for an SQLite store whose file does not exist (opening it would create an empty one)."""
    parsed = sa.make_url(url)
    database = parsed.database or ""
    on_disk = database not in ("", ":memory:") and not database.startswith("file:")
    return parsed.get_backend_name() == "sqlite" and on_disk and not Path(database).exists()


@contextmanager
def open_store(settings: Config) -> Iterator[Store]:
    """The store, open for the length of a command; exit 4 (CONFIG) when it does not exist or cannot be used."""
    where = settings.store_display
    if store_file_missing(settings.store):
        fail(f"no store at {where} yet: {NO_STORE_HINT}", ExitCode.CONFIG)
    store = Store(settings.store)
    try:
        if not store.is_initialised():
            fail(f"the store at {where} has no tables yet: {NO_STORE_HINT}", ExitCode.CONFIG)
        yield store
    except SQLAlchemyError as exc:
        fail(f"cannot use the store {where}: {describe_error(exc)}", ExitCode.CONFIG)
    finally:
        store.close()


def require_job(store: Store, name: str, *, removed_ok: bool = False) -> JobState:
    """The job named `name`; exit 3 (NOT_FOUND) when there is none. Listings of history accept removed jobs."""
    job = store.jobs.get(name)
    if job is None or (job.removed and not removed_ok):
        known = ", ".join(j.name for j in store.jobs.all()) or "none"
        fail(f"no job named {name!r} (known: {known})", ExitCode.NOT_FOUND)
    return job


def require_ref(store: Store, ref: str) -> Ref:
    found = store.queries.resolve(ref)
    if found is None:
        fail(
            f"nothing has the id {ref!r}: give a fire_…, item_… or att_… id, or a Cyberdesk run id",
            ExitCode.NOT_FOUND,
        )
    return found


def parse_since(value: str | None, now: datetime) -> datetime | None:
    """`--since`: a duration back from now (`90m`, `24h`, `7d`) or a time (`2026-06-01`, `2026-06-01T08:00Z`)."""
    if value is None:
        return None
    try:
        return now - parse_duration(value)
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(
            f"{value!r}: give a duration back from now (30m, 24h, 7d) or a time (2026-06-01T08:00Z)",
            param_hint="--since",
        ) from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
