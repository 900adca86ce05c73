"""The store's core, shared by every aggregate module: engine, transactions, retries, NOTIFY, the event log.

`Store` (store.py) opens one `StoreCore` and hands it to each aggregate (`store.jobs`, `store.fires`, ...). An
aggregate module owns the transactions of one thing; the core owns how a transaction is run.

Adding an aggregate module (say `labels.py`):

    class Labels(Aggregate):
        '''What it owns; which rows it locks, in which order.'''

        def enqueue(self, ..., now: datetime) -> list[Transition]:
            with self.core.write() as conn:            # one write transaction (BEGIN IMMEDIATE on SQLite)
                rows = conn.execute(self.core.lock(select_query)).all()  # FOR UPDATE on PostgreSQL
                ...
                transitions = [Transition("...", job_name, ...)]
                self.core.append_events(conn, now, transitions)  # the event log, same transaction
                self.core.work_due(conn)               # NOTIFY the other daemons when this commits
            return transitions

then give `Store` a line `labels: Labels` (made from labels.py on first use, see store.py). What an aggregate gets:
- `self.core.write()` / `self.core.read()`: a write transaction (committed when the block ends, rolled back on
  an exception) or a read-only one. Every public method of an `Aggregate` subclass is one transaction (or a loop
  of idempotent ones) and is run again on transient errors (deadlock, serialization failure, lost connection):
  `Aggregate.__init_subclass__` wraps them, so a new method needs nothing more. Names starting with `_` are not
  wrapped; a public method calling another public one nests the retries, as it always did.
- `self.core.append_events(conn, now, transitions)`: the event log (and the outbox rows the transitions
  cause), in the caller's transaction.
- `self.core.work_due(conn)`: mark the transaction as one that makes work due; one NOTIFY is sent at commit.
- `self.core.lock(query, skip_locked=..., of=...)`: row locks (PostgreSQL only; SQLite has one writer at a time).
- `self.core.insert_or_nothing(table, index)`: INSERT .. ON CONFLICT DO NOTHING, for unique keys (exactly once).
- `self.core.sql`: the prepared statements of the hot paths (`statements.HotStatements`); `self.core.owner`:
  who this store claims work as; `self.core.is_postgres`.
Steps that run inside another aggregate's transaction are module functions taking `(core, conn, ...)` (see
items.py), never public methods, so they are neither retried on their own nor mistaken for transactions.

Several daemons on one PostgreSQL store:
- rows are locked in one order, attempt -> item -> fire, and several rows of one table by id, so transactions
  that touch the same runs (two daemons getting the same webhook) wait for each other instead of deadlocking;
  a new aggregate that locks these rows takes them in that order too (its own tables after them);
- a transaction that makes work due (a fire with items, a retry, a freed desktop, a cancel request) sends
  NOTIFY on `notify.CHANNEL` when it commits, which wakes idle daemons (`notify.listen_for_work`);
- public methods are run again on transient errors: each is one transaction, so a failed try left nothing.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import random
import secrets
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from datetime import datetime
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from cyberdesk_runner.store.engine import create_store_engine, is_sqlite_file, is_transient
from cyberdesk_runner.store.notify import CHANNEL

if TYPE_CHECKING:
    # Loaded on first use (below): a command that only reads (`fires`, `show F`) builds no hot statement and
    # loads neither the outbox's tables nor the other database's dialect before its first line.
    from cyberdesk_runner.store.consequences import OutboxRules
    from cyberdesk_runner.store.records import Transition
    from cyberdesk_runner.store.statements import HotStatements

__all__ = ["Aggregate", "StoreCore", "TransactionTimer", "chunks", "new_id", "retry_transient"]

#: conn.info flag: this transaction made work due; NOTIFY the other daemons when it commits.
_NOTIFY_FLAG = "cyberdesk_runner_notify"
#: Tries of a public method when the database reports a transient error (see `engine.is_transient`).
_TRIES = 5
#: Most ids in one IN list (PostgreSQL takes at most 65,535 parameters per statement).
_CHUNK = 10_000

_P = ParamSpec("_P")
_R = TypeVar("_R")

#: This thread's public store method under way (`retry_transient`): the name its transactions are timed under.
_caller = threading.local()
#: (aggregate method, seconds): told of every transaction's duration, from BEGIN to the end of its commit.
TransactionTimer = Callable[[str, float], None]


def new_id(prefix: str) -> str:
    """A new row id: `prefix_`, the Unix time in seconds (8 hex digits), then 64 random bits (16 hex digits).

    Time first so that rows made together get neighbouring keys: a chunk of 4,000 items, or the attempts of a
    batch of news, goes into a few pages at the end of each index on ids (the table's key, the events' item and
    attempt ids) rather than one page per row all over it. With random ids a news commit of 24 runs wrote 158
    WAL pages on SQLite, 91 with ids ordered by time, and planning 300,000 items took about 20% less CPU; the
    cost is 8 more characters per id. Uniqueness rests on the random part, as before (now within one second).
    Ids made before this are random throughout; both kinds live side by side (ids are opaque text)."""
    return f"{prefix}_{int(time.time()):08x}{secrets.token_hex(8)}"


def chunks(ids: Sequence[str]) -> Iterator[Sequence[str]]:
    """`ids` in slices small enough for one IN list."""
    for start in range(0, len(ids), _CHUNK):
        yield ids[start : start + _CHUNK]


def retry_transient(method: Callable[_P, _R]) -> Callable[_P, _R]:
    """Run `method` (one transaction) again when the database reports a transient error."""

    @functools.wraps(method)
    def wrapper(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        outer = getattr(_caller, "method", None)
        _caller.method = method.__qualname__  # what the transactions below are timed as
        try:
            for attempt in range(_TRIES - 1):
                try:
                    return method(*args, **kwargs)
                except sa.exc.DBAPIError as exc:
                    if not is_transient(exc):
                        raise
                    # Jittered backoff, so two daemons that deadlocked do not collide again at once.
                    time.sleep(min(0.02 * 2**attempt, 0.5) * random.uniform(0.5, 1.5))
            return method(*args, **kwargs)
        finally:
            _caller.method = outer

    return wrapper


#: The page cache of each of a SQLite file's read connections (the writer's keeps SQLite's default, 2,000 KiB).
_READ_CACHE_KIB = 256


class StoreCore:
    """One database: its engine, this process's writer queue, and the helpers every transaction uses."""

    def __init__(self, url: str, *, owner: str | None = None) -> None:
        self.url = url
        sqlite_file = is_sqlite_file(sa.make_url(url))
        #: Where reads run (and, but on a SQLite file, writes). A SQLite file's read connections keep small page
        #: caches: every write of the writer below empties the cache of each of them at its next transaction
        #: (WAL), so their default 2 MB each bought few hits and held about 2 MB of the daemon's peak with
        #: 10,000 runs in flight.
        self.engine: Engine = create_store_engine(
            url, page_cache_kib=_READ_CACHE_KIB if sqlite_file else None
        )
        self.is_postgres = self.engine.dialect.name == "postgresql"
        self._reader = self.engine.execution_options(sqlite_begin="DEFERRED")
        #: Where write transactions run. A SQLite file: on one connection of their own (this process has one writer
        #: at a time), whose page cache (SQLite's default size) stays valid from one write to the next. In WAL mode
        #: a connection that another one wrote past since its last transaction empties its cache and reads every
        #: page again: with the writes spread over the pool, that was about a hundred reads of a page per news
        #: transaction.
        self._write_engine = create_store_engine(url, one_connection=True) if sqlite_file else self.engine
        #: Who this store claims create calls as (attempt.owner); the daemon may pass its id. One per process.
        self.owner = owner or new_id("store")
        #: SQLite has one writer at a time: this process's writers queue here instead of in SQLite's busy
        #: handler, which polls with sleeps of up to 100 ms (other processes, like the CLI, still meet it).
        self._writer: AbstractContextManager[Any] = (
            contextlib.nullcontext() if self.is_postgres else threading.Lock()
        )
        #: Told how long each transaction took (the daemon's /metrics); None: not timed.
        self.transaction_timer: TransactionTimer | None = None

    @functools.cached_property
    def sql(self) -> HotStatements:
        """The statements of the hot paths, built on first use (once per store)."""
        from cyberdesk_runner.store.statements import hot_statements

        return hot_statements(postgres=self.is_postgres)

    @functools.cached_property
    def outbox_rules(self) -> OutboxRules:
        """Which alerts and result files state changes record (`store.outbox.rules`); the daemon sets them."""
        from cyberdesk_runner.store.consequences import OutboxRules

        return OutboxRules()

    @contextmanager
    def write(self) -> Iterator[Connection]:
        """A write transaction: committed when the block ends (then NOTIFY, if `work_due` was called)."""
        with self._writer, self._timed(), self._write_engine.begin() as conn:
            conn.info.pop(_NOTIFY_FLAG, None)  # a flag left by a transaction that failed
            yield conn
            if conn.info.pop(_NOTIFY_FLAG, False) and self.is_postgres:
                # Delivered at commit, once per transaction however many changes asked for it.
                conn.execute(sa.select(sa.func.pg_notify(CHANNEL, "")))

    def dispose(self) -> None:
        """Close every pooled connection."""
        self.engine.dispose()
        if self._write_engine is not self.engine:
            self._write_engine.dispose()

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """A read-only transaction (on SQLite a deferred one, which takes no write lock)."""
        with self._timed(), self._reader.connect() as conn, conn.begin():
            yield conn

    @contextmanager
    def _timed(self) -> Iterator[None]:
        """Tell `transaction_timer` how long the block took: BEGIN (with its wait for the database's locks) to
        the end of the commit; not a write's wait for this process's writer lock, which is other transactions'."""
        timer = self.transaction_timer
        if timer is None:
            yield
            return
        started = time.perf_counter()
        try:
            yield
        finally:
            timer(getattr(_caller, "method", None) or "other", time.perf_counter() - started)

    @staticmethod
    def work_due(conn: Connection) -> None:
        """Mark the transaction as one that makes work due (dispatch or reaper) for every daemon."""
        conn.info[_NOTIFY_FLAG] = True

    def lock(
        self, query: sa.Select[Any], *, skip_locked: bool = False, of: sa.Table | None = None
    ) -> sa.Select[Any]:
        """`query` with FOR UPDATE on PostgreSQL."""
        # SQLite has one writer at a time (BEGIN IMMEDIATE), so row locks only matter on PostgreSQL.
        if not self.is_postgres:
            return query
        return query.with_for_update(skip_locked=skip_locked, of=of)

    def insert_or_nothing(self, table: sa.Table, index: list[str]) -> Any:
        """INSERT .. ON CONFLICT (`index`) DO NOTHING; add `.returning(...)` to learn whether the row went in."""
        # The dialect's module is imported here, not with the store: a SQLite store never loads PostgreSQL's.
        if self.is_postgres:
            from sqlalchemy.dialects import postgresql

            return postgresql.insert(table).on_conflict_do_nothing(index_elements=index)
        from sqlalchemy.dialects import sqlite

        return sqlite.insert(table).on_conflict_do_nothing(index_elements=index)

    def append_events(self, conn: Connection, now: datetime, transitions: Sequence[Transition]) -> None:
        """Append `transitions` to the event log, and the alerts and result files they cause to the outbox
        (consequences.py), in the caller's transaction: none is lost, none is invented."""
        if not transitions:
            return
        self.sql.insert_events.many(
            conn,
            [
                {
                    "at": now,
                    "kind": t.kind,
                    "job_name": t.job_name or None,
                    "fire_id": t.fire_id,
                    "item_id": t.item_id,
                    "attempt_id": t.attempt_id,
                    "run_id": t.run_id,
                    "data": _jsonable(t.data) if t.data else None,
                }
                for t in transitions
            ],
        )
        from cyberdesk_runner.store.consequences import record_consequences

        record_consequences(conn, now, transitions, self.outbox_rules, self.insert_or_nothing)


class Aggregate:
    """Base of the aggregate modules: holds the core; every public method is retried on transient errors."""

    def __init__(self, core: StoreCore) -> None:
        self.core = core

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for name, member in list(vars(cls).items()):
            if not name.startswith("_") and inspect.isfunction(member):
                setattr(cls, name, retry_transient(member))


def _jsonable(data: Mapping[str, Any]) -> dict[str, Any]:
    return {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in data.items()}
