"""The Store: one database, and an object per aggregate that asks it questions by name. No other module writes SQL.

    store.jobs       jobs.py        definitions, paused flags, last slots
    store.fires      fires.py       insert, start (overlap), skip, fail, request and plan fires; a tick's slots
    store.dispatch   dispatch.py    due items assigned as attempts; claims on their create calls
    store.tracking   tracking.py    create answers, news about runs, verdicts; attempts in flight
    store.control    control.py     cancel, fail and retry work already recorded
    store.counts     counts.py      the daemon's own bookkeeping counts
    store.retention  retention.py   deleting old history
    store.daemons    daemons.py     daemons, heartbeats, named leases
    store.steps      steps.py       step runs of multi-step attempts (one chain each): open ones, closing, views
    store.lineage    lineage.py     `after:` jobs: upstream fires still waiting, their outputs, fires after fires
    store.queries    queries.py     the CLI's reads
    store.results    results.py     what a fire produced, one row per item, streamed
    store.outbox     outbox.py      alerts to send and result files to write (recorded by consequences.py)
    store.watch      watch.py       alerts on what the daemon notices: late fires, desktops gone, daemons lost
    store.page       page.py        the status page's own reads (job headers, fires in flight, busy desktops)
    store.files      files.py       files attached to runs (path, size, sha256); output attachments to download
    store.usage      usage.py       what runs cost (tokens, billed seconds) per fire and job; the budget stop

They share one `core.StoreCore` (engine, transactions, retries, NOTIFY, the event log; its docstring says how to
add an aggregate); the rules of items, which several of them change, live in items.py. Each public method of an
aggregate is one transaction. Methods that change state also append to the event log in the same transaction
and return the `Transition`s they made, so callers can log and count them without reading back. Decisions that
belong to the runner (which desktop, whether to retry) come in as callbacks and run inside the transaction that
records them, so a decision and its record can never diverge, even with several daemons.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from cyberdesk_runner.store.core import StoreCore, retry_transient
from cyberdesk_runner.store.tables import job_t

if TYPE_CHECKING:
    from cyberdesk_runner.store.control import Control
    from cyberdesk_runner.store.counts import Counts
    from cyberdesk_runner.store.daemons import Daemons
    from cyberdesk_runner.store.dispatch import Dispatch
    from cyberdesk_runner.store.files import Files
    from cyberdesk_runner.store.fires import Fires
    from cyberdesk_runner.store.jobs import Jobs
    from cyberdesk_runner.store.lineage import Lineage
    from cyberdesk_runner.store.outbox import Outbox
    from cyberdesk_runner.store.page import Page
    from cyberdesk_runner.store.plans import Plans
    from cyberdesk_runner.store.queries import Queries
    from cyberdesk_runner.store.results import Results
    from cyberdesk_runner.store.retention import Retention
    from cyberdesk_runner.store.steps import Steps
    from cyberdesk_runner.store.tracking import Tracking
    from cyberdesk_runner.store.usage import Usage
    from cyberdesk_runner.store.watch import Watch

__all__ = ["Store"]


class Store:
    # The aggregates: `store.<name>` is the class `<Name>` of the module `<name>.py`, made on first use (its module
    # imported then), so that a command reading two of them (`runs`, `show F`) loads neither the others nor their
    # tables before its first line. They hold nothing but the core: two threads making one at once is harmless.
    jobs: Jobs
    fires: Fires
    plans: Plans
    dispatch: Dispatch
    tracking: Tracking
    control: Control
    counts: Counts
    retention: Retention
    daemons: Daemons
    lineage: Lineage
    steps: Steps
    queries: Queries
    results: Results
    outbox: Outbox
    watch: Watch
    page: Page
    usage: Usage
    files: Files

    def __init__(self, url: str, *, owner: str | None = None) -> None:
        #: Shared by every aggregate. `owner`: who this store claims create calls as (attempt.owner).
        self.core = StoreCore(url, owner=owner)

    if not TYPE_CHECKING:  # to mypy, the annotations above are the attributes (a misspelt one stays an error)

        def __getattr__(self, name: str) -> Any:
            """An aggregate on its first use; then a plain attribute of this store."""
            if name not in _AGGREGATES:
                raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")
            module = importlib.import_module(f"{__package__}.{name}")
            aggregate = getattr(module, name.capitalize())(self.core)
            self.__dict__[name] = aggregate
            return aggregate

    @property
    def url(self) -> str:
        return self.core.url

    @property
    def engine(self) -> Engine:
        return self.core.engine

    @property
    def owner(self) -> str:
        return self.core.owner

    @property
    def is_postgres(self) -> bool:
        return self.core.is_postgres

    # -- lifecycle -------------------------------------------------------------------------------------

    @retry_transient
    def upgrade(self) -> None:
        """Bring the schema to the newest revision (Alembic); safe when several daemons start at once.

        Retried on transient errors: it is one transaction, so a try cut off by a dropped connection left
        nothing behind."""
        from cyberdesk_runner.store import migrations  # Alembic: only where the schema changes (see below)

        migrations.upgrade(self.engine)

    def create_schema(self) -> None:
        """Old name of `upgrade`, kept for callers written before migrations."""
        self.upgrade()

    def schema_revision(self) -> tuple[str | None, str]:
        """(the store's revision or None when it has none yet, the newest revision this code knows)."""
        # Imported here, not with the store: Alembic (and Mako) cost the read-only commands a tenth of a second
        # before their first line, and they never migrate.
        from cyberdesk_runner.store import migrations

        return migrations.current_revision(self.engine), migrations.head_revision()

    def close(self) -> None:
        self.core.dispose()

    @retry_transient
    def ping(self) -> None:
        with self.core.read() as conn:
            conn.execute(sa.text("SELECT 1"))

    @retry_transient
    def is_initialised(self) -> bool:
        """Whether the store's tables exist (read-only commands ask before reading a store no daemon made)."""
        with self.core.read() as conn:
            return bool(sa.inspect(conn).has_table(job_t.name))


_AGGREGATES = frozenset(Store.__annotations__)
