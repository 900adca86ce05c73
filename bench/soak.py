"""Chaos soak: several daemons on one store, an emulator that fails and drops answers, daemons killed and restarted
again and again; then every exactly-once promise is checked against the emulator's own records.

    python bench/soak.py [--minutes 3] [--daemons 3] [--store postgres|sqlite] [--kill-every 8]
                         [--rate-limit 0.03] [--server-errors 0.03] [--drop-responses 0.03] [--failure-rate 0.1]

The work, all at once and for `--minutes`:
- `bulk`: `--items` items over the `farm` pool, retried up to 3 times, triggered again every `--retrigger` seconds;
- `tick`: one run every second (cron, overlap allow);
- `sweep`: one run on every Boston desktop (`match`, `fan_out: machines`) every 5 s, overlap forbid;
- `slow`: runs that outlast the job's 2 s timeout, so they are cancelled through the API and retried once.
Meanwhile some desktops disconnect and come back (their runs are interrupted), the emulator answers some calls
with 429 or 5xx and drops the answer of some applied calls, and every `--kill-every` seconds one daemon is killed
(SIGKILL, or SIGTERM one time in three) and restarted after up to 2 s. Only a daemon that has been up (registered
in the store) for `--least-up` seconds is stopped: on a loaded machine starting takes longer than `--kill-every`,
and daemons stopped again while starting, or as soon as they are up, would get no work done. Every `--db-drops-every` seconds all the daemons' PostgreSQL connections
are ended (as a failover would), and every `--outage-every` seconds the API answers 503 to everything for
`--outage-seconds`. With `--store sqlite` there is one daemon, killed and restarted the same way. `chaos.log` in
the work directory says when each disruption came.

At the end the schedules are paused and the daemons left alone until nothing is in flight, for as long as the work
moves: the drain gives up only after `--stall` seconds without an item, attempt or fire ending (a loaded machine
drains slowly; a stuck daemon does not drain at all). Then the daemons are stopped (SIGTERM), so the store and the
emulator hold still while they are compared, and the script checks, exiting 1 on any violation:
- no Idempotency-Key made two runs, and every run in the emulator is an attempt in the store (no stray run); a run
  whose attempt is still `creating` (its create call's answer not recorded) is told apart from a run no attempt
  has the key of;
- no desktop ever ran two of our runs at once, and no item succeeded twice (from the emulator's statuses);
- every item and attempt ended, none was cancelled (nobody asked), and the store's statuses agree with the
  emulator's (a timed-out attempt's run was cancelled);
- every schedule slot fired at most once, and no two `sweep` fires overlapped;
- a daemon stopped with SIGTERM exited within 10 s, no daemon exited unless it was stopped, and no daemon
  logged a traceback.
The work directory keeps, besides the logs, what the checks read (emulator-runs.json, attempts.json) and the event
log of every attempt or item a check names (findings.json), so a failure is read, not run again.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa

# Run as a script, its folder is on sys.path: the runner benchmark's process helpers are shared, not copied.
from report import add_json_option, tables_to_stderr, write_json
from runner_bench import WEBHOOK_SECRET, Store, _cli, _free_port, _stop

API_KEY = "cd_soak_key"
SPEED = 300.0  # a 30-90 s simulated run takes 0.1-0.3 s
DESKTOPS = 40
BOSTON = 12  # desktops with site: boston (the sweep's target)
FLAKY = 6  # desktops that disconnect now and then
TERM_GRACE = 10.0


def _fleet(minutes: float) -> dict[str, Any]:
    machines: list[dict[str, Any]] = []
    horizon = (minutes * 60 + 600) * SPEED  # simulated seconds, past the drain
    for n in range(DESKTOPS):
        machine: dict[str, Any] = {
            "name": f"farm-{n:02d}",
            "pools": ["farm"],
            "machine_parameters": {"site": "boston" if n < BOSTON else "chicago"},
        }
        if n >= DESKTOPS - FLAKY:
            # Down for 3 s in every 20 s, staggered: runs there are interrupted and retried elsewhere.
            offset = (n % FLAKY) * 3 + 5
            downs = [(offset + 20 * k) * SPEED for k in range(int(horizon / SPEED / 20) + 1)]
            machine["disconnect_at"] = downs
            machine["reconnect_at"] = [d + 3 * SPEED for d in downs]
        machines.append(machine)
    return {
        "pools": [{"name": "farm"}],
        "machines": machines,
        "workflows": [
            {"name": "Bulk work", "prompt": "Process record {n}."},
            {"name": "Tick", "prompt": "Check the portal."},
            {"name": "Sweep", "prompt": "Check the desktop at {site}."},
            # 1,500 simulated seconds: 5 s here, past the slow job's 2 s timeout.
            {"name": "Slow work", "prompt": "Take your time.", "run_duration": "1500-1500"},
        ],
    }


JOBS = {
    "bulk": """
        name: bulk
        workflow: Bulk work
        target: {pool: farm}
        items_from: bulk.jsonl
        concurrency: 30
        timeout: 10m
        retry: {max_attempts: 3, backoff: 1s, max_backoff: 4s}
    """,
    "tick": """
        name: tick
        workflow: Tick
        target: {pool: farm}
        items: [{kind: tick}]
        overlap: allow
        schedule: {cron: "* * * * * *"}
    """,
    "sweep": """
        name: sweep
        workflow: Sweep
        target: {match: {site: boston}}
        fan_out: machines
        overlap: forbid
        retry: {max_attempts: 2, backoff: 1s}
        schedule: {interval: 5s}
    """,
    "slow": """
        name: slow
        workflow: Slow work
        target: {pool: farm}
        items: [{k: 1}, {k: 2}]
        timeout: 2s
        overlap: allow
        retry: {max_attempts: 2, backoff: 1s}
        schedule: {interval: 15s}
    """,
}
SCHEDULED = ("tick", "sweep", "slow")


@dataclass
class Daemon:
    config: Path
    log: Path
    process: subprocess.Popen[bytes] | None = None
    starts: int = 0

    def start(self, work: Path, chaos: Chaos | None = None) -> None:
        self.starts += 1
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                _cli("run", "--config", str(self.config)), cwd=work, stdout=out, stderr=out
            )
        if chaos is not None:
            chaos.note(f"started {self.log.stem} (pid {self.process.pid})")


@dataclass
class Chaos:
    kills: int = 0
    terms: int = 0
    slowest_term: float = 0.0
    connections_dropped: int = 0
    outages: int = 0
    #: Seconds the stops waited for a daemon up long enough (starting is slow on a loaded machine).
    stops_waited: float = 0.0
    #: What went wrong while the soak ran: daemons that exited on their own, work left open after the drain.
    problems: list[str] = field(default_factory=list)
    #: Runs that ended past their deadline and were relabelled `cancelled` by the timeout's late cancel.
    late_cancels: list[str] = field(default_factory=list)
    #: Where each disruption is written down with its time (chaos.log in the work directory).
    log: Path | None = None

    def note(self, what: str) -> None:
        if self.log is not None:
            with self.log.open("a") as out:
                out.write(f"{datetime.now(UTC).strftime('%H:%M:%S.%f')[:-3]} {what}\n")


def _start_emulator(work: Path, args: argparse.Namespace) -> tuple[subprocess.Popen[bytes], str]:
    fixture = work / "fleet.json"
    fixture.write_text(json.dumps(_fleet(args.minutes)))  # JSON is YAML
    command = _cli(
        "emulator",
        *("--port", "0", "--speed", str(SPEED), "--run-duration", "30-90", "--seed", str(args.seed)),
        *("--fixture", str(fixture), "--api-key", API_KEY, "--failure-rate", str(args.failure_rate)),
        *("--rate-limit", str(args.rate_limit), "--server-errors", str(args.server_errors)),
        *("--drop-responses", str(args.drop_responses)),
    )
    process = subprocess.Popen(
        command, cwd=work, stdout=subprocess.PIPE, stderr=(work / "emulator.log").open("ab")
    )
    assert process.stdout is not None
    banner = process.stdout.readline().decode()
    match = re.search(r"listening on (http://\S+)", banner)
    if not match:
        _stop(process)
        raise RuntimeError(f"the emulator did not start: {banner!r} (see {work / 'emulator.log'})")
    return process, match.group(1)


def _write_jobs(work: Path, items: int) -> Path:
    jobs = work / "jobs"
    jobs.mkdir()
    for name, text in JOBS.items():
        (jobs / f"{name}.yaml").write_text(textwrap.dedent(text))
    (jobs / "bulk.jsonl").write_text("".join(json.dumps({"n": n}) + "\n" for n in range(items)))
    return jobs


def _daemons(
    work: Path, base_url: str, store_url: str, count: int, args: argparse.Namespace, http: httpx.Client
) -> list[Daemon]:
    webhooks_to = args.webhooks_to
    daemons = []
    for n in range(count):
        port = _free_port()
        receives = webhooks_to == "each" or (webhooks_to == "first" and n == 0)
        webhook = f'webhook: {{listen: "127.0.0.1:{port}", secret: "{WEBHOOK_SECRET}"}}' if receives else ""
        config = work / f"daemon-{n}.yaml"
        config.write_text(
            textwrap.dedent(f"""
            cyberdesk: {{api_key: {API_KEY}, base_url: "{base_url}"}}
            store: "{store_url}"
            jobs: jobs
            server: {{listen: "127.0.0.1:0"}}
            tracking:
              poll_interval: {args.poll_interval}
              {webhook}
            dispatch: {{lease: 5s}}
            log: {{level: info}}
        """)
        )
        if receives:
            # With `each`, every endpoint takes every delivery: news about other daemons' runs, repeats, and
            # deliveries the emulator retries while a daemon is down. With `first`, one endpoint takes all.
            response = http.post(
                "/_emulator/webhooks",
                json={"url": f"http://127.0.0.1:{port}/webhooks/cyberdesk", "secret": WEBHOOK_SECRET},
            )
            response.raise_for_status()
        daemons.append(Daemon(config, work / f"daemon-{n}.log"))
    return daemons


def _trigger(store_url: str, job: str) -> None:
    from cyberdesk_runner.store import Store as RunnerStore
    from cyberdesk_runner.store.records import NewFire

    store = RunnerStore(store_url)
    try:
        store.fires.request(NewFire(job, "manual", None), datetime.now(UTC))
    finally:
        store.close()


def _pause_schedules(store_url: str) -> None:
    from cyberdesk_runner.store import Store as RunnerStore

    store = RunnerStore(store_url)
    try:
        for job in SCHEDULED:
            store.jobs.set_paused(job, True, datetime.now(UTC))
    finally:
        store.close()


def _check_alive(daemons: list[Daemon], chaos: Chaos) -> None:
    for n, daemon in enumerate(daemons):
        if daemon.process is not None and daemon.process.poll() is not None:
            chaos.problems.append(f"daemon {n} exited with {daemon.process.returncode} (see {daemon.log})")
            daemon.start(daemon.config.parent, chaos)


def _hit(daemon: Daemon, rng: random.Random, chaos: Chaos) -> None:
    assert daemon.process is not None
    started = time.monotonic()
    if rng.random() < 1 / 3:
        chaos.terms += 1
        daemon.process.send_signal(signal.SIGTERM)
        try:
            daemon.process.wait(TERM_GRACE * 3)
        except subprocess.TimeoutExpired:
            daemon.process.kill()
            daemon.process.wait()
        chaos.slowest_term = max(chaos.slowest_term, time.monotonic() - started)
        chaos.note(
            f"SIGTERM {daemon.log.stem} (pid {daemon.process.pid}): gone in {time.monotonic() - started:.1f} s"
        )
    else:
        chaos.kills += 1
        os.kill(daemon.process.pid, signal.SIGKILL)
        daemon.process.wait()
        chaos.note(f"SIGKILL {daemon.log.stem} (pid {daemon.process.pid})")
    daemon.process = None


def _up(engine: sa.Engine, least: float) -> frozenset[int]:
    """The processes of the daemons that have been up (registered: store ready, jobs loaded; not stopped) for at
    least `least` seconds."""
    from cyberdesk_runner.store.tables import DaemonRow

    daemon_t = DaemonRow.__table__  # type: ignore[attr-defined]
    since = datetime.now(UTC) - timedelta(seconds=least)
    with engine.connect() as conn:
        return frozenset(
            conn.execute(
                sa.select(daemon_t.c.pid).where(
                    daemon_t.c.stopped_at.is_(None), daemon_t.c.started_at <= since
                )
            ).scalars()
        )


def _drop_connections(engine: sa.Engine, application_name: str) -> int:
    """End every PostgreSQL connection of the daemons (store pools and LISTEN), as a failover would."""
    with engine.begin() as conn:
        return len(
            conn.execute(
                sa.text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = :name"
                ),
                {"name": application_name},
            ).all()
        )


def _wait_until_registered(engine: sa.Engine, count: int, limit: float = 180.0) -> None:
    """Until `count` daemons have registered (so the schema exists and the jobs are recorded): a fixed sleep
    was too short on a loaded machine, where the first trigger then met a store with no tables."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        with engine.connect() as conn:
            if sa.inspect(conn).has_table("daemon"):
                running = conn.execute(sa.text("SELECT count(*) FROM daemon WHERE stopped_at IS NULL"))
                if running.scalar_one() >= count:
                    return
        time.sleep(0.5)
    raise SystemExit(f"soak: {count} daemon(s) did not register within {limit:.0f}s; see the logs")


def _work(engine: sa.Engine) -> tuple[int, int]:
    """(items and fires still open, items, attempts and fires ended): the second only grows while work moves."""
    with engine.connect() as conn:
        open_, ended = conn.execute(
            sa.text(
                "SELECT (SELECT count(*) FROM item WHERE status IN ('pending', 'running'))"
                " + (SELECT count(*) FROM fire WHERE status IN ('requested', 'running')),"
                " (SELECT count(*) FROM item WHERE status NOT IN ('pending', 'running'))"
                " + (SELECT count(*) FROM attempt WHERE ended_at IS NOT NULL)"
                " + (SELECT count(*) FROM fire WHERE status NOT IN ('requested', 'running'))"
            )
        ).one()
    return int(open_), int(ended)


def _drain(engine: sa.Engine, daemons: list[Daemon], chaos: Chaos, stall: float) -> int:
    """Wait until nothing is open, for as long as something keeps ending; returns what is still open.

    How long a drain takes depends on the backlog the chaos left and on the machine's load (two cores shared
    with others: a tenth of the usual pace is common), so a fixed limit fails a sound runner on a busy machine.
    No progress for `stall` seconds is what says the daemons are stuck."""
    started = last_change = last_print = time.monotonic()
    left, ended = _work(engine)
    while left:
        _check_alive(daemons, chaos)
        time.sleep(0.5)
        now = time.monotonic()
        left, now_ended = _work(engine)
        if now_ended != ended:
            ended, last_change = now_ended, now
        elif now - last_change > stall:
            chaos.problems.append(
                f"{left} items or fires still open after {now - started:.0f} s of drain, nothing ended in the "
                f"last {stall:.0f} s (see findings.json)"
            )
            break
        if now - last_print >= 10:
            last_print = now
            print(f"draining: {left} open, {ended} ended, {now - started:.0f} s", flush=True)
    print(f"drained in {time.monotonic() - started:.0f} s; {left} open", flush=True)
    return left


def _stop_daemons(daemons: list[Daemon], chaos: Chaos) -> None:
    """Stop every daemon (SIGTERM, all at once) before the checks: nothing changes the store or calls the API
    while the two are compared, so a run created between the two reads is not taken for a stray."""
    running = [d for d in daemons if d.process is not None]
    started = time.monotonic()
    for daemon in running:
        assert daemon.process is not None
        daemon.process.send_signal(signal.SIGTERM)
    for daemon in running:
        assert daemon.process is not None
        try:
            daemon.process.wait(max(TERM_GRACE * 3 - (time.monotonic() - started), 0.1))
        except subprocess.TimeoutExpired:
            daemon.process.kill()
            daemon.process.wait()
        daemon.process = None
    chaos.slowest_term = max(chaos.slowest_term, time.monotonic() - started)


def _tracebacks(daemons: list[Daemon]) -> list[str]:
    """A stop, a kill or a dropped connection is routine here: none of them may leave a traceback in a log."""
    found = []
    for daemon in daemons:
        text = daemon.log.read_text(errors="replace")
        if (count := text.count("Traceback (most recent call last)")) > 0:
            found.append(f"{count} tracebacks in {daemon.log}")
    return found


def _verify(
    engine: sa.Engine, runs: dict[str, Any], stats: dict[str, Any], chaos: Chaos, work: Path
) -> list[str]:
    from cyberdesk_runner.store.tables import AttemptRow, FireRow, ItemRow

    attempt_t, item_t, fire_t = AttemptRow.__table__, ItemRow.__table__, FireRow.__table__  # type: ignore[attr-defined]
    with engine.connect() as conn:
        attempts = conn.execute(sa.select(attempt_t).order_by(attempt_t.c.created_at)).all()
        items = conn.execute(sa.select(item_t.c.id, item_t.c.job_name, item_t.c.status)).all()
        fires = conn.execute(
            sa.select(
                fire_t.c.job_name,
                fire_t.c.status,
                fire_t.c.scheduled_for,
                fire_t.c.created_at,
                fire_t.c.finished_at,
            )
        ).all()
    problems: list[str] = []
    timeline = {r["id"]: r for r in runs["runs"]}
    if stats["duplicates"]:
        problems.append(f"Idempotency-Keys that made two runs: {stats['duplicates'][:5]}")
    strays, unrecorded = _unknown_runs(timeline, attempts)
    if strays:
        problems.append(f"{len(strays)} runs in the emulator that no attempt records: {strays[:5]}")
    if unrecorded:
        problems.append(
            f"{len(unrecorded)} runs made by attempts still creating (created, answer not recorded): {unrecorded[:5]}"
        )
    if runs["overlaps"]:
        problems.append(f"desktops that ran two of our runs at once: {runs['overlaps'][:5]}")
    outcome = _outcomes(timeline, attempts, chaos)
    successes = Counter(a.item_id for a in attempts if a.run_id and outcome.get(a.run_id) == "success")
    twice = [item for item, n in successes.items() if n > 1]
    if twice:
        problems.append(f"items that succeeded twice: {twice[:5]}")
    open_items = [i.id for i in items if i.status not in ("succeeded", "failed", "cancelled")]
    open_attempts = [
        a for a in attempts if a.status in ("creating", "scheduling", "running", "running_checks")
    ]
    if open_items or open_attempts:
        problems.append(f"{len(open_items)} items and {len(open_attempts)} attempts did not end")
    # Nobody cancels anything here: a cancelled item or attempt is a timeout or a failure taken for a user's cancel.
    cancelled = [i.id for i in items if i.status == "cancelled"] + [
        a.run_id for a in attempts if a.status == "cancelled"
    ]
    if cancelled:
        problems.append(f"{len(cancelled)} items or attempts cancelled though nobody asked: {cancelled[:5]}")
    for item in items:
        if (item.status == "succeeded") != (successes[item.id] == 1):
            problems.append(f"item {item.id} is {item.status} with {successes[item.id]} successful runs")
    expected = {"timed_out": "cancelled"}
    disagree = [
        (a.run_id, a.status, timeline[a.run_id]["status"])
        for a in attempts
        if a.run_id in timeline and expected.get(a.status, a.status) != outcome[a.run_id]
    ]
    if disagree:
        problems.append(
            f"{len(disagree)} attempts disagree with the emulator (run, store, emulator): {disagree[:5]}"
        )
    slots = Counter((f.job_name, f.scheduled_for) for f in fires if f.scheduled_for is not None)
    if any(n > 1 for n in slots.values()):
        problems.append(f"slots fired twice: {[s for s, n in slots.items() if n > 1][:5]}")
    problems += _sweeps_overlapping(fires)
    if chaos.slowest_term > TERM_GRACE:
        problems.append(f"a daemon took {chaos.slowest_term:.1f} s to stop on SIGTERM")
    problems += chaos.problems
    _keep_evidence(engine, work, runs, attempts, strays + unrecorded, open_items, open_attempts)
    return problems


def _outcomes(timeline: dict[str, Any], attempts: Sequence[Any], chaos: Chaos) -> dict[str, str]:
    """Each run's outcome by the emulator: its status, except for a run relabelled `cancelled` by a timeout's cancel
    that landed after the run had ended (then its last execution's status, which the store must have).

    The reaper looks at an overdue run before cancelling it, but the API has no conditional cancel: a run that
    ends between the look and the cancel is relabelled (the emulator, like the API, lets PATCH status relabel a
    finished run). On a loaded machine the gap between the two calls is seconds. Counted in `late_cancels`."""
    by_run = {a.run_id: a for a in attempts if a.run_id}
    outcome = {}
    for run_id, run in timeline.items():
        outcome[run_id] = run["status"]
        attempt = by_run.get(run_id)
        last = run["executions"][-1] if run["executions"] else None
        if (
            run["status"] == "cancelled"
            and attempt is not None
            and not attempt.cancel_requested
            and last is not None
            and last["status"] not in ("cancelled", None)
            and last["ended_at"] is not None
            and datetime.fromisoformat(last["ended_at"]) > attempt.deadline_at
            and attempt.status == last["status"]
        ):
            outcome[run_id] = last["status"]
            chaos.late_cancels.append(run_id)
    return outcome


def _sweeps_overlapping(fires: Sequence[Any]) -> list[str]:
    sweeps = sorted(
        (f.created_at, f.finished_at) for f in fires if f.job_name == "sweep" and f.status != "skipped"
    )
    for (_, finished), (started, _) in zip(sweeps, sweeps[1:], strict=False):
        if finished is None or started < finished:
            return [f"a sweep fire started at {started} while the one before ran until {finished}"]
    return []


def _unknown_runs(timeline: dict[str, Any], attempts: Sequence[Any]) -> tuple[list[str], list[str]]:
    """The emulator's runs that no attempt records: (strays, which no attempt can ever record; runs of attempts
    still `creating`, whose create call's answer is not recorded yet), told apart by the run's Idempotency-Key."""
    known = {a.run_id for a in attempts if a.run_id}
    by_key = {a.idempotency_key: a for a in attempts}
    strays: list[str] = []
    unrecorded: list[str] = []
    for run_id in sorted(set(timeline) - known):
        maker = by_key.get(timeline[run_id].get("idempotency_key") or "")
        (unrecorded if maker is not None and maker.status == "creating" else strays).append(run_id)
    return strays, unrecorded


def _keep_evidence(
    engine: sa.Engine,
    work: Path,
    runs: dict[str, Any],
    attempts: Sequence[Any],
    strays: list[str],
    open_items: list[str],
    open_attempts: list[Any],
) -> None:
    """Write what the checks read, and the event log of what they name, into the work directory (a PostgreSQL
    store is dropped at the end): a failure is read from these files instead of being run again."""
    from cyberdesk_runner.store.tables import EventRow

    event_t = EventRow.__table__  # type: ignore[attr-defined]
    (work / "emulator-runs.json").write_text(json.dumps(runs, default=str))
    (work / "attempts.json").write_text(json.dumps([a._asdict() for a in attempts], default=str))
    keys = {r["id"]: r.get("idempotency_key") for r in runs["runs"]}
    by_key = {a.idempotency_key: a for a in attempts}
    named_attempts = [a.id for a in open_attempts] + [
        by_key[k].id for r in strays if (k := keys.get(r)) and k in by_key
    ]
    with engine.connect() as conn:
        events = conn.execute(
            sa.select(event_t)
            .where(
                sa.or_(
                    event_t.c.run_id.in_(strays),
                    event_t.c.attempt_id.in_(named_attempts[:500]),
                    event_t.c.item_id.in_(open_items[:500]),
                    event_t.c.kind == "unknown_run",
                )
            )
            .order_by(event_t.c.id)
        ).all()
    findings = {
        "strays": [
            {
                "run": timeline_run,
                "attempt": by_key[k]._asdict()
                if (k := timeline_run.get("idempotency_key")) in by_key
                else None,
            }
            for timeline_run in runs["runs"]
            if timeline_run["id"] in strays
        ],
        "open_items": open_items[:500],
        "open_attempts": [a._asdict() for a in open_attempts[:500]],
        "events": [e._asdict() for e in events],
    }
    (work / "findings.json").write_text(json.dumps(findings, default=str, indent=1))


@dataclass
class _Every:
    """A disruption repeated every `seconds` (never when None); an action that could not act yet says False, and is
    tried again shortly."""

    seconds: float | None
    action: Callable[[], bool]
    due: float = 0.0


def _chaos(
    args: argparse.Namespace,
    daemons: list[Daemon],
    fire_bulk: Callable[[], None],
    drop_connections: Callable[[], int] | None,
    http: httpx.Client,
    chaos: Chaos,
    up: Callable[[], frozenset[int]],
) -> int:
    """Fire the bulk job, stop and restart daemons, end their database connections and take the API down, for
    `--minutes`; returns how many times the bulk job fired. Every daemon is running again at the end.

    Only a daemon that has been up a while (`up`: registered `--least-up` seconds ago) is stopped: on a loaded
    machine a daemon can take longer to start than `--kill-every`, and stopping it again as soon as it starts
    would leave the work undone."""
    rng = random.Random(args.seed)
    later: list[tuple[float, Callable[[], None]]] = []  # restarts and the ends of outages
    fires = 0
    waiting_since: float | None = None  # since when a stop waits for a daemon to be up

    def bulk() -> bool:
        nonlocal fires
        started = time.monotonic()
        fire_bulk()
        fires += 1
        chaos.note(f"bulk fired ({time.monotonic() - started:.1f} s)")
        return True

    def hit() -> bool:
        nonlocal waiting_since
        running = up()
        victims = [d for d in daemons if d.process is not None and d.process.pid in running]
        if not victims:
            waiting_since = waiting_since or time.monotonic()
            return False
        if waiting_since is not None:
            chaos.stops_waited += time.monotonic() - waiting_since
            chaos.note(f"a stop waited {time.monotonic() - waiting_since:.1f} s for a daemon up long enough")
            waiting_since = None
        victim = rng.choice(victims)
        _hit(victim, rng, chaos)
        later.append(
            (time.monotonic() + rng.uniform(0, 2), lambda: victim.start(victim.config.parent, chaos))
        )
        return True

    def drop() -> bool:
        assert drop_connections is not None
        chaos.connections_dropped += drop_connections()
        chaos.note("PostgreSQL connections ended")
        return True

    def outage() -> bool:
        # Every API call answers 503 for a while (the emulator's control plane and webhooks go on).
        http.post("/_emulator/faults", json={"server_errors": 1.0}).raise_for_status()
        chaos.outages += 1
        chaos.note("API outage begins")
        restore = {"server_errors": args.server_errors}
        later.append((time.monotonic() + args.outage_seconds, lambda: _set_faults(http, restore)))
        return True

    started = time.monotonic()
    disruptions = [
        _Every(args.retrigger, bulk, started),
        _Every(args.kill_every, hit, started + args.kill_every),
        _Every(args.db_drops_every if drop_connections and args.db_drops_every > 0 else None, drop),
        _Every(args.outage_every or None, outage),
    ]
    for d in disruptions[2:]:
        d.due = started + (d.seconds or 0)
    while (now := time.monotonic()) < started + args.minutes * 60:
        for d in disruptions:
            if d.seconds is not None and now >= d.due:
                d.due = now + (d.seconds if d.action() else 0.5)
        for entry in [e for e in later if e[0] <= now]:
            later.remove(entry)
            entry[1]()
        _check_alive(daemons, chaos)
        time.sleep(0.1)
    for _, action in later:
        action()
    return fires


def _set_faults(http: httpx.Client, faults: dict[str, float]) -> None:
    http.post("/_emulator/faults", json=faults).raise_for_status()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--minutes", type=float, default=3.0)
    parser.add_argument("--store", choices=["postgres", "sqlite"], default="postgres")
    parser.add_argument("--daemons", type=int, default=3, help="daemons on PostgreSQL (SQLite: always one)")
    parser.add_argument("--items", type=int, default=1500)
    parser.add_argument("--retrigger", type=float, default=30.0, help="seconds between fires of the bulk job")
    parser.add_argument("--kill-every", type=float, default=8.0, help="seconds between two daemon stops")
    parser.add_argument(
        "--least-up",
        type=float,
        default=4.0,
        help="seconds a daemon is up (registered) before it may be stopped",
    )
    parser.add_argument("--rate-limit", type=float, default=0.03)
    parser.add_argument("--server-errors", type=float, default=0.03)
    parser.add_argument("--drop-responses", type=float, default=0.03)
    parser.add_argument("--failure-rate", type=float, default=0.1)
    parser.add_argument(
        "--webhooks-to", choices=["each", "first", "none"], default="each", help="which daemons get webhooks"
    )
    parser.add_argument(
        "--db-drops-every",
        type=float,
        default=20.0,
        help="seconds between two ends of every daemon's PostgreSQL connections (0: never)",
    )
    parser.add_argument(
        "--poll-interval", default="2s", help="the daemons' poll interval (poll-only runs need a short one)"
    )
    parser.add_argument(
        "--outage-every", type=float, default=45.0, help="seconds between two API outages (0: never)"
    )
    parser.add_argument("--outage-seconds", type=float, default=5.0, help="how long an API outage lasts")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--stall",
        type=float,
        default=90.0,
        help="the drain gives up after this many seconds in which nothing ended (it waits as long as work moves)",
    )
    add_json_option(parser)
    args = parser.parse_args()
    with tables_to_stderr(args.json):
        figures, problems = soak(args)
    write_json(args.json, "soak", figures, minutes=args.minutes, store=args.store, items=args.items)
    if problems:
        sys.exit(1)


def soak(args: argparse.Namespace) -> tuple[dict[str, Any], list[str]]:
    """Runs the soak, prints what happened and the violations; returns its figures and the violations."""
    count = args.daemons if args.store == "postgres" else 1
    work = Path(tempfile.mkdtemp(prefix="runner-soak-"))
    print(
        f"soak: {args.minutes:g} min, {count} daemon(s) on {args.store}; work and logs in {work}", flush=True
    )

    emulator, base_url = _start_emulator(work, args)
    store = Store.make(args.store, work)
    engine = sa.create_engine(store.url)
    http = httpx.Client(base_url=base_url, timeout=120)
    chaos = Chaos(log=work / "chaos.log")
    daemons: list[Daemon] = []
    try:
        _write_jobs(work, args.items)
        # Named, so that the connection drops end the daemons' connections and no one else's.
        application_name = f"runner-soak-{work.name[-8:]}"
        daemon_store_url = store.url
        if args.store == "postgres":
            daemon_store_url += f"&application_name={application_name}"
        daemons = _daemons(work, base_url, daemon_store_url, count, args, http)
        for daemon in daemons:
            daemon.start(work)
        _wait_until_registered(engine, count)
        drop = (lambda: _drop_connections(engine, application_name)) if args.store == "postgres" else None
        bulk_fires = _chaos(
            args,
            daemons,
            lambda: _trigger(store.url, "bulk"),
            drop,
            http,
            chaos,
            lambda: _up(engine, args.least_up),
        )
        _pause_schedules(store.url)
        print("chaos over; draining", flush=True)
        _drain(engine, daemons, chaos, args.stall)
        time.sleep(1)  # late webhooks of the last runs
        _stop_daemons(daemons, chaos)
        runs = http.get("/_emulator/runs").json()
        stats = http.get("/_emulator/stats").json()
        problems = _verify(engine, runs, stats, chaos, work) + _tracebacks(daemons)
        _report(engine, runs, stats, chaos, bulk_fires)
        figures = {
            "violations": len(problems),
            "bulk_fires": bulk_fires,
            "emulator_runs": len(runs["runs"]),
            "sigkills": chaos.kills,
            "sigterms": chaos.terms,
            "slowest_stop_s": chaos.slowest_term,
            "api_outages": chaos.outages,
            "stops_waited_s": round(chaos.stops_waited, 1),
            "late_cancels": len(chaos.late_cancels),
        }
    finally:
        for daemon in daemons:
            if daemon.process is not None:
                _stop(daemon.process)
        _stop(emulator)
        http.close()
        engine.dispose()
        store.drop()
    if problems:
        print("\nVIOLATIONS:")
        for problem in problems:
            print(f"  - {problem}")
    else:
        print("\nevery check held")
    return figures, problems


def _report(
    engine: sa.Engine, runs: dict[str, Any], stats: dict[str, Any], chaos: Chaos, bulk_fires: int
) -> None:
    with engine.connect() as conn:
        items = conn.execute(
            sa.text("SELECT job_name, status, count(*) FROM item GROUP BY job_name, status")
        ).all()
        attempts = conn.execute(sa.text("SELECT status, count(*) FROM attempt GROUP BY status")).all()
        fires = conn.execute(sa.text("SELECT status, count(*) FROM fire GROUP BY status")).all()
    by_job: dict[str, dict[str, int]] = {}
    for job, status, n in items:
        by_job.setdefault(job, {})[status] = n
    print(
        f"\ndaemons: {chaos.kills} SIGKILLs, {chaos.terms} SIGTERMs (slowest stop {chaos.slowest_term:.1f} s); "
        f"{chaos.connections_dropped} PostgreSQL connections ended; {chaos.outages} API outages; "
        f"stops waited {chaos.stops_waited:.0f} s in all for a daemon up long enough"
    )
    print(f"bulk fired {bulk_fires} times; fires by status: {dict(fires)}")
    for job, counts in sorted(by_job.items()):
        print(f"  items of {job:6}: {counts}")
    print(f"attempts by status: {dict(attempts)}")
    print(f"emulator runs: {len(runs['runs'])}; faults injected: {stats['faults']}")
    print(f"webhooks: {stats['webhooks']}; create replays (same key): {stats['runs']['create_replays']}")
    if chaos.late_cancels:
        print(
            f"runs relabelled cancelled by a timeout's cancel that landed after they ended (the store keeps their "
            f"own outcome): {chaos.late_cancels[:5]}"
        )


if __name__ == "__main__":
    main()
