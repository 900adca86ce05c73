"""Benchmark: do `fires`, `runs`, `jobs`, `show`, `watch` and `status` answer fast on a big store? (target: well
under a second with a million attempts)

Fills a store with a month of history of a busy runner (default: 20 jobs, ~100,000 fires, ~900,000 items,
1,000,000 attempts, ~1,100,000 events) by bulk inserts (executemany in big transactions), then times each
command through the real CLI (Typer's CliRunner: config loading, store opening, queries and rendering), the
median and the slowest of a few repeats.

    .venv/bin/python bench/cli_bench.py                                    # SQLite file in a temp folder
    .venv/bin/python bench/cli_bench.py --attempts 200000 --repeat 3      # quicker
    .venv/bin/python bench/cli_bench.py --postgres postgresql+psycopg://postgres@127.0.0.1:5432/test

With --postgres the same data also goes into a fresh schema of that database (dropped afterwards unless
--keep) and both stores are timed. The store is made by the real migrations (`Store.upgrade`), so the indexes
are the ones the daemon has.
"""

from __future__ import annotations

import argparse
import json
import random
import secrets
import statistics
import tempfile
import textwrap
import time
import uuid
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from psycopg.types.json import Json
from report import add_json_option, tables_to_stderr, write_json
from typer.testing import CliRunner

from cyberdesk_runner.cli import build_app
from cyberdesk_runner.store import Store
from cyberdesk_runner.store.tables import AttemptRow, DaemonRow, EventRow, FireRow, ItemRow, JobRow
from cyberdesk_runner.store.types import UTCDateTime

CHUNK = 50_000
#: Final attempt statuses and how often they occur (the rest of the weight: success).
FAILURES = {"task_failed": 0.06, "error": 0.04, "timed_out": 0.005, "cancelled": 0.005, "rejected": 0.002}
WORKFLOW_ID = "3f0c2a8e-1c1d-4c36-9a55-1e1d0c0ffee0"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--attempts", type=int, default=1_000_000, help="attempts to create (default 1,000,000)"
    )
    parser.add_argument("--jobs", type=int, default=20)
    parser.add_argument("--items-per-fire", type=int, default=9)
    parser.add_argument("--desktops", type=int, default=50)
    parser.add_argument("--days", type=int, default=30, help="the history spans this many days up to now")
    parser.add_argument(
        "--repeat", type=int, default=5, help="runs of each command (median and max reported)"
    )
    parser.add_argument(
        "--postgres", metavar="URL", help="also bench a fresh schema of this PostgreSQL database"
    )
    parser.add_argument(
        "--keep", action="store_true", help="keep the stores (SQLite file, PostgreSQL schema)"
    )
    parser.add_argument("--seed", type=int, default=1)
    add_json_option(parser)
    return parser.parse_args()


# -- the data ------------------------------------------------------------------------------------------


class History:
    """A month of a runner's history, generated chunk by chunk (never all in memory)."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.rng = random.Random(args.seed)
        self.jobs = [f"bench-job-{j:02d}" for j in range(args.jobs)]
        self.desktops = [
            (str(uuid.UUID(int=self.rng.getrandbits(128))), f"desk-{d:03d}") for d in range(args.desktops)
        ]
        self.items_per_fire = args.items_per_fire
        self.now = datetime.now(UTC)
        self.start = self.now - timedelta(days=args.days)
        # ~1.11 attempts per item (retries), so this many fires give about `attempts` attempts.
        self.fires = max(1, round(args.attempts / (self.items_per_fire * 1.11)))
        self.span = (self.now - self.start) / self.fires
        self.counts = {"fire": 0, "item": 0, "attempt": 0, "event": 0}
        #: Ids that `show` is timed with: an old failed fire and one of its items and attempts.
        self.sample: dict[str, str] = {}

    def job_rows(self) -> list[dict[str, Any]]:
        return [
            {
                "name": name,
                "definition_hash": "0" * 64,
                "source_path": f"jobs/{name}.yaml",
                "workflow_id": WORKFLOW_ID,
                "paused": False,
                "loaded_at": self.now,
                "definition": {
                    "name": name,
                    "workflow": "Bench",
                    "sensitive_inputs": {"password": {"env": "PW"}},
                },
            }
            for name in self.jobs
        ]

    def rows(self) -> Iterator[tuple[str, list[dict[str, Any]]]]:
        """("fire" | "item" | "attempt" | "event", rows) chunks, in an order the foreign keys accept."""
        buffers: dict[str, list[dict[str, Any]]] = {"fire": [], "item": [], "attempt": [], "event": []}
        for f in range(self.fires):
            self._fire(f, buffers)
            if len(buffers["attempt"]) >= CHUNK:
                yield from self._drain(buffers)
        yield from self._drain(buffers)

    def _drain(self, buffers: dict[str, list[dict[str, Any]]]) -> Iterator[tuple[str, list[dict[str, Any]]]]:
        for table in ("fire", "item", "attempt", "event"):
            if buffers[table]:
                self.counts[table] += len(buffers[table])
                yield table, buffers[table]
                buffers[table] = []

    def _fire(self, f: int, out: dict[str, list[dict[str, Any]]]) -> None:
        rng = self.rng
        job = self.jobs[f % len(self.jobs)]
        created = self.start + self.span * f
        fire_id = f"fire_{f:016x}"
        recent = self.now - created < timedelta(minutes=2)
        statuses: list[str] = []
        first_item = len(out["item"])
        for seq in range(self.items_per_fire):
            item_id = f"item_{f:012x}{seq:04x}"
            desktop_id, desktop = self.desktops[rng.randrange(len(self.desktops))]
            at = created + timedelta(seconds=rng.uniform(0, 30))
            number, status = 0, "pending"
            while True:
                number += 1
                status = "running" if recent else _final_status(rng)
                ended = None if status == "running" else at + timedelta(seconds=rng.uniform(20, 300))
                attempt_id = f"att_{f:011x}{seq:03x}{number:02x}"
                run_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
                out["attempt"].append(
                    {
                        "id": attempt_id,
                        "item_id": item_id,
                        "fire_id": fire_id,
                        "job_name": job,
                        "number": number,
                        "idempotency_key": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
                        "run_id": run_id,
                        "workflow_id": WORKFLOW_ID,
                        # The active-desktop unique index: only running attempts need distinct desktops.
                        "machine_id": desktop_id if status != "running" else str(uuid.uuid4()),
                        "machine_name": desktop,
                        "status": status,
                        "created_at": at,
                        "updated_at": ended or at,
                        "started_at": at + timedelta(seconds=1),
                        "ended_at": ended,
                        "deadline_at": at + timedelta(hours=2),
                        "create_tries": 0,
                        "cancel_requested": False,
                        "error": None
                        if status in ("success", "running")
                        else [f"bench {status} of {attempt_id}"],
                        "output": {"ok": True} if status == "success" else None,
                    }
                )
                out["event"].append(
                    {
                        "at": ended or at,
                        "kind": f"attempt_{status}",
                        "job_name": job,
                        "fire_id": fire_id,
                        "item_id": item_id,
                        "attempt_id": attempt_id,
                        "run_id": run_id,
                        "data": None,
                    }
                )
                if status in ("success", "running", "cancelled", "rejected") or number == 3:
                    break
                at = ended + timedelta(seconds=30) if ended else at
            item_status = {"success": "succeeded", "running": "running", "cancelled": "cancelled"}.get(
                status, "failed"
            )
            statuses.append(item_status)
            out["item"].append(
                {
                    "id": item_id,
                    "fire_id": fire_id,
                    "job_name": job,
                    "seq": seq,
                    "inputs": {"claim_id": f"C-{f}-{seq}", "amount": rng.randint(10, 9999)},
                    "machine_id": None,
                    "machine_name": None,
                    "status": item_status,
                    "priority": False,
                    "attempts": number,
                    "next_attempt_at": created,
                    "created_at": created,
                    "finished_at": None if item_status == "running" else at,
                    "cancel_requested": False,
                    "last_error": None if item_status in ("succeeded", "running") else f"bench {status}",
                }
            )
            if item_status == "failed" and "fire" not in self.sample and f > self.fires // 2:
                self.sample.update(fire=fire_id, item=item_id, attempt=attempt_id, run=run_id)
        fire_status = (
            "running"
            if "running" in statuses
            else "failed"
            if "failed" in statuses
            else "cancelled"
            if "cancelled" in statuses
            else "succeeded"
        )
        out["fire"].append(
            {
                "id": fire_id,
                "job_name": job,
                "trigger": "scheduled",
                "dedup_key": f"{job}@{created.isoformat()}",
                "scheduled_for": created,
                "created_at": created,
                "status": fire_status,
                "planned_at": created,
                "finished_at": None
                if fire_status == "running"
                else max(i["finished_at"] for i in out["item"][first_item:]),
                "items_total": self.items_per_fire,
                "definition_hash": "0" * 64,
            }
        )
        # executemany wants the same keys in every row.
        none = {"item_id": None, "attempt_id": None, "run_id": None}
        out["event"] += [
            {
                "at": created,
                "kind": "fire_started",
                "job_name": job,
                "fire_id": fire_id,
                "data": {"items": 9},
                **none,
            },
            {
                "at": created,
                "kind": f"fire_{fire_status}",
                "job_name": job,
                "fire_id": fire_id,
                "data": None,
                **none,
            },
        ]


def _final_status(rng: random.Random) -> str:
    draw = rng.random()
    for status, share in FAILURES.items():
        if draw < share:
            return status
        draw -= share
    return "success"


def fill(url: str, history: History) -> float:
    store = Store(url)
    store.upgrade()
    started = time.perf_counter()
    tables = {
        "fire": FireRow.__table__,
        "item": ItemRow.__table__,
        "attempt": AttemptRow.__table__,  # type: ignore[attr-defined]
        "event": EventRow.__table__,
    }  # type: ignore[attr-defined]
    with store.engine.begin() as conn:
        conn.execute(sa.insert(JobRow.__table__), history.job_rows())  # type: ignore[attr-defined]
        conn.execute(
            sa.insert(DaemonRow.__table__),
            [
                {  # type: ignore[attr-defined]
                    "id": "daemon_bench",
                    "host": "bench",
                    "pid": 1,
                    "started_at": history.start,
                    "heartbeat_at": history.now,
                    "health": {"api_ok": True, "webhook_url": None, "last_errors": []},
                }
            ],
        )
    chunks = history.rows()
    done = False
    while not done:
        with store.engine.begin() as conn:  # big transactions, but not one for everything
            if (
                conn.dialect.name == "sqlite"
            ):  # random keys (run ids, idempotency keys) thrash a small page cache
                conn.exec_driver_sql("PRAGMA cache_size = -1000000")
            pending = 0
            for table, rows in chunks:
                insert_rows(conn, tables[table], rows)
                pending += len(rows)
                if pending >= 400_000:
                    break
            else:
                done = True
        print(f"  {history.counts['attempt']:>9,} attempts", flush=True)
    store.close()
    return time.perf_counter() - started


def insert_rows(conn: sa.Connection, table: sa.Table, rows: Sequence[dict[str, Any]]) -> None:
    """executemany straight through the driver: SQLAlchemy's per-value bind processing would take most of
    the time. Values are stored exactly as the store's column types store them."""
    postgres = conn.dialect.name == "postgresql"
    columns = list(rows[0])
    convert = [_converter(table.c[name].type, postgres) for name in columns]
    mark = "%s" if postgres else "?"
    sql = f"INSERT INTO {table.name} ({', '.join(columns)}) VALUES ({', '.join([mark] * len(columns))})"
    conn.exec_driver_sql(
        sql, [tuple(f(row[c]) for f, c in zip(convert, columns, strict=True)) for row in rows]
    )


def _converter(column_type: Any, postgres: bool) -> Any:
    if isinstance(column_type, UTCDateTime):
        # SQLAlchemy's SQLite DATETIME format: compared as text, so it must match to the microsecond.
        return _same if postgres else lambda v: v and v.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
    if isinstance(column_type, sa.JSON):
        return (lambda v: v and Json(v)) if postgres else (lambda v: None if v is None else json.dumps(v))
    if isinstance(column_type, sa.Boolean) and not postgres:
        return int
    return _same


def _same(value: Any) -> Any:
    return value


# -- the timing ----------------------------------------------------------------------------------------


def commands(history: History) -> list[list[str]]:
    job, sample = history.jobs[3], history.sample
    return [
        ["fires"],
        ["fires", job],
        ["fires", "--since", "1h"],
        ["fires", "--json"],
        ["runs"],
        ["runs", "--job", job],
        ["runs", "--status", "failed"],
        ["runs", "--status", "timed_out", "--job", job],
        ["runs", "--machine", "desk-007"],
        ["runs", "--machine", "no-such-desktop"],
        ["runs", "--fire", sample["fire"]],
        ["runs", "--since", "1h", "--json"],
        ["jobs"],
        ["show", sample["fire"]],
        ["show", sample["item"]],
        ["show", sample["attempt"]],
        ["show", sample["run"], "--json"],
        ["watch", "--once"],
        ["status"],
    ]


def time_commands(config: Path, history: History, repeat: int) -> list[tuple[str, float, float, int]]:
    app, runner = build_app(), CliRunner()
    results = []
    for args in commands(history):
        seconds = []
        code = 0
        for _ in range(repeat):
            started = time.perf_counter()
            result = runner.invoke(app, [*args, "--config", str(config)])
            seconds.append(time.perf_counter() - started)
            code = result.exit_code
            if code not in (0, 1):
                raise SystemExit(f"{' '.join(args)} exited {code}:\n{result.output}")
        label = " ".join(_placeholder(a) for a in args)
        results.append((label, statistics.median(seconds), max(seconds), code))
    return results


def _placeholder(arg: str) -> str:
    """An id in a command line as the kind of id it is, so the table reads the same on every run."""
    if arg.startswith(("fire_", "item_", "att_")):
        return arg.split("_")[0].upper() + "_ID"
    return "RUN_ID" if len(arg) == 36 and arg.count("-") == 4 else arg


def write_config(folder: Path, url: str, history: History) -> Path:
    jobs = folder / "jobs"
    jobs.mkdir(exist_ok=True)
    for name in history.jobs:
        (jobs / f"{name}.yaml").write_text(
            textwrap.dedent(f"""
            name: {name}
            workflow: Bench
            target: {{pool: bench}}
            schedule: {{cron: "*/5 * * * *"}}
        """)
        )
    config = folder / f"config-{secrets.token_hex(3)}.yaml"
    config.write_text(f"store: {url}\njobs: jobs\n")
    return config


def report(
    name: str, fill_seconds: float, history: History, rows: Sequence[tuple[str, float, float, int]]
) -> dict[str, Any]:
    c = history.counts
    print(
        f"\n{name}: {c['attempt']:,} attempts, {c['item']:,} items, {c['fire']:,} fires, {c['event']:,} events "
        f"(filled in {fill_seconds:.0f} s)"
    )
    print(f"  {'command':<42} {'median':>9} {'max':>9}")
    for label, median, slowest, _ in rows:
        print(f"  {label:<42} {median * 1000:>7.0f}ms {slowest * 1000:>7.0f}ms")
    # A few repeats per command: the slowest stands where a p99 would.
    return {
        "fill_seconds": fill_seconds,
        "rows": dict(c),
        **{
            label: {"median_ms": median * 1000, "max_ms": slowest * 1000}
            for label, median, slowest, _ in rows
        },
    }


def main() -> None:
    args = parse_args()
    with tables_to_stderr(args.json):
        figures = measure(args)
    write_json(args.json, "cli_bench", figures, attempts=args.attempts, repeat=args.repeat)


def measure(args: argparse.Namespace) -> dict[str, Any]:
    figures: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="cli-bench-") as tmp:
        folder = Path(tmp)
        if args.keep:
            folder = Path(tempfile.mkdtemp(prefix="cli-bench-"))
        targets: list[tuple[str, str, str | None]] = [
            ("SQLite", f"sqlite:///{folder / 'bench.sqlite'}", None)
        ]
        if args.postgres:
            schema = f"cli_bench_{secrets.token_hex(4)}"
            admin = sa.create_engine(args.postgres)
            with admin.begin() as conn:
                conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
            sep = "&" if "?" in args.postgres else "?"
            targets.append(("PostgreSQL", f"{args.postgres}{sep}options=-csearch_path%3D{schema}", schema))
        for name, url, pg_schema in targets:
            history = History(args)
            print(f"filling {name} ...", flush=True)
            seconds = fill(url, history)
            if (
                pg_schema is not None
            ):  # PostgreSQL plans from statistics; autovacuum would gather them soon anyway
                with sa.create_engine(url).begin() as conn:
                    conn.execute(sa.text("ANALYZE"))
            config = write_config(folder, url, history)
            figures[name] = report(name, seconds, history, time_commands(config, history, args.repeat))
            if pg_schema is not None and not args.keep:
                with admin.begin() as conn:
                    conn.execute(sa.text(f'DROP SCHEMA "{pg_schema}" CASCADE'))
        if args.keep:
            print(f"\nkept in {folder}")
    return figures


if __name__ == "__main__":
    main()
