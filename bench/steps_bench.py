"""Multi-step jobs and jobs after jobs: API economy, daemon CPU per step run, and the after-job's reaction time.

    python bench/steps_bench.py [--items 500] [--desktops 100] [--after-fires 30] [--store sqlite|postgres]
                                [--speed 100] [--run-duration 30-60] [--json PATH|-]

One emulator and one daemon (`cyberdesk-runner run`, webhooks on, polls every 15 s), as separate processes on
this machine (runner_bench.py's launchers). Figures:

(steps) a job of `--items` items, three steps each (`steps:`, the second reading the first's output through a
    `$ref`), over `--desktops` desktops (job `concurrency` = desktops):
    - Cyberdesk API requests per item, from the emulator's counters, split into chain calls (the limit: 1 per
      item, for an item whose attempt succeeds), tracking (GET /v1/runs...: polls, reaper looks), the fleet
      refresh (machines, pools, workflows: every poll interval, not per item) and anything else (must be 0);
    - the daemon's CPU per step run (user + system, /proc), and step runs per second.
(after) `--after-fires` fires of an upstream job, one after the other, each followed by an `after:` job reading
    a list from its output (`items_from_output`): the time from the upstream fire's end (its `finished_at`) to
    the downstream fire's first attempt (its create call being recorded), both written by the daemon with its
    own clock; p50 and p99. The daemon is otherwise idle here.

`--json PATH` (or `-`) writes the figures as JSON (bench/report.py), with the machine's load average.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from report import add_json_option, tables_to_stderr, write_json
from runner_bench import (
    Emulator,
    Store,
    _cpu_seconds,
    _peak_rss_mb,
    _percentile,
    _start_daemons,
    _stop,
    farm,
    serve_emulator,
)

from cyberdesk_runner.store import Store as RunnerStore
from cyberdesk_runner.store.records import NewFire
from cyberdesk_runner.store.tables import attempt_t, fire_t, step_run_t

STEPS_JOB = "steps-bench"
UPSTREAM_JOB = "extract"
AFTER_JOB = "follow"


def _fixture(desktops: int) -> dict[str, Any]:
    claims = {
        "type": "object",
        "properties": {
            "claims": {
                "type": "array",
                "minItems": 2,
                "items": {"type": "object", "properties": {"claim_id": {"type": "string"}}},
            }
        },
    }
    return farm(
        desktops,
        [
            {
                "name": "Sign in",
                "prompt": "Sign in for record {n}.",
                "output_schema": {"type": "object", "properties": {"token": {"type": "string"}}},
            },
            {"name": "Update", "prompt": "Update record {n} with {token}."},
            {"name": "Sign out", "prompt": "Sign out after record {n}."},
            {"name": "Extract", "prompt": "Extract batch {batch}.", "output_schema": claims},
            {"name": "Submit", "prompt": "Submit claim {claim_id}."},
        ],
    )


def _write_jobs(work: Path, items: int, desktops: int) -> Path:
    jobs = work / "jobs"
    jobs.mkdir()
    (jobs / "records.jsonl").write_text("".join(json.dumps({"n": n}) + "\n" for n in range(items)))
    (jobs / f"{STEPS_JOB}.yaml").write_text(
        textwrap.dedent(f"""\
            name: {STEPS_JOB}
            target: {{pool: farm}}
            items_from: records.jsonl
            concurrency: {desktops}
            timeout: 2h
            steps:
              - workflow: Sign in
                alias: signin
              - workflow: Update
                inputs:
                  token: {{$ref: signin.outputs.token}}
              - workflow: Sign out
        """)
    )
    (jobs / f"{UPSTREAM_JOB}.yaml").write_text(
        textwrap.dedent(f"""\
            name: {UPSTREAM_JOB}
            workflow: Extract
            target: {{pool: farm}}
            items: [{{batch: 1}}]
        """)
    )
    (jobs / f"{AFTER_JOB}.yaml").write_text(
        textwrap.dedent(f"""\
            name: {AFTER_JOB}
            workflow: Submit
            target: {{pool: farm}}
            after: {{job: {UPSTREAM_JOB}, when: succeeded}}
            items_from_output: claims
        """)
    )
    return jobs


@contextmanager
def _emulator(work: Path, desktops: int, speed: float, run_duration: str) -> Iterator[Emulator]:
    fixture = _fixture(desktops)
    with serve_emulator(work, fixture, speed=speed, run_duration=run_duration, failure_rate=0.0) as emu:
        yield emu


def _requests(emu: Emulator) -> Counter[str]:
    stats = emu.stats()
    return Counter(
        {route: sum(codes.values()) for route, codes in stats["requests"].items() if " /v1/" in route}
    )


def _kind(route: str) -> str:
    if route.endswith("/v1/runs/chain"):
        return "chain"
    if route.startswith("GET /v1/runs"):
        return "tracking"
    if route.startswith(("GET /v1/machines", "GET /v1/pools", "GET /v1/workflows")):
        return "fleet"
    return "other"


def _wait(what: str, check: Any, timeout: float, daemon: subprocess.Popen[bytes]) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        if daemon.poll() is not None:
            raise RuntimeError(f"the daemon exited while waiting for {what}")
        try:
            value = check()
        except sa.exc.DBAPIError:
            value = None  # the tables are not there yet
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        time.sleep(0.05)


def _fire_status(engine: sa.Engine, fire_id: str) -> str | None:
    with engine.connect() as conn:
        status = conn.execute(sa.select(fire_t.c.status).where(fire_t.c.id == fire_id)).scalar()
    return status if status in ("succeeded", "failed", "cancelled") else None


def _request(url: str, job: str) -> str:
    store = RunnerStore(url)
    try:
        return store.fires.request(NewFire(job, "manual", None), datetime.now(UTC))
    finally:
        store.close()


def steps_phase(
    engine: sa.Engine, url: str, emu: Emulator, daemon: subprocess.Popen[bytes], items: int
) -> dict[str, Any]:
    before = _requests(emu)
    cpu_before = _cpu_seconds(daemon.pid)
    started = time.monotonic()
    fire_id = _request(url, STEPS_JOB)
    status = _wait("the steps fire to end", lambda: _fire_status(engine, fire_id), max(300.0, items), daemon)
    seconds = time.monotonic() - started
    cpu = _cpu_seconds(daemon.pid) - cpu_before
    requests = _requests(emu) - before
    with engine.connect() as conn:
        attempts = conn.execute(
            sa.select(sa.func.count()).select_from(attempt_t).where(attempt_t.c.fire_id == fire_id)
        ).scalar_one()
        step_runs = conn.execute(
            sa.select(sa.func.count())
            .select_from(step_run_t.join(attempt_t, attempt_t.c.id == step_run_t.c.attempt_id))
            .where(attempt_t.c.fire_id == fire_id, step_run_t.c.status == "success")
        ).scalar_one()
    by_kind: Counter[str] = Counter()
    for route, n in requests.items():
        by_kind[_kind(route)] += n
    return {
        "fire_status": status,
        "items": items,
        "attempts": attempts,
        "step_runs_succeeded": step_runs,
        "seconds": seconds,
        "step_runs_per_s": step_runs / seconds,
        "api_requests_per_item": sum(requests.values()) / items,
        "chain_calls_per_item": by_kind["chain"] / items,
        "tracking_requests_per_item": by_kind["tracking"] / items,
        "fleet_refresh_requests": by_kind["fleet"],
        "other_requests": by_kind["other"],
        "other_routes": {r: n for r, n in requests.items() if _kind(r) == "other"},
        "daemon_cpu_per_step_run_ms": cpu / max(step_runs, 1) * 1000,
        "daemon_cpu_s": cpu,
    }


def _end_to_first_create_ms(engine: sa.Engine, upstream: str) -> list[float] | None:
    """[ms from the upstream fire's end to its downstream fire's first attempt], or None before that exists."""
    with engine.connect() as conn:
        ended = conn.execute(sa.select(fire_t.c.finished_at).where(fire_t.c.id == upstream)).scalar()
        created = conn.execute(
            sa.select(sa.func.min(attempt_t.c.created_at))
            .select_from(attempt_t.join(fire_t, fire_t.c.id == attempt_t.c.fire_id))
            .where(fire_t.c.upstream_fire_id == upstream)
        ).scalar()
    if ended is None or created is None:
        return None
    return [(created - ended).total_seconds() * 1000]


def after_phase(engine: sa.Engine, url: str, daemon: subprocess.Popen[bytes], fires: int) -> dict[str, Any]:
    latencies: list[float] = []
    for _ in range(fires):
        upstream = _request(url, UPSTREAM_JOB)
        _wait("the upstream fire to end", functools.partial(_fire_status, engine, upstream), 120, daemon)
        [latency] = _wait(
            "the downstream fire's first create",
            functools.partial(_end_to_first_create_ms, engine, upstream),
            120,
            daemon,
        )
        latencies.append(latency)
        ended = _wait(
            "the downstream fire to end", functools.partial(_downstream_status, engine, upstream), 120, daemon
        )
        if ended != "succeeded":
            raise RuntimeError(f"a downstream fire ended {ended}")
    return {
        "fires": fires,
        "end_to_first_create_p50_ms": _percentile(latencies, 0.5),
        "end_to_first_create_p99_ms": _percentile(latencies, 0.99),
        "end_to_first_create_max_ms": max(latencies),
    }


def _downstream_status(engine: sa.Engine, upstream: str) -> str | None:
    with engine.connect() as conn:
        status = conn.execute(
            sa.select(fire_t.c.status).where(fire_t.c.upstream_fire_id == upstream)
        ).scalar()
    return status if status in ("succeeded", "failed", "cancelled", "skipped") else None


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--items", type=int, default=500)
    parser.add_argument("--desktops", type=int, default=100)
    parser.add_argument("--after-fires", type=int, default=30)
    parser.add_argument("--store", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--speed", type=float, default=100.0, help="the emulator's speed (default 100)")
    parser.add_argument(
        "--run-duration", default="30-60", help="each step's simulated seconds (default 30-60)"
    )
    parser.add_argument("--keep", action="store_true", help="keep the work folder (logs, store)")
    add_json_option(parser)
    args = parser.parse_args()

    load_before = os.getloadavg()
    work = Path(tempfile.mkdtemp(prefix="steps-bench-"))
    figures: dict[str, Any] = {}
    store = Store.make(args.store, work)
    engine = sa.create_engine(store.url)
    try:
        with (
            tables_to_stderr(args.json),
            _emulator(work, args.desktops, args.speed, args.run_duration) as emu,
        ):
            jobs = _write_jobs(work, args.items, args.desktops)
            [daemon] = _start_daemons(
                work, emu, store, jobs, 1, poll_only=False, poll_interval="15s", log_level="warning"
            )
            try:

                def ready() -> bool:
                    with engine.connect() as conn:
                        known = conn.execute(sa.text("SELECT count(*) FROM job")).scalar_one()
                        daemons = conn.execute(
                            sa.text("SELECT count(*) FROM daemon WHERE stopped_at IS NULL")
                        ).scalar_one()
                    return bool(known == 3 and daemons == 1)

                _wait("the daemon to start", ready, 60, daemon)
                time.sleep(1.0)  # the first fleet refresh (workflows resolved) before the first fire
                figures["steps"] = steps_phase(engine, store.url, emu, daemon, args.items)
                figures["after"] = after_phase(engine, store.url, daemon, args.after_fires)
                figures["steps"]["daemon_peak_rss_mb"] = _peak_rss_mb(daemon.pid)
            finally:
                _stop(daemon)
            s, a = figures["steps"], figures["after"]
            print(
                f"steps: {s['items']} items x 3 steps over {args.desktops} desktops ({args.store}): "
                f"{s['seconds']:.1f}s, {s['step_runs_per_s']:.0f} step runs/s, fire {s['fire_status']}\n"
                f"  API requests per item {s['api_requests_per_item']:.3f}: chain calls "
                f"{s['chain_calls_per_item']:.3f}, tracking {s['tracking_requests_per_item']:.3f}; "
                f"fleet refresh {s['fleet_refresh_requests']} in all; other {s['other_requests']}\n"
                f"  daemon CPU per step run {s['daemon_cpu_per_step_run_ms']:.2f} ms "
                f"(peak RSS {s['daemon_peak_rss_mb']:.0f} MB)\n"
                f"after: upstream fire end -> downstream first create over {a['fires']} fires: "
                f"p50 {a['end_to_first_create_p50_ms']:.0f} ms, p99 {a['end_to_first_create_p99_ms']:.0f} ms"
            )
    finally:
        engine.dispose()
        store.drop()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
        else:
            print(f"work folder: {work}", file=sys.stderr)
    write_json(
        args.json,
        "steps_bench",
        figures,
        store=args.store,
        desktops=args.desktops,
        speed=args.speed,
        run_duration=args.run_duration,
        loadavg_before=list(load_before),
        loadavg_after=list(os.getloadavg()),
    )


if __name__ == "__main__":
    main()
