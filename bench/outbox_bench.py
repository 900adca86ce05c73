"""Results and alerts: the cost of `results` on a big fire, and of alerts on the store's hot path. JSON output.

    python bench/outbox_bench.py [--items 100000] [--store URL]

- results: a fire of N items (each with a final attempt and an output of 3 keys, one nested) is exported as CSV
  to /dev/null by the same code as `cyberdesk-runner results`; seconds and peak Python memory (tracemalloc).
- alerts: N item_failed transitions recorded through `StoreCore.append_events` in batches of 500 (the shape of a
  burst of webhooks), with no alert destination and with one; extra CPU per item and rows written per item.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
import tracemalloc
from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa

from cyberdesk_runner.results.export import export_results
from cyberdesk_runner.store import Store
from cyberdesk_runner.store.consequences import AlertRoute, OutboxRules, alert_t
from cyberdesk_runner.store.records import JobDefinition, NewFire, Transition
from cyberdesk_runner.store.tables import attempt_t, item_t


def _big_fire(store: Store, n: int) -> str:
    now = datetime.now(UTC)
    store.jobs.sync(
        [JobDefinition("claims", "h", {"name": "claims", "sensitive_inputs": {"token": {}}}, "x")], now
    )
    fire_id = store.fires.insert(NewFire("claims", "manual", None), [], now)
    assert fire_id is not None
    with store.engine.begin() as conn:
        for start in range(0, n, 5000):
            rng = range(start, min(n, start + 5000))
            conn.execute(
                sa.insert(item_t),
                [
                    {
                        "id": f"item_{i}",
                        "fire_id": fire_id,
                        "job_name": "claims",
                        "seq": i,
                        "inputs": {"claim_id": f"C-{i}", "amount": i * 3},
                        "status": "succeeded",
                        "attempts": 1,
                        "next_attempt_at": now,
                        "created_at": now,
                    }
                    for i in rng
                ],
            )
            conn.execute(
                sa.insert(attempt_t),
                [
                    {
                        "id": f"att_{i}",
                        "item_id": f"item_{i}",
                        "fire_id": fire_id,
                        "job_name": "claims",
                        "number": 1,
                        "idempotency_key": f"k{i}",
                        "run_id": f"run-{i}",
                        "workflow_id": "wf",
                        "machine_id": f"m{i % 50}",
                        "machine_name": f"desk-{i % 50}",
                        "status": "success",
                        "created_at": now,
                        "updated_at": now,
                        "deadline_at": now,
                        "output": {"reference": f"R-{i}", "ok": True, "detail": {"pages": [1, 2, 3]}},
                    }
                    for i in rng
                ],
            )
    return fire_id


def bench_results(url: str, n: int) -> dict[str, float]:
    store = Store(url)
    store.upgrade()
    fire_id = _big_fire(store, n)
    started = time.perf_counter()
    with open("/dev/null", "w", newline="") as out:
        rows = export_results(store, fire_id, "claims", out, "csv")
    seconds = time.perf_counter() - started
    # Peak memory in a second export: tracemalloc slows Python down, so it is off while timing.
    tracemalloc.start()
    with open("/dev/null", "w", newline="") as out:
        export_results(store, fire_id, "claims", out, "csv")
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    store.close()
    return {
        "items": rows,
        "seconds": round(seconds, 2),
        "rows_per_s": round(rows / seconds),
        "peak_python_mib": round(peak / 2**20, 1),
    }


def bench_alerts(url: str, n: int) -> dict[str, float]:
    store = Store(url)
    store.upgrade()
    _big_fire(store, n)
    figures = {}
    for label, rules in (
        ("off", OutboxRules()),
        ("on", OutboxRules((AlertRoute("ops", frozenset({"item_failed"})),))),
    ):
        store.outbox.rules = rules
        cpu = time.process_time()
        for start in range(0, n, 500):
            transitions = [
                Transition("item_failed", "claims", "fire_x", f"item_{i}", data={"reason": "boom"})
                for i in range(start, min(n, start + 500))
            ]
            with store.core.write() as conn:
                store.core.append_events(conn, datetime.now(UTC), transitions)
        figures[label] = time.process_time() - cpu
    with store.engine.connect() as conn:
        alerts = conn.execute(sa.select(sa.func.count()).select_from(alert_t)).scalar_one()
    store.close()
    return {
        "items": n,
        "cpu_us_per_item_off": round(figures["off"] / n * 1e6, 1),
        "cpu_us_per_item_on": round(figures["on"] / n * 1e6, 1),
        "extra_cpu_us_per_item": round((figures["on"] - figures["off"]) / n * 1e6, 1),
        "extra_rows_per_failed_item_per_destination": alerts / n,
        "extra_statements_per_batch": 2,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--alert-items", type=int, default=20_000)
    parser.add_argument(
        "--store", help="a store URL (default: a temporary SQLite file); PostgreSQL: an empty schema"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        url = args.store or f"sqlite:///{Path(folder) / 'results.sqlite'}"
        report = {"store": url.split(":")[0], "results_csv": bench_results(url, args.items)}
        url2 = args.store or f"sqlite:///{Path(folder) / 'alerts.sqlite'}"
        report["alerts"] = bench_alerts(url2, args.alert_items)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
