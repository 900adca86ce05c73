"""Retry and cancel of a big fire: how long the store's longest transaction lasts, and how long another process's
small write (a daemon's heartbeat) waits meanwhile.

    python bench/bulk_ops_bench.py [--store sqlite|postgres] [--items 100000] [--running 200] [--json PATH|-]

Each operation gets a fresh store with one fire of `--items` items, recorded by chunks (not measured):
- retry: every item failed (on PostgreSQL the table then analyzed, as autovacuum has done by the time a fire
  that ran is retried); then `retry F` as the CLI does it (`bulk.retry_fire`; before it existed, one
  `store.control.retry_failed` transaction);
- cancel: `--running` items running (attempts being created), the rest pending; then `cancel F` as the CLI does
  it (`bulk.cancel_fire`; before, one `store.control.cancel_pending_items` transaction);
- remove-job: the same, then the job's file removed and its pending items cancelled as the daemon does it
  (`bulk.retire_removed_jobs`; before, one `store.control.cancel_pending_items` transaction).
Meanwhile another store (another daemon) writes its heartbeat every 20 ms: the longest of those writes is what a
daemon's writes waited for (on SQLite one writer at a time, so a long transaction blocks every daemon's writes).

The script runs whichever version of the runner is on its path, so old and new compare by running it twice with
PYTHONPATH pointing at each checkout, interleaved (A B A B).
"""

from __future__ import annotations

import argparse
import os
import secrets
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report import add_json_option, tables_to_stderr, write_json

from cyberdesk_runner.store import Store
from cyberdesk_runner.store.records import Assignment, DispatchView, JobDefinition, NewFire, NewItem
from cyberdesk_runner.store.tables import fire_t, item_t

try:
    from cyberdesk_runner import bulk
except ImportError:  # the runner before retry and cancel went by chunks
    bulk = None  # type: ignore[assignment]

PG_URL = os.environ.get("CYBERDESK_RUNNER_BENCH_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
T0 = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


@contextmanager
def fresh_store(kind: str, work: Path) -> Iterator[str]:
    """A URL of an empty store of `kind`, dropped after."""
    if kind == "sqlite":
        yield f"sqlite:///{work / f'store-{secrets.token_hex(3)}.sqlite'}"
        return
    schema = f"bench_{secrets.token_hex(5)}"
    engine = sa.create_engine(PG_URL)
    with engine.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield f"{PG_URL}?options=-csearch_path%3D{schema}"
    finally:
        with engine.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        engine.dispose()


def big_fire(store: Store, items: int) -> str:
    """One fire of `items` items, recorded by chunks of 4,000."""
    store.jobs.sync([JobDefinition("a", "h", {"name": "a"}, "/jobs/a.yaml")], T0)
    fire_id = store.fires.request(NewFire("a", "manual", None), T0)
    assert store.plans.claim_plan(fire_id, T0, expected=items, digest=None) is not None
    for start in range(0, items, 4_000):
        rows = [NewItem({"n": n, "note": "x" * 40}) for n in range(start, min(start + 4_000, items))]
        assert store.plans.plan_chunk(fire_id, start, rows, T0)
    assert store.plans.finish_plan(fire_id, T0) is not None
    return fire_id


def all_failed(store: Store, fire_id: str) -> None:
    with store.engine.begin() as conn:
        conn.execute(
            sa.update(item_t).where(item_t.c.fire_id == fire_id).values(status="failed", finished_at=T0)
        )
        conn.execute(sa.update(fire_t).where(fire_t.c.id == fire_id).values(status="failed", finished_at=T0))


def some_running(store: Store, running: int) -> None:
    """`running` items get an attempt (being created), each on a desktop of its own."""

    def choose(view: DispatchView) -> list[Assignment]:
        return [
            Assignment(item.id, "wf-1", f"m-{n}", f"desk {n}", T0 + timedelta(hours=1))
            for n, item in enumerate(view.due[:running])
        ]

    store.dispatch.assign(T0, choose, limit=running, lease=timedelta(minutes=5))


class Timer:
    """The store's transactions, timed (`StoreCore.transaction_timer`): the longest, and by which method."""

    def __init__(self) -> None:
        self.longest, self.method, self.count = 0.0, "", 0

    def __call__(self, method: str, seconds: float) -> None:
        self.count += 1
        if seconds > self.longest:
            self.longest, self.method = seconds, method


class Beats:
    """Another daemon's heartbeat writes: how long each took, and how many failed (SQLite gives up on its write
    lock after the store's busy timeout, 30 s: `database is locked`)."""

    def __init__(self) -> None:
        self.waits: list[float] = []
        self.failed = 0


@contextmanager
def heartbeats(url: str) -> Iterator[Beats]:
    """Another daemon writes its heartbeat every 20 ms while the block runs."""
    other = Store(url)
    other.daemons.register("daemon_other", "host", 1, T0)
    beats = Beats()
    stop = threading.Event()

    def beat() -> None:
        while not stop.is_set():
            started = time.perf_counter()
            try:
                other.daemons.heartbeat("daemon_other", {}, datetime.now(UTC))
            except sa.exc.OperationalError:
                beats.failed += 1
            beats.waits.append(time.perf_counter() - started)
            stop.wait(0.02)

    thread = threading.Thread(target=beat, daemon=True)
    thread.start()
    try:
        yield beats
    finally:
        stop.set()
        thread.join()
        other.close()


def measure(url: str, items: int, operation: str, running: int) -> dict[str, Any]:
    store = Store(url)
    try:
        store.upgrade()
        fire_id = big_fire(store, items)
        if operation == "retry":
            all_failed(store, fire_id)
            if store.is_postgres:
                # A fire retried has run for a while: autovacuum has analyzed the table since its items went in.
                # (Without statistics PostgreSQL reads a chunk's failed items by (fire, status), all of them.)
                with store.engine.begin() as conn:
                    conn.execute(sa.text("ANALYZE item"))
        else:
            some_running(store, running)
        if operation == "remove-job":
            store.jobs.sync([], T0)
        timer = Timer()
        store.core.transaction_timer = timer
        with heartbeats(url) as beats:
            time.sleep(0.1)
            started = time.perf_counter()
            done = run(store, fire_id, operation)
            seconds = time.perf_counter() - started
            time.sleep(0.1)
        return {
            "done": done,
            "seconds": round(seconds, 3),
            "longest_transaction_s": round(timer.longest, 3),
            "longest_transaction_method": timer.method,
            "transactions": timer.count,
            "heartbeat_longest_ms": round(max(beats.waits) * 1000, 1),
            "heartbeats_failed": beats.failed,
        }
    finally:
        store.close()


def run(store: Store, fire_id: str, operation: str) -> int:
    """The operation as the CLI runs it: what it did (items retried, items cancelled or flagged)."""
    now: Callable[[], datetime] = lambda: T0 + timedelta(minutes=1)  # noqa: E731
    if operation == "retry":
        if bulk is None:
            retry_id = store.control.retry_failed(fire_id, now())
        else:
            retry_id = bulk.retry_fire(store, fire_id, now).fire_id
        assert retry_id is not None
        view = store.queries.fire_view(retry_id)
        assert view is not None
        return view.items_total
    if operation == "remove-job":
        if not hasattr(bulk, "retire_removed_jobs"):
            transitions = store.control.cancel_pending_items("a", "bench", now(), only_pending=True)
            return sum(t.kind == "item_cancelled" for t in transitions)
        return bulk.retire_removed_jobs(store, now)
    if bulk is None:
        kinds = [t.kind for t in store.control.cancel_pending_items(None, "bench", now(), fire_ids=[fire_id])]
        return sum(k in ("item_cancelled", "cancel_requested") for k in kinds)
    outcome = bulk.cancel_fire(store, fire_id, "bench", now)
    return outcome.kinds["item_cancelled"] + outcome.kinds["cancel_requested"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--running", type=int, default=200, help="items running when the fire is cancelled")
    parser.add_argument("--operations", default="retry,cancel,remove-job")
    add_json_option(parser)
    args = parser.parse_args()
    version = "chunked" if bulk is not None else "one transaction"
    figures: dict[str, Any] = {}
    with tables_to_stderr(args.json), tempfile.TemporaryDirectory() as tmp:
        for operation in args.operations.split(","):
            with fresh_store(args.store, Path(tmp)) as url:
                figures[operation] = measure(url, args.items, operation, args.running)
            f = figures[operation]
            print(
                f"{operation:6} {args.items:,} items ({args.store}, {version}): {f['done']:,} done in "
                f"{f['seconds']:.2f} s; longest transaction {f['longest_transaction_s']:.3f} s "
                f"({f['longest_transaction_method']}, {f['transactions']} transactions); another daemon's "
                f"heartbeat waited up to {f['heartbeat_longest_ms']:.0f} ms ({f['heartbeats_failed']} failed)"
            )
    write_json(args.json, "bulk_ops_bench", figures, store=args.store, items=args.items, version=version)


if __name__ == "__main__":
    main()
