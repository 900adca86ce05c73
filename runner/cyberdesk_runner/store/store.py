"""The Store: every question the runner asks of its database, by name. No other module writes SQL.

Each public method is one transaction. Methods that change state also append to the event log in the same
transaction and return the `Transition`s they made, so callers can log and count them without reading back.
Decisions that belong to the runner (which desktop, whether to retry) come in as callbacks and run inside the
transaction that records them, so a decision and its record can never diverge, even with several daemons.

Several daemons on one PostgreSQL store:
- rows are locked in one order, attempt -> item -> fire, and several rows of one table by id, so transactions
  that touch the same runs (two daemons getting the same webhook) wait for each other instead of deadlocking;
- a transaction that makes work due (a fire with items, a retry, a freed desktop, a cancel request) sends
  NOTIFY on `notify.CHANNEL` when it commits, which wakes idle daemons (`notify.listen_for_work`);
- public methods are run again on transient errors (deadlock, serialization failure, lost connection): each
  is one transaction (or a loop of idempotent ones), so a failed try left nothing behind.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import random
import secrets
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from datetime import datetime, timedelta
from typing import Any, ParamSpec, TypeVar

import attrs
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine

from cyberdesk_runner.store import migrations
from cyberdesk_runner.store.engine import create_store_engine, is_transient
from cyberdesk_runner.store.notify import CHANNEL
from cyberdesk_runner.store.queries import StoreQueries
from cyberdesk_runner.store.records import (
    FINAL_ATTEMPT_STATUSES,
    FINAL_FIRE_STATUSES,
    FINAL_ITEM_STATUSES,
    Assignment,
    AttemptRef,
    AttemptVerdict,
    DispatchView,
    DueItem,
    Fail,
    FinishedAttempt,
    FireRequest,
    FireSummary,
    InFlightAttempt,
    ItemOutcome,
    JobDefinition,
    JobState,
    JobSummary,
    NewFire,
    NewItem,
    OverlapRule,
    RecordedNews,
    Retry,
    RunObservation,
    StartedFire,
    Succeed,
    Transition,
    WorkCounts,
    timed_out_error,
)
from cyberdesk_runner.store.statements import hot_statements
from cyberdesk_runner.store.tables import (
    ACTIVE_ATTEMPT_STATUSES,
    OPEN_ITEM_STATUSES,
    attempt_t,
    daemon_t,
    event_t,
    fire_t,
    item_t,
    job_t,
    lease_t,
)

OutcomePolicy = Callable[[FinishedAttempt], ItemOutcome]
Chooser = Callable[[DispatchView], list[Assignment]]
#: How many of a job's due items are worth reading now: (job name, busy desktops, the job's active attempts) -> n.
DispatchWindow = Callable[[str, frozenset[str], int], int]

# A fixed key for PostgreSQL's advisory lock that serialises dispatch decisions across daemons.
_DISPATCH_LOCK_KEY = 0x6364_7275_6E6E  # "cdrunn"
#: conn.info flag: this transaction made work due; NOTIFY the other daemons when it commits.
_NOTIFY_FLAG = "cyberdesk_runner_notify"
#: Tries of a public method when the database reports a transient error (see `engine.is_transient`).
_TRIES = 5
#: Public methods not wrapped in the retry: no transaction of their own. (`upgrade` is retried: it is one
#: transaction, so a try cut off by a dropped connection left nothing behind.)
_NOT_RETRIED = frozenset({"close", "create_schema", "schema_revision"})

#: What dispatch reads of a due item.
_DUE_COLUMNS = (
    item_t.c.id,
    item_t.c.fire_id,
    item_t.c.job_name,
    item_t.c.seq,
    item_t.c.inputs,
    item_t.c.machine_id,
    item_t.c.attempts,
    item_t.c.priority,
    item_t.c.next_attempt_at,
)

_P = ParamSpec("_P")
_R = TypeVar("_R")
_T = TypeVar("_T")


def new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(8)}"


def _retry_transient(method: Callable[_P, _R]) -> Callable[_P, _R]:
    @functools.wraps(method)
    def wrapper(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        for attempt in range(_TRIES - 1):
            try:
                return method(*args, **kwargs)
            except sa.exc.DBAPIError as exc:
                if not is_transient(exc):
                    raise
                # Jittered backoff, so two daemons that deadlocked do not collide again at once.
                time.sleep(min(0.02 * 2**attempt, 0.5) * random.uniform(0.5, 1.5))
        return method(*args, **kwargs)

    return wrapper


def _with_retries(cls: type[_T]) -> type[_T]:
    """Wrap every public method of `cls` and its mixins (also ones added later) in `_retry_transient`."""
    for base in reversed(cls.__mro__[:-1]):
        for name, member in vars(base).items():
            if not name.startswith("_") and name not in _NOT_RETRIED and inspect.isfunction(member):
                setattr(cls, name, _retry_transient(member))
    return cls


@_with_retries
class Store(StoreQueries):
    def __init__(self, url: str, *, owner: str | None = None) -> None:
        self.url = url
        self.engine: Engine = create_store_engine(url)
        self.is_postgres = self.engine.dialect.name == "postgresql"
        self._reader = self.engine.execution_options(sqlite_begin="DEFERRED")
        #: Who this store claims create calls as (attempt.owner); the daemon may pass its id. One per process.
        self.owner = owner or new_id("store")
        #: SQLite has one writer at a time: this process's writers queue here instead of in SQLite's busy
        #: handler, which polls with sleeps of up to 100 ms (other processes, like the CLI, still meet it).
        self._writer: AbstractContextManager[Any] = (
            contextlib.nullcontext() if self.is_postgres else threading.Lock()
        )
        self._sql = hot_statements(row_locks=self.is_postgres)

    # -- lifecycle -------------------------------------------------------------------------------------

    def upgrade(self) -> None:
        """Bring the schema to the newest revision (Alembic); safe when several daemons start at once."""
        migrations.upgrade(self.engine)

    def create_schema(self) -> None:
        """Old name of `upgrade`, kept for callers written before migrations."""
        self.upgrade()

    def schema_revision(self) -> tuple[str | None, str]:
        """(the store's revision or None when it has none yet, the newest revision this code knows)."""
        return migrations.current_revision(self.engine), migrations.head_revision()

    def close(self) -> None:
        self.engine.dispose()

    def ping(self) -> None:
        with self._read() as conn:
            conn.execute(sa.text("SELECT 1"))

    def is_initialised(self) -> bool:
        """Whether the store's tables exist (read-only commands ask before reading a store no daemon made)."""
        with self._read() as conn:
            return bool(sa.inspect(conn).has_table(job_t.name))

    @contextmanager
    def _write(self) -> Iterator[Connection]:
        with self._writer, self.engine.begin() as conn:
            conn.info.pop(_NOTIFY_FLAG, None)  # a flag left by a transaction that failed
            yield conn
            if conn.info.pop(_NOTIFY_FLAG, False) and self.is_postgres:
                # Delivered at commit, once per transaction however many changes asked for it.
                conn.execute(sa.select(sa.func.pg_notify(CHANNEL, "")))

    @staticmethod
    def _work_due(conn: Connection) -> None:
        """Mark the transaction as one that makes work due (dispatch or reaper) for every daemon."""
        conn.info[_NOTIFY_FLAG] = True

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        with self._reader.connect() as conn, conn.begin():
            yield conn

    def _insert_or_nothing(self, table: sa.Table, index: list[str]) -> Any:
        dialect_insert = postgresql.insert if self.is_postgres else sqlite.insert
        return dialect_insert(table).on_conflict_do_nothing(index_elements=index)

    def _insert_fire_row(self, conn: Connection, values: Mapping[str, Any]) -> bool:
        """Insert a fire unless its dedup key (the slot) is taken; True when this call inserted it.

        RETURNING says whether the row went in: `rowcount` of INSERT .. ON CONFLICT DO NOTHING is -1 through
        psycopg, which read as "inserted" gave a second daemon's fire of the same slot its own items.
        """
        inserted = conn.execute(
            self._insert_or_nothing(fire_t, ["dedup_key"]).values(**values).returning(fire_t.c.id)
        ).first()
        return inserted is not None

    # -- jobs ------------------------------------------------------------------------------------------

    def sync_jobs(self, jobs: Sequence[JobDefinition], now: datetime) -> list[Transition]:
        """Record the jobs as loaded from their files; jobs no longer present are marked removed.

        Paused flags and schedule bookkeeping are kept: they belong to the store, not to the files.
        """
        changes: list[Transition] = []
        with self._write() as conn:
            # Daemons starting together sync the same jobs: lock the rows in name order (the order of
            # `set_last_slots` too) and insert-or-nothing, so neither deadlocks nor a duplicate key fails one.
            existing = {r.name: r for r in conn.execute(self._lock(sa.select(job_t).order_by(job_t.c.name)))}
            for job in sorted(jobs, key=lambda j: j.name):
                row = existing.get(job.name)
                values = {
                    "definition_hash": job.definition_hash,
                    "definition": dict(job.definition),
                    "source_path": job.source_path,
                    "loaded_at": now,
                    "removed_at": None,
                }
                if row is None:
                    added = conn.execute(
                        self._insert_or_nothing(job_t, ["name"])
                        .values(name=job.name, paused=False, **values)
                        .returning(job_t.c.name)
                    ).first()
                    if added is not None:
                        changes.append(Transition("job_added", job.name, data={"path": job.source_path}))
                elif row.removed_at is not None:
                    # A job that comes back starts afresh: the slots of its absence are not caught up.
                    conn.execute(
                        sa.update(job_t).where(job_t.c.name == job.name).values(**values, last_slot_at=None)
                    )
                    changes.append(Transition("job_added", job.name, data={"path": job.source_path}))
                elif row.definition_hash != job.definition_hash:
                    conn.execute(sa.update(job_t).where(job_t.c.name == job.name).values(**values))
                    changes.append(Transition("job_changed", job.name, data={"path": job.source_path}))
            present = {j.name for j in jobs}
            for name, row in existing.items():
                if name not in present and row.removed_at is None:
                    conn.execute(sa.update(job_t).where(job_t.c.name == name).values(removed_at=now))
                    changes.append(Transition("job_removed", name))
            self._append_events(conn, now, changes)
        return changes

    def set_job_workflow(self, name: str, workflow_id: str) -> None:
        with self._write() as conn:
            conn.execute(sa.update(job_t).where(job_t.c.name == name).values(workflow_id=workflow_id))

    def set_paused(self, name: str, paused: bool, now: datetime) -> bool:
        """Pause or resume a job. Returns False when no such job is known."""
        with self._write() as conn:
            result = conn.execute(
                sa.update(job_t)
                .where(job_t.c.name == name)
                .values(paused=paused, paused_at=now if paused else None)
            )
            if result.rowcount == 0:
                return False
            self._append_events(conn, now, [Transition("job_paused" if paused else "job_resumed", name)])
            return True

    def jobs(self, *, include_removed: bool = False) -> list[JobState]:
        query = sa.select(job_t).order_by(job_t.c.name)
        if not include_removed:
            query = query.where(job_t.c.removed_at.is_(None))
        with self._read() as conn:
            return [_job_state(r) for r in conn.execute(query)]

    def job(self, name: str) -> JobState | None:
        with self._read() as conn:
            row = conn.execute(sa.select(job_t).where(job_t.c.name == name)).first()
        return _job_state(row) if row else None

    def set_last_slot(self, name: str, slot: datetime) -> None:
        with self._write() as conn:
            conn.execute(
                sa.update(job_t)
                .where(job_t.c.name == name)
                .where(sa.or_(job_t.c.last_slot_at.is_(None), job_t.c.last_slot_at < slot))
                .values(last_slot_at=slot)
            )

    # -- fires -----------------------------------------------------------------------------------------

    def insert_fire(self, fire: NewFire, items: Sequence[NewItem], now: datetime) -> str | None:
        """Record a fire and its items in one transaction; None when the fire's slot is already recorded.

        Scheduled and catch-up fires are unique on (job, scheduled time): a second insert of the same slot, by
        this daemon after a restart or by another daemon, is a no-op and creates no items.
        """
        fire_id = new_id("fire")
        with self._write() as conn:
            transitions = self._record_running_fire(conn, fire_id, fire, items, now)
            if transitions is None:
                return None
            self._append_events(conn, now, transitions)
        return fire_id

    def start_fire(
        self, fire: NewFire, items: Sequence[NewItem], now: datetime, overlap: OverlapRule
    ) -> StartedFire | None:
        """Record a scheduled fire and its items, judging overlap in the same transaction; None when the slot is
        already recorded.

        Under `forbid` or `replace` the job's row is locked first, so daemons recording slots of one job take
        turns and each sees the fires the others started: two slots due at once never both start under
        `forbid`, and a `replace` fire cancels every fire before it, not only those committed when it looked.
        """
        fire_id = new_id("fire")
        with self._write() as conn:
            in_flight: list[str] = []
            if overlap.mode != "allow":
                conn.execute(self._lock(sa.select(job_t.c.name).where(job_t.c.name == fire.job_name))).all()
                in_flight = self._fires_in_flight(conn, fire.job_name)
            skipped = bool(in_flight) and overlap.mode == "forbid"
            if skipped:
                transitions = self._record_skipped_fire(
                    conn, fire_id, fire, overlap.skip_reason(in_flight), now
                )
            else:
                transitions = self._record_running_fire(conn, fire_id, fire, items, now)
            if transitions is None:
                return None
            if in_flight and not skipped:  # replace
                chosen = [item_t.c.job_name == fire.job_name, item_t.c.fire_id.in_(in_flight)]
                transitions += self._cancel_items(
                    conn, chosen, overlap.replace_reason, now, only_pending=False
                )
            self._append_events(conn, now, transitions)
        return StartedFire(fire_id, skipped, transitions)

    def record_skipped_fire(self, fire: NewFire, reason: str, now: datetime) -> str | None:
        """Record that a slot was not run, and why. None when the slot was already recorded."""
        fire_id = new_id("fire")
        with self._write() as conn:
            transitions = self._record_skipped_fire(conn, fire_id, fire, reason, now)
            if transitions is None:
                return None
            self._append_events(conn, now, transitions)
        return fire_id

    def _record_running_fire(
        self, conn: Connection, fire_id: str, fire: NewFire, items: Sequence[NewItem], now: datetime
    ) -> list[Transition] | None:
        """Insert a fire with its items (finished at once without any); None when its slot is taken. The caller
        appends the events."""
        values = self._fire_values(fire_id, fire, now, status="running", items_total=len(items))
        if not self._insert_fire_row(conn, values):
            return None
        self._insert_items(conn, fire_id, fire, items, now)
        transitions = [
            Transition("fire_started", fire.job_name, fire_id=fire_id, data=_fire_data(fire, len(items)))
        ]
        if not items:
            transitions += self._settle_fires(conn, [fire_id], now)
        return transitions

    def _record_skipped_fire(
        self, conn: Connection, fire_id: str, fire: NewFire, reason: str, now: datetime
    ) -> list[Transition] | None:
        """Insert a skipped fire; None when its slot is taken. The caller appends the events."""
        values = self._fire_values(fire_id, fire, now, status="skipped", items_total=0)
        values.update(skip_reason=reason, finished_at=now)
        if not self._insert_fire_row(conn, values):
            return None
        data = _fire_data(fire, 0) | {"reason": reason}
        return [Transition("fire_skipped", fire.job_name, fire_id=fire_id, data=data)]

    def request_fire(self, fire: NewFire, now: datetime) -> str:
        """Record a fire whose items a daemon will plan (a manual trigger from the CLI)."""
        fire_id = new_id("fire")
        with self._write() as conn:
            conn.execute(
                sa.insert(fire_t).values(
                    **self._fire_values(fire_id, fire, now, status="requested", items_total=0)
                )
            )
            self._append_events(
                conn,
                now,
                [Transition("fire_requested", fire.job_name, fire_id=fire_id, data=_fire_data(fire, 0))],
            )
            self._work_due(conn)
        return fire_id

    def requested_fires(self, limit: int = 20) -> list[FireRequest]:
        with self._read() as conn:
            rows = conn.execute(
                sa.select(fire_t)
                .where(fire_t.c.status == "requested")
                .order_by(fire_t.c.created_at)
                .limit(limit)
            )
            return [FireRequest(r.id, r.job_name, r.trigger, r.input_overrides) for r in rows]

    def plan_fire(
        self, fire_id: str, items: Sequence[NewItem], now: datetime, *, priority: bool = False
    ) -> bool:
        """Give a requested fire its items. False when another daemon planned (or cancelled) it first."""
        with self._write() as conn:
            row = conn.execute(self._lock(sa.select(fire_t).where(fire_t.c.id == fire_id))).first()
            if row is None or row.status != "requested":
                return False
            conn.execute(
                sa.update(fire_t)
                .where(fire_t.c.id == fire_id)
                .values(status="running", planned_at=now, items_total=len(items))
            )
            fire = NewFire(row.job_name, row.trigger, row.scheduled_for, priority=priority)
            self._insert_items(conn, fire_id, fire, items, now)
            transitions = [
                Transition("fire_started", row.job_name, fire_id=fire_id, data={"items": len(items)})
            ]
            if not items:
                transitions += self._settle_fires(conn, [fire_id], now)
            self._append_events(conn, now, transitions)
            return True

    def fail_fire(self, fire_id: str, error: str, now: datetime) -> None:
        """A fire that could not be planned (unknown workflow, no desktop matches, unreadable items file).

        Only a fire still `requested` fails: another daemon may have planned (or a user cancelled) it meanwhile.
        """
        with self._write() as conn:
            row = conn.execute(
                sa.update(fire_t)
                .where(fire_t.c.id == fire_id)
                .where(fire_t.c.status == "requested")
                .values(status="failed", error=error, finished_at=now)
                .returning(fire_t.c.job_name)
            ).first()
            if row is None:
                return
            self._append_events(
                conn, now, [Transition("fire_failed", row.job_name, fire_id=fire_id, data={"error": error})]
            )

    def job_has_work_in_flight(self, job_name: str) -> list[str]:
        """Ids of the job's fires that still have items pending or running."""
        with self._read() as conn:
            return self._fires_in_flight(conn, job_name)

    @staticmethod
    def _fires_in_flight(conn: Connection, job_name: str) -> list[str]:
        rows = conn.execute(
            sa.select(fire_t.c.id)
            .where(fire_t.c.job_name == job_name)
            .where(fire_t.c.status.in_(("requested", "running")))
            .order_by(fire_t.c.created_at, fire_t.c.id)
        )
        return [r.id for r in rows]

    def insert_failed_fire(self, fire: NewFire, error: str, now: datetime) -> str | None:
        """Record a scheduled slot that could not be planned (unresolved workflow, no desktop, unreadable items
        file) as a failed fire. None when the slot was already recorded."""
        fire_id = new_id("fire")
        with self._write() as conn:
            values = self._fire_values(fire_id, fire, now, status="failed", items_total=0)
            values.update(error=error, finished_at=now)
            if not self._insert_fire_row(conn, values):
                return None
            data = _fire_data(fire, 0) | {"error": error}
            self._append_events(
                conn, now, [Transition("fire_failed", fire.job_name, fire_id=fire_id, data=data)]
            )
        return fire_id

    def set_last_slots(self, marks: Mapping[str, datetime]) -> None:
        """`set_last_slot` for several jobs in one transaction; each job's mark only moves forward."""
        if not marks:
            return
        with self._write() as conn:
            for name, slot in sorted(marks.items()):  # name order, as in sync_jobs: no deadlock between them
                conn.execute(
                    sa.update(job_t)
                    .where(job_t.c.name == name)
                    .where(sa.or_(job_t.c.last_slot_at.is_(None), job_t.c.last_slot_at < slot))
                    .values(last_slot_at=slot)
                )

    def job_fires(self, name: str, *, limit: int | None = None) -> list[FireSummary]:
        """The job's fires, oldest first (by slot, then by creation); with `limit`, the newest `limit` of them."""
        order = (fire_t.c.scheduled_for.desc().nulls_last(), fire_t.c.created_at.desc(), fire_t.c.id.desc())
        query = sa.select(fire_t).where(fire_t.c.job_name == name).order_by(*order)
        if limit is not None:
            query = query.limit(limit)
        with self._read() as conn:
            return [_fire_summary(r) for r in reversed(conn.execute(query).all())]

    def last_fire_by_job(self) -> dict[str, FireSummary]:
        """Each job's most recent fire: the last created, and of fires created together the latest slot."""
        # One index probe per job (ix_fire_job_created), not a ranking of every fire in the store.
        f = fire_t.alias("f")
        newest = (
            sa.select(f.c.id)
            .where(f.c.job_name == job_t.c.name)
            .order_by(f.c.created_at.desc(), f.c.scheduled_for.desc().nulls_last(), f.c.id.desc())
            .limit(1)
            .correlate(job_t)
            .scalar_subquery()
        )
        with self._read() as conn:
            rows = conn.execute(sa.select(fire_t).join(job_t, fire_t.c.id == newest)).all()
        return {r.job_name: _fire_summary(r) for r in rows}

    def in_flight_by_job(self) -> dict[str, int]:
        """Runs in flight per job: attempts that hold (or may hold) a desktop."""
        with self._read() as conn:
            rows = conn.execute(
                sa.select(attempt_t.c.job_name, sa.func.count())
                .where(attempt_t.c.status.in_(ACTIVE_ATTEMPT_STATUSES))
                .group_by(attempt_t.c.job_name)
            ).all()
        return {name: count for name, count in rows}

    def _fire_values(
        self, fire_id: str, fire: NewFire, now: datetime, *, status: str, items_total: int
    ) -> dict[str, Any]:
        scheduled = fire.trigger in ("scheduled", "catchup") and fire.scheduled_for is not None
        dedup_key = (
            f"{fire.job_name}@{fire.scheduled_for.isoformat()}"
            if scheduled and fire.scheduled_for
            else fire_id
        )
        return {
            "id": fire_id,
            "job_name": fire.job_name,
            "trigger": fire.trigger,
            "dedup_key": dedup_key,
            "scheduled_for": fire.scheduled_for,
            "created_at": now,
            "status": status,
            "retry_of": fire.retry_of,
            "input_overrides": dict(fire.input_overrides) if fire.input_overrides else None,
            "definition_hash": fire.definition_hash,
            "planned_at": now if status == "running" else None,
            "items_total": items_total,
        }

    def _insert_items(
        self, conn: Connection, fire_id: str, fire: NewFire, items: Sequence[NewItem], now: datetime
    ) -> None:
        if not items:
            return
        self._work_due(conn)
        conn.execute(
            sa.insert(item_t),
            [
                {
                    "id": new_id("item"),
                    "fire_id": fire_id,
                    "job_name": fire.job_name,
                    "seq": seq,
                    "inputs": dict(item.inputs),
                    "machine_id": item.machine_id,
                    "machine_name": item.machine_name,
                    "status": "pending",
                    "priority": fire.priority,
                    "attempts": 0,
                    "next_attempt_at": now,
                    "created_at": now,
                    "cancel_requested": False,
                }
                for seq, item in enumerate(items)
            ],
        )

    # -- dispatch --------------------------------------------------------------------------------------

    def dispatch(
        self,
        now: datetime,
        choose: Chooser,
        *,
        limit: int = 200,
        lease: timedelta,
        window: DispatchWindow | None = None,
    ) -> list[AttemptRef]:
        """Record new attempts for due items, as chosen by `choose`, before any create call is made.

        The attempt rows (with their idempotency keys) are committed here; the caller makes the create calls
        afterwards. The attempts are claimed by this store (`owner`) until now + `lease`; `renew_creating`
        extends the claim while the calls are slow. A crash in between leaves attempts in `creating`, which
        `attempts_to_settle` hands to any daemon once the claim lapses.

        Each job's due items are read from its queue in dispatch order (priority first, then due time), at most
        `limit` of them and at most what `window` says this job could start now (its free desktops, its
        concurrency left): a round reads the items it can place, not every item waiting.

        Across daemons: the advisory lock makes one dispatch decision at a time, so busy desktops and per-job
        counts read here include every other daemon's committed attempts; due items are taken with SKIP LOCKED
        (never waiting on an item another transaction holds); the partial unique index on the active
        attempt's desktop is the last guard. Each job gets its own window, so a job at its concurrency limit
        cannot hide another job's items; items pinned to a busy desktop are left out.
        """
        with self._write() as conn:
            if self.is_postgres:
                conn.execute(sa.select(sa.func.pg_advisory_xact_lock(_DISPATCH_LOCK_KEY)))
            active = conn.execute(
                sa.select(attempt_t.c.machine_id, attempt_t.c.job_name).where(
                    attempt_t.c.status.in_(ACTIVE_ATTEMPT_STATUSES)
                )
            ).all()
            busy = frozenset(r.machine_id for r in active)
            active_by_job: dict[str, int] = defaultdict(int)
            for row in active:
                active_by_job[row.job_name] += 1
            due = (
                item_t.c.status == "pending",
                item_t.c.next_attempt_at <= now,
                item_t.c.cancel_requested.is_(False),
                sa.or_(
                    item_t.c.machine_id.is_(None),
                    item_t.c.machine_id.not_in(
                        sa.select(attempt_t.c.machine_id).where(
                            attempt_t.c.status.in_(ACTIVE_ATTEMPT_STATUSES)
                        )
                    ),
                ),
            )
            due_rows: list[Any] = []
            for job_name in conn.execute(sa.select(job_t.c.name).order_by(job_t.c.name)).scalars():
                wanted = (
                    limit if window is None else min(limit, window(job_name, busy, active_by_job[job_name]))
                )
                for priority in (True, False):  # the queue index holds priority ascending: two ordered reads
                    if wanted <= 0:
                        break
                    queue = (
                        sa.select(*_DUE_COLUMNS)
                        .where(item_t.c.job_name == job_name, item_t.c.priority == priority, *due)
                        .order_by(item_t.c.next_attempt_at, item_t.c.seq, item_t.c.id)
                        .limit(wanted)
                    )
                    rows = conn.execute(self._lock(queue, skip_locked=True, of=item_t)).all()
                    due_rows += rows
                    wanted -= len(rows)
            if not due_rows:
                return []
            due_rows.sort(key=lambda r: (not r.priority, r.next_attempt_at, r.seq, r.id))
            view = DispatchView(
                due=[
                    DueItem(
                        r.id,
                        r.fire_id,
                        r.job_name,
                        r.seq,
                        r.inputs,
                        r.machine_id,
                        r.attempts,
                        r.priority,
                        r.next_attempt_at,
                    )
                    for r in due_rows
                ],
                busy_desktops=busy,
                active_by_job=dict(active_by_job),
            )
            assignments = choose(view)
            if not assignments:
                return []
            by_id = {r.id: r for r in due_rows}
            refs: list[AttemptRef] = []
            transitions: list[Transition] = []
            attempt_rows: list[dict[str, Any]] = []
            for a in assignments:
                item = by_id[a.item_id]
                attempt_id = new_id("att")
                key = str(uuid.uuid4())
                number = item.attempts + 1
                attempt_rows.append(
                    {
                        "id": attempt_id,
                        "item_id": item.id,
                        "fire_id": item.fire_id,
                        "job_name": item.job_name,
                        "number": number,
                        "idempotency_key": key,
                        "workflow_id": a.workflow_id,
                        "machine_id": a.machine_id,
                        "machine_name": a.machine_name,
                        "status": "creating",
                        "created_at": now,
                        "updated_at": now,
                        "deadline_at": a.deadline_at,
                        "retry_create_at": now + lease,
                        "create_tries": 0,
                        "owner": self.owner,
                        "cancel_requested": False,
                    }
                )
                refs.append(
                    AttemptRef(
                        attempt_id,
                        item.id,
                        item.fire_id,
                        item.job_name,
                        number,
                        key,
                        a.workflow_id,
                        a.machine_id,
                        a.machine_name,
                        item.inputs,
                        item.priority,
                        0,
                    )
                )
                transitions.append(
                    Transition(
                        "attempt_created",
                        item.job_name,
                        fire_id=item.fire_id,
                        item_id=item.id,
                        attempt_id=attempt_id,
                        data={"number": number, "machine": a.machine_name or a.machine_id},
                    )
                )
            conn.execute(self._sql.insert_attempts, attempt_rows)
            conn.execute(self._sql.item_running, [{"b_id": r.item_id, "b_attempts": r.number} for r in refs])
            self._append_events(conn, now, transitions)
            return refs

    def attempts_to_settle(self, now: datetime, *, lease: timedelta, limit: int = 100) -> list[AttemptRef]:
        """Attempts whose create call has no recorded outcome and is due to be repeated with the same key.

        Due means: deferred after an unknown outcome and its retry time has come, or claimed by a daemon that
        stopped renewing the claim (it died). Taking them claims them for this store until now + `lease`, so no
        other daemon repeats the same call while this one is making it.
        """
        due = (attempt_t.c.status == "creating", attempt_t.c.retry_create_at <= now)
        with self._read() as conn:  # usually none: ask before taking SQLite's one write lock
            if conn.execute(sa.select(attempt_t.c.id).where(*due).limit(1)).first() is None:
                return []
        with self._write() as conn:
            query = (
                sa.select(attempt_t, item_t.c.inputs, item_t.c.priority)
                .join(item_t, item_t.c.id == attempt_t.c.item_id)
                .where(*due)
                .order_by(attempt_t.c.retry_create_at, attempt_t.c.id)
                .limit(limit)
            )
            rows = conn.execute(self._lock(query, skip_locked=True, of=attempt_t)).all()
            if not rows:
                return []
            conn.execute(
                sa.update(attempt_t)
                .where(attempt_t.c.id.in_([r.id for r in rows]))
                .values(retry_create_at=now + lease, owner=self.owner, updated_at=now)
            )
            return [
                AttemptRef(
                    r.id,
                    r.item_id,
                    r.fire_id,
                    r.job_name,
                    r.number,
                    r.idempotency_key,
                    r.workflow_id,
                    r.machine_id,
                    r.machine_name,
                    r.inputs,
                    r.priority,
                    r.create_tries,
                )
                for r in rows
            ]

    def renew_creating(self, now: datetime, lease: timedelta) -> int:
        """Extend this store's claims on the attempts whose create calls it is making; returns how many.

        Call it more often than the lease lasts (every lease / 3): a claim that is not renewed lapses at
        `retry_create_at`, and then another daemon repeats the create call (same key, so no second run, but a
        wasted call and a race for the record).
        """
        with self._write() as conn:
            return int(
                conn.execute(
                    sa.update(attempt_t)
                    .where(attempt_t.c.status == "creating")
                    .where(attempt_t.c.owner == self.owner)
                    .values(retry_create_at=now + lease)
                ).rowcount
            )

    def release_creating(self, now: datetime) -> int:
        """Hand back this store's claims at a clean stop: its unanswered create calls are due for any daemon now
        (same keys) instead of when the lease would have lapsed. Returns how many were released."""
        with self._write() as conn:
            released = int(
                conn.execute(
                    sa.update(attempt_t)
                    .where(attempt_t.c.status == "creating")
                    .where(attempt_t.c.owner == self.owner)
                    .values(retry_create_at=now, owner=None)
                ).rowcount
            )
            if released:
                self._work_due(conn)
            return released

    def defer_create(self, attempt_id: str, retry_at: datetime, error: str, now: datetime) -> None:
        """The create call's outcome is unknown (timeout, dropped connection, 5xx): repeat it later, same key.

        The claim is released (any daemon may repeat the call at `retry_at`), unless another daemon has taken
        the attempt over meanwhile: then its claim stands.
        """
        with self._write() as conn:
            row = conn.execute(
                sa.update(attempt_t)
                .where(attempt_t.c.id == attempt_id)
                .where(attempt_t.c.status == "creating")
                .where(sa.or_(attempt_t.c.owner == self.owner, attempt_t.c.owner.is_(None)))
                .values(
                    retry_create_at=retry_at,
                    create_tries=attempt_t.c.create_tries + 1,
                    owner=None,
                    updated_at=now,
                )
                .returning(attempt_t.c.job_name, attempt_t.c.fire_id, attempt_t.c.item_id)
            ).first()
            if row is not None:
                self._append_events(
                    conn,
                    now,
                    [
                        Transition(
                            "create_deferred",
                            row.job_name,
                            row.fire_id,
                            row.item_id,
                            attempt_id,
                            data={"error": error, "retry_at": retry_at.isoformat()},
                        )
                    ],
                )

    def record_created(
        self, created: Sequence[tuple[str, RunObservation]], now: datetime, outcome: OutcomePolicy
    ) -> list[Transition]:
        """Record the runs that create calls returned (attempt id, run). Runs already final are finished."""
        return self.record_news(created, [], now, outcome).transitions

    def record_news(
        self,
        created: Sequence[tuple[str, RunObservation]],
        observations: Sequence[RunObservation],
        now: datetime,
        outcome: OutcomePolicy,
    ) -> RecordedNews:
        """Record create calls' answers (attempt id, run), then news about runs, in one transaction.

        News about a run that is not (yet) ours changes nothing and is handed back: a fast run's webhook can
        beat its create call's answer, and the caller decides when such news is really about a stranger.
        """
        with self._write() as conn:
            transitions = self._record_created(conn, created, now, outcome)
            applied, unknown = self._apply_observations(conn, observations, now, outcome)
            transitions += applied
            self._append_events(conn, now, transitions)
        return RecordedNews(transitions, unknown)

    def _record_created(
        self,
        conn: Connection,
        created: Sequence[tuple[str, RunObservation]],
        now: datetime,
        outcome: OutcomePolicy,
    ) -> list[Transition]:
        transitions: list[Transition] = []
        runs = dict(created)
        if not runs:
            return transitions
        rows = conn.execute(self._sql.attempts_by_id, {"ids": list(runs)}).all()
        recorded: list[dict[str, Any]] = []
        for row in rows:
            run = runs[row.id]
            if row.status != "creating":
                continue  # another daemon repeated the call and recorded its (same) run first
            # A run that is already final is recorded as scheduling first, then finished below with
            # the item's outcome, through the same path as any other news about runs.
            recorded.append(
                {
                    "b_id": row.id,
                    "b_run": run.run_id,
                    "b_status": _non_final(run.status),
                    "b_started": run.started_at,
                    "b_now": now,
                }
            )
            transitions.append(
                Transition(
                    "run_created",
                    row.job_name,
                    row.fire_id,
                    row.item_id,
                    row.id,
                    run.run_id,
                    data={"machine": row.machine_name or row.machine_id, "number": row.number},
                )
            )
        if recorded:
            conn.execute(self._sql.attempt_created, recorded)
        final = [run for _, run in created if run.status in FINAL_ATTEMPT_STATUSES]
        if final:
            transitions += self._apply_observations(conn, final, now, outcome)[0]
        return transitions

    # -- tracking --------------------------------------------------------------------------------------

    def in_flight(self) -> list[InFlightAttempt]:
        with self._read() as conn:
            # The columns InFlightAttempt takes, in its order: polls read every attempt in flight (thousands).
            columns = (
                attempt_t.c.id,
                attempt_t.c.job_name,
                attempt_t.c.run_id,
                attempt_t.c.workflow_id,
                attempt_t.c.machine_id,
                attempt_t.c.status,
                attempt_t.c.created_at,
                attempt_t.c.deadline_at,
                attempt_t.c.cancel_requested,
            )
            rows = conn.execute(sa.select(*columns).where(attempt_t.c.status.in_(ACTIVE_ATTEMPT_STATUSES)))
            return [InFlightAttempt(*r) for r in rows]

    def apply_observations(
        self, runs: Sequence[RunObservation], now: datetime, outcome: OutcomePolicy
    ) -> list[Transition]:
        """Record what the API says about runs. Repeats and stale news are no-ops; unknown runs are logged."""
        with self._write() as conn:
            transitions, unknown = self._apply_observations(conn, runs, now, outcome)
            transitions += [
                Transition(
                    "unknown_run", "", run_id=run.run_id, data={"status": run.status, "source": run.source}
                )
                for run in unknown
            ]
            self._append_events(conn, now, transitions)
        return transitions

    def apply_verdicts(
        self, verdicts: Sequence[AttemptVerdict], now: datetime, outcome: OutcomePolicy
    ) -> list[Transition]:
        """Finish attempts by the runner's own verdict (timed out, rejected by the API, cancelled)."""
        by_attempt = {v.attempt_id: v for v in verdicts}
        if not by_attempt:
            return []
        with self._write() as conn:
            rows = conn.execute(self._sql.attempts_by_id, {"ids": list(by_attempt)}).all()
            finishing = [
                _Finish(
                    row,
                    by_attempt[row.id].status,
                    None,
                    None,
                    by_attempt[row.id].error,
                    None,
                    by_attempt[row.id].source,
                )
                for row in rows
                if row.status not in FINAL_ATTEMPT_STATUSES
            ]
            transitions = self._finish_attempts(conn, finishing, now, outcome)
            self._append_events(conn, now, transitions)
        return transitions

    def _apply_observations(
        self, conn: Connection, runs: Sequence[RunObservation], now: datetime, outcome: OutcomePolicy
    ) -> tuple[list[Transition], list[RunObservation]]:
        """Apply news about our runs; returns the transitions and the news about runs that are not ours."""
        transitions: list[Transition] = []
        by_run = {r.run_id: r for r in runs}
        if not by_run:
            return transitions, []
        # Attempts in id order: two daemons applying the same webhooks wait for each other, never deadlock.
        rows = conn.execute(self._sql.attempts_by_run, {"ids": list(by_run)}).all()
        known = {r.run_id for r in rows}
        unknown = [by_run[run_id] for run_id in sorted(by_run.keys() - known)]
        finishing: list[_Finish] = []
        progressed: list[dict[str, Any]] = []
        for row in rows:
            run = by_run[row.run_id]
            if row.status in FINAL_ATTEMPT_STATUSES or run.status == row.status:
                continue
            if run.status in FINAL_ATTEMPT_STATUSES:
                status, error = run.status, run.error
                if status == "cancelled" and not row.cancel_requested and row.deadline_at <= now:
                    # A reaper's cancel of an overdue run, heard (webhook, poll) before the reaper recorded it
                    # or after it died: a timeout, retried by the job's policy, not a cancel meant by someone.
                    status, error = "timed_out", timed_out_error(row.deadline_at - row.created_at)
                finishing.append(
                    _Finish(row, status, run.started_at, run.ended_at, error, run.output, run.source)
                )
            elif _progresses(row.status, run.status):
                progressed.append(
                    {
                        "b_id": row.id,
                        "b_status": run.status,
                        "b_started": run.started_at or row.started_at,
                        "b_now": now,
                    }
                )
                transitions.append(
                    Transition(
                        f"run_{run.status}",
                        row.job_name,
                        row.fire_id,
                        row.item_id,
                        row.id,
                        row.run_id,
                        data={"source": run.source},
                    )
                )
        if progressed:
            conn.execute(self._sql.attempt_progressed, progressed)
        transitions += self._finish_attempts(conn, finishing, now, outcome)
        return transitions, unknown

    def _finish_attempts(
        self, conn: Connection, finishing: Sequence[_Finish], now: datetime, outcome: OutcomePolicy
    ) -> list[Transition]:
        """Finish attempts (locked by the caller), decide their items, settle their fires.

        A few statements per batch, however large: a burst of webhooks costs one transaction of a handful of
        round trips, not three per run. Locks follow the one order: the attempts (caller), then their items by
        id, then the fires by id (`_settle_fires`).
        """
        if not finishing:
            return []
        self._work_due(conn)  # their desktops are free again: any daemon may dispatch there now
        conn.execute(
            self._sql.attempt_finished,
            [
                {
                    "b_id": f.row.id,
                    "b_status": f.status,
                    "b_started": f.started_at or f.row.started_at,
                    "b_ended": f.ended_at or now,
                    "b_error": list(f.error) if f.error else None,
                    "b_output": dict(f.output) if f.output is not None else None,
                    "b_now": now,
                }
                for f in finishing
            ],
        )
        item_ids = sorted({f.row.item_id for f in finishing})
        items = {
            r.id: r
            for chunk in _chunks(item_ids)
            for r in conn.execute(self._sql.items_by_id, {"ids": list(chunk)})
        }
        transitions: list[Transition] = []
        item_updates: list[dict[str, Any]] = []
        settle: set[str] = set()
        for f in finishing:
            row = f.row
            transitions.append(
                Transition(
                    f"attempt_{f.status}",
                    row.job_name,
                    row.fire_id,
                    row.item_id,
                    row.id,
                    row.run_id,
                    data={"number": row.number, "error": f.error, "source": f.source},
                )
            )
            item = items.pop(
                row.item_id, None
            )  # popped: one outcome per item, even if two attempts end at once
            if item is None or item.status in FINAL_ITEM_STATUSES:
                continue
            decision = outcome(
                FinishedAttempt(
                    row.id, row.item_id, row.job_name, row.number, f.status, f.error, item.cancel_requested
                )
            )
            values, item_transitions = _item_outcome(item, decision, f.error, now)
            item_updates.append(values)
            transitions += item_transitions
            if values["b_status"] != "pending":
                settle.add(item.fire_id)
        if item_updates:
            conn.execute(self._sql.item_outcome, item_updates)
        return transitions + self._settle_fires(conn, settle, now)

    def _apply_item_outcome(
        self,
        conn: Connection,
        item: Any,
        decision: ItemOutcome,
        error: list[str] | None,
        now: datetime,
        settle: set[str],
    ) -> list[Transition]:
        """Record one item's outcome; a final one adds its fire to `settle` (settled once, at the end)."""
        values, transitions = _item_outcome(item, decision, error, now)
        conn.execute(
            sa.update(item_t)
            .where(item_t.c.id == item.id)
            .values(
                status=values["b_status"],
                next_attempt_at=values["b_next"],
                finished_at=values["b_finished"],
                last_error=values["b_error"],
            )
        )
        if values["b_status"] == "pending":
            self._work_due(conn)
        else:
            settle.add(item.fire_id)
        return transitions

    def _settle_fires(self, conn: Connection, fire_ids: Iterable[str], now: datetime) -> list[Transition]:
        """Finish fires whose items are all final.

        Each fire row is locked (in id order, after the attempts and items: the one lock order) before its items
        are counted. Without it, two transactions finishing a fire's last two items at once would each still
        see the other's item open under READ COMMITTED, and neither would finish the fire.
        """
        ids = sorted(set(fire_ids))
        if not ids:
            return []
        running = conn.execute(self._sql.running_fires, {"ids": ids}).all()
        transitions: list[Transition] = []
        for fire in running:
            # Cheap test first (index on fire_id, status), so finishing one item of a big fire stays O(1).
            still_open = conn.execute(self._sql.fire_open_item, {"b_fire": fire.id}).first()
            if still_open is not None:
                continue
            counts: dict[str, int] = dict(conn.execute(self._sql.fire_item_counts, {"b_fire": fire.id}).all())
            if counts.get("failed"):
                status = "failed"
            elif counts.get("cancelled"):
                status = "cancelled"
            else:
                status = "succeeded"
            conn.execute(self._sql.fire_finished, {"b_fire": fire.id, "b_status": status, "b_now": now})
            transitions.append(Transition(f"fire_{status}", fire.job_name, fire_id=fire.id, data=counts))
        return transitions

    # -- cancellation ----------------------------------------------------------------------------------

    def cancel_pending_items(
        self,
        where_job: str | None,
        reason: str,
        now: datetime,
        *,
        fire_ids: Sequence[str] | None = None,
        item_ids: Sequence[str] | None = None,
        only_pending: bool = False,
    ) -> list[Transition]:
        """Cancel items that have no run yet, and (unless `only_pending`) ask for the runs of the others to be
        cancelled in Cyberdesk; the reaper carries that out."""
        chosen = []
        if where_job is not None:
            chosen.append(item_t.c.job_name == where_job)
        if fire_ids is not None:
            chosen.append(item_t.c.fire_id.in_(list(fire_ids)))
        if item_ids is not None:
            chosen.append(item_t.c.id.in_(list(item_ids)))
        with self._write() as conn:
            transitions = self._cancel_items(conn, chosen, reason, now, only_pending=only_pending)
            self._append_events(conn, now, transitions)
        return transitions

    def _cancel_items(
        self, conn: Connection, chosen: Sequence[Any], reason: str, now: datetime, *, only_pending: bool
    ) -> list[Transition]:
        """Cancel the open items matching `chosen` (see `cancel_pending_items`); the caller appends the events."""
        statuses = ("pending",) if only_pending else OPEN_ITEM_STATUSES
        chosen = [item_t.c.status.in_(statuses), *chosen]
        if not only_pending:
            # The one lock order: the running items' attempts first, then the items, each by id.
            conn.execute(
                self._lock(
                    sa.select(attempt_t.c.id)
                    .where(attempt_t.c.status.in_(ACTIVE_ATTEMPT_STATUSES))
                    .where(attempt_t.c.item_id.in_(sa.select(item_t.c.id).where(*chosen)))
                    .order_by(attempt_t.c.id)
                )
            ).all()
        items = conn.execute(self._lock(sa.select(item_t).where(*chosen).order_by(item_t.c.id))).all()
        transitions: list[Transition] = []
        running = [i.id for i in items if i.status == "running"]
        for chunk in _chunks(running):
            conn.execute(sa.update(item_t).where(item_t.c.id.in_(chunk)).values(cancel_requested=True))
            conn.execute(
                sa.update(attempt_t)
                .where(attempt_t.c.item_id.in_(chunk))
                .where(attempt_t.c.status.in_(ACTIVE_ATTEMPT_STATUSES))
                .values(cancel_requested=True, updated_at=now)
            )
        if running:
            self._work_due(conn)  # the reaper (on whichever daemon holds its lease) cancels the runs
        pending = [i for i in items if i.status == "pending"]
        for chunk in _chunks([i.id for i in pending]):
            conn.execute(
                sa.update(item_t).where(item_t.c.id.in_(chunk)).values(status="cancelled", finished_at=now)
            )
        for item in items:
            if item.status == "pending":
                transitions.append(
                    Transition(
                        "item_cancelled", item.job_name, item.fire_id, item.id, data={"reason": reason}
                    )
                )
            else:
                transitions.append(
                    Transition(
                        "cancel_requested", item.job_name, item.fire_id, item.id, data={"reason": reason}
                    )
                )
        transitions += self._settle_fires(conn, {i.fire_id for i in pending}, now)
        return transitions

    def fail_pending_items(self, item_ids: Sequence[str], reason: str, now: datetime) -> list[Transition]:
        """Give up on items that cannot run (their desktop is gone); items no longer pending are left alone."""
        with self._write() as conn:
            items = conn.execute(
                self._lock(
                    sa.select(item_t)
                    .where(item_t.c.id.in_(list(item_ids)))
                    .where(item_t.c.status == "pending")
                    .order_by(item_t.c.id)
                )
            ).all()
            transitions: list[Transition] = []
            settle: set[str] = set()
            for item in items:
                transitions += self._apply_item_outcome(conn, item, Fail(reason), None, now, settle)
            transitions += self._settle_fires(conn, settle, now)
            self._append_events(conn, now, transitions)
        return transitions

    def cancel_attempts(self, attempt_ids: Sequence[str], reason: str, now: datetime) -> int:
        with self._write() as conn:
            rows = conn.execute(
                sa.select(attempt_t.c.item_id)
                .where(attempt_t.c.id.in_(list(attempt_ids)))
                .where(attempt_t.c.status.in_(ACTIVE_ATTEMPT_STATUSES))
            ).all()
        return len(self.cancel_pending_items(None, reason, now, item_ids=[r.item_id for r in rows]))

    # -- the CLI's cancel and retry ----------------------------------------------------------------------

    def cancel_requested_fire(self, fire_id: str, reason: str, now: datetime) -> list[Transition]:
        """Cancel a fire that no daemon has planned yet (a manual trigger still `requested`)."""
        with self._write() as conn:
            row = conn.execute(
                sa.update(fire_t)
                .where(fire_t.c.id == fire_id)
                .where(fire_t.c.status == "requested")
                .values(status="cancelled", finished_at=now)
                .returning(fire_t.c.job_name)
            ).first()
            if row is None:
                return []
            transitions = [
                Transition("fire_cancelled", row.job_name, fire_id=fire_id, data={"reason": reason})
            ]
            self._append_events(conn, now, transitions)
        return transitions

    def retry_failed(self, fire_or_item_id: str, now: datetime) -> str | None:
        """Run failed work again as a new fire (trigger "retry", `retry_of` the old fire); returns its id.

        A fire id retries every failed item of that fire, an item id that item if it failed. The new items copy
        the old ones' inputs and desktop pins and are pending at once: a daemon dispatches them like any other.
        A fire that failed before it had items (it could not be planned) is requested again, to be planned.
        None when there is nothing failed to retry.
        """
        with self._write() as conn:
            query = sa.select(item_t).where(item_t.c.status == "failed").order_by(item_t.c.seq)
            if fire_or_item_id.startswith("item_"):
                items = conn.execute(self._lock(query.where(item_t.c.id == fire_or_item_id))).all()
                fire_id = items[0].fire_id if items else None
            else:
                fire_id = fire_or_item_id
                items = conn.execute(self._lock(query.where(item_t.c.fire_id == fire_id))).all()
            old = conn.execute(sa.select(fire_t).where(fire_t.c.id == fire_id)).first() if fire_id else None
            if old is None:
                return None
            replan = not items and old.status == "failed" and old.items_total == 0
            if not items and not replan:
                return None
            retry_id = new_id("fire")
            fire = NewFire(
                old.job_name,
                "retry",
                None,
                definition_hash=old.definition_hash,
                input_overrides=old.input_overrides,
                retry_of=old.id,
                priority=any(i.priority for i in items),
            )
            status = "requested" if replan else "running"
            if replan:
                self._work_due(conn)
            conn.execute(
                sa.insert(fire_t).values(
                    **self._fire_values(retry_id, fire, now, status=status, items_total=len(items))
                )
            )
            self._insert_items(
                conn, retry_id, fire, [NewItem(i.inputs, i.machine_id, i.machine_name) for i in items], now
            )
            retried_item = fire_or_item_id if fire_or_item_id.startswith("item_") else None
            transitions = [
                Transition(
                    "retried",
                    old.job_name,
                    fire_id=old.id,
                    item_id=retried_item,
                    data={"retry_fire": retry_id, "items": len(items)},
                ),
                Transition(
                    "fire_requested" if replan else "fire_started",
                    old.job_name,
                    fire_id=retry_id,
                    data=_fire_data(fire, len(items)),
                ),
            ]
            self._append_events(conn, now, transitions)
        return retry_id

    # -- questions for the daemon's own bookkeeping ----------------------------------------------------

    def work_counts(self) -> WorkCounts:
        with self._read() as conn:
            fires = conn.execute(
                sa.select(sa.func.count()).select_from(fire_t).where(fire_t.c.status == "requested")
            ).scalar_one()
            items: dict[str, int] = dict(
                conn.execute(
                    sa.select(item_t.c.status, sa.func.count())
                    .where(item_t.c.status.in_(OPEN_ITEM_STATUSES))
                    .group_by(item_t.c.status)
                ).all()
            )
            attempts: dict[str, int] = dict(
                conn.execute(
                    sa.select(attempt_t.c.status, sa.func.count())
                    .where(attempt_t.c.status.in_(ACTIVE_ATTEMPT_STATUSES))
                    .group_by(attempt_t.c.status)
                ).all()
            )
        return WorkCounts(
            requested_fires=fires,
            pending_items=items.get("pending", 0),
            running_items=items.get("running", 0),
            creating_attempts=attempts.get("creating", 0),
            in_flight_attempts=sum(attempts.values()),
        )

    def summary_since(self, since: datetime) -> list[JobSummary]:
        """Per job: what became of the items created or finished since `since` (the daemon's exit summary)."""
        with self._read() as conn:
            items = conn.execute(
                sa.select(item_t.c.job_name, item_t.c.status, item_t.c.attempts).where(
                    sa.or_(item_t.c.created_at >= since, item_t.c.finished_at >= since)
                )
            ).all()
            runs: dict[str, int] = dict(
                conn.execute(
                    sa.select(attempt_t.c.job_name, sa.func.count())
                    .where(attempt_t.c.created_at >= since)
                    .where(attempt_t.c.run_id.is_not(None))
                    .group_by(attempt_t.c.job_name)
                ).all()
            )
            failed_fires: dict[str, int] = dict(
                conn.execute(
                    sa.select(fire_t.c.job_name, sa.func.count())
                    .where(fire_t.c.created_at >= since)
                    .where(fire_t.c.status == "failed")
                    .where(fire_t.c.items_total == 0)
                    .group_by(fire_t.c.job_name)
                ).all()
            )
        per_job: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
        for name in failed_fires:
            per_job[name]
        for row in items:
            per_job[row.job_name][row.status] += 1
            if row.attempts > 1:
                per_job[row.job_name]["retried"] += 1
        return [
            JobSummary(
                name,
                c["succeeded"],
                c["failed"],
                c["cancelled"],
                c["retried"],
                runs.get(name, 0),
                failed_fires.get(name, 0),
            )
            for name, c in sorted(per_job.items())
        ]

    # -- retention -------------------------------------------------------------------------------------

    def purge_finished(self, older_than: datetime, batch: int = 1000) -> int:
        """Delete history older than `older_than`; returns the number of fires deleted.

        Fires finished before then go with their items, attempts and events, `batch` fires per transaction (so
        no transaction grows large and the daemons' own work interleaves); then events that belong to no fire
        and daemons not seen since then. Unfinished work is never touched: a fire goes only when it is final
        and none of its items or attempts is still open. Run it under a lease (`try_lease("retention", ...)`)
        so that one daemon does it.
        """
        total = 0
        while True:
            deleted = self._purge_fires(older_than, batch)
            total += deleted
            if deleted < batch:
                break
        while self._purge_loose_events(older_than, batch * 10) == batch * 10:
            pass
        with self._write() as conn:
            conn.execute(sa.delete(daemon_t).where(daemon_t.c.heartbeat_at < older_than))
        return total

    def _purge_fires(self, older_than: datetime, batch: int) -> int:
        open_items = (
            sa.select(item_t.c.id)
            .where(item_t.c.fire_id == fire_t.c.id)
            .where(item_t.c.status.in_(OPEN_ITEM_STATUSES))
        )
        open_attempts = (
            sa.select(attempt_t.c.id)
            .where(attempt_t.c.fire_id == fire_t.c.id)
            .where(attempt_t.c.status.in_(ACTIVE_ATTEMPT_STATUSES))
        )
        query = (
            sa.select(fire_t.c.id)
            .where(fire_t.c.status.in_(sorted(FINAL_FIRE_STATUSES)))
            .where(fire_t.c.finished_at < older_than)
            .where(~sa.exists(open_items), ~sa.exists(open_attempts))
            .order_by(fire_t.c.finished_at, fire_t.c.id)
            .limit(batch)
        )
        with self._write() as conn:
            ids = list(conn.execute(self._lock(query, skip_locked=True, of=fire_t)).scalars())
            if ids:
                conn.execute(sa.delete(event_t).where(event_t.c.fire_id.in_(ids)))
                conn.execute(sa.delete(attempt_t).where(attempt_t.c.fire_id.in_(ids)))
                conn.execute(sa.delete(item_t).where(item_t.c.fire_id.in_(ids)))
                conn.execute(sa.delete(fire_t).where(fire_t.c.id.in_(ids)))
        return len(ids)

    def _purge_loose_events(self, older_than: datetime, batch: int) -> int:
        """Events of no fire (job changes, unknown runs) older than `older_than`, `batch` at a time."""
        with self._write() as conn:
            ids = list(
                conn.execute(
                    sa.select(event_t.c.id)
                    .where(event_t.c.at < older_than)
                    .where(event_t.c.fire_id.is_(None))
                    .order_by(event_t.c.at)
                    .limit(batch)
                ).scalars()
            )
            if ids:
                conn.execute(sa.delete(event_t).where(event_t.c.id.in_(ids)))
        return len(ids)

    # -- daemons and leases ----------------------------------------------------------------------------

    def register_daemon(self, daemon_id: str, host: str, pid: int, now: datetime) -> None:
        with self._write() as conn:
            conn.execute(
                sa.insert(daemon_t).values(id=daemon_id, host=host, pid=pid, started_at=now, heartbeat_at=now)
            )

    def heartbeat(
        self, daemon_id: str, health: Mapping[str, Any], now: datetime, *, stopped: bool = False
    ) -> None:
        with self._write() as conn:
            conn.execute(
                sa.update(daemon_t)
                .where(daemon_t.c.id == daemon_id)
                .values(heartbeat_at=now, health=dict(health), stopped_at=now if stopped else None)
            )

    def release_leases(self, holder: str) -> None:
        """Give up every lease `holder` has (a daemon stopping cleanly), so others take over at once."""
        with self._write() as conn:
            conn.execute(sa.delete(lease_t).where(lease_t.c.holder == holder))

    def try_lease(self, name: str, holder: str, now: datetime, duration: timedelta) -> bool:
        """Take or renew a named lease; True when `holder` holds it until now + duration."""
        with self._write() as conn:
            conn.execute(
                self._insert_or_nothing(lease_t, ["name"]).values(name=name, holder=holder, expires_at=now)
            )
            taken = conn.execute(
                sa.update(lease_t)
                .where(lease_t.c.name == name)
                .where(sa.or_(lease_t.c.holder == holder, lease_t.c.expires_at <= now))
                .values(holder=holder, expires_at=now + duration)
            ).rowcount
            return bool(taken)

    # -- helpers ---------------------------------------------------------------------------------------

    def _lock(
        self, query: sa.Select[Any], *, skip_locked: bool = False, of: sa.Table | None = None
    ) -> sa.Select[Any]:
        # SQLite has one writer at a time (BEGIN IMMEDIATE), so row locks only matter on PostgreSQL.
        if not self.is_postgres:
            return query
        return query.with_for_update(skip_locked=skip_locked, of=of)

    def _append_events(self, conn: Connection, now: datetime, transitions: Sequence[Transition]) -> None:
        if not transitions:
            return
        conn.execute(
            self._sql.insert_events,
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


_TABLES = [job_t, fire_t, item_t, attempt_t, event_t, daemon_t, lease_t]
#: Most ids in one IN list (PostgreSQL takes at most 65,535 parameters per statement).
_CHUNK = 10_000


def _chunks(ids: Sequence[str]) -> Iterator[Sequence[str]]:
    for start in range(0, len(ids), _CHUNK):
        yield ids[start : start + _CHUNK]


# Non-final run statuses in the order a run moves through them; news never moves an attempt backwards.
_PROGRESS = {"creating": 0, "scheduling": 1, "running": 2, "running_checks": 3}


@attrs.frozen
class _Finish:
    """An attempt to finish: its locked row and what ended it."""

    row: Any
    status: str
    started_at: datetime | None
    ended_at: datetime | None
    error: list[str] | None
    output: Mapping[str, Any] | None
    source: str


def _item_outcome(
    item: Any, decision: ItemOutcome, error: list[str] | None, now: datetime
) -> tuple[dict[str, Any], list[Transition]]:
    """The item's new values (as `b_*` parameters of one UPDATE shape) and the transitions the decision makes."""
    last_error = "; ".join(error) if error else item.last_error
    base = {"job_name": item.job_name, "fire_id": item.fire_id, "item_id": item.id}
    if isinstance(decision, Retry):
        values = {
            "b_id": item.id,
            "b_status": "pending",
            "b_next": decision.at,
            "b_finished": None,
            "b_error": last_error,
        }
        return values, [Transition("item_retry_scheduled", data={"at": decision.at.isoformat()}, **base)]
    if isinstance(decision, Succeed):
        status, data = "succeeded", {}
    elif isinstance(decision, Fail):
        status, data = "failed", {"reason": decision.reason}
    else:
        status, data = "cancelled", {"reason": decision.reason}
    values = {
        "b_id": item.id,
        "b_status": status,
        "b_next": item.next_attempt_at,
        "b_finished": now,
        "b_error": last_error,
    }
    return values, [Transition(f"item_{status}", data=data, **base)]


def _non_final(status: str) -> str:
    return status if status in _PROGRESS else "scheduling"


def _progresses(current: str, new: str) -> bool:
    return _PROGRESS.get(new, -1) > _PROGRESS.get(current, -1)


def _job_state(row: Any) -> JobState:
    return JobState(
        row.name,
        row.definition_hash,
        row.definition,
        row.source_path,
        row.workflow_id,
        row.paused,
        row.removed_at is not None,
        row.last_slot_at,
    )


def _fire_summary(row: Any) -> FireSummary:
    return FireSummary(
        row.id,
        row.job_name,
        row.trigger,
        row.status,
        row.scheduled_for,
        row.created_at,
        row.finished_at,
        row.skip_reason,
        row.error,
        row.items_total,
    )


def _fire_data(fire: NewFire, items: int) -> dict[str, Any]:
    data: dict[str, Any] = {"trigger": fire.trigger, "items": items}
    if fire.scheduled_for is not None:
        data["scheduled_for"] = fire.scheduled_for.isoformat()
    if fire.retry_of:
        data["retry_of"] = fire.retry_of
    return data


def _jsonable(data: Mapping[str, Any]) -> dict[str, Any]:
    return {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in data.items()}
