"""The runner's throughput, API economy, tracking latency and memory, against an emulator in a subprocess.

    python bench/runner_bench.py [--daemons 1,2,3] [--store sqlite|postgres] [--poll-only]
                                 [--items 2000] [--desktops 200] [--in-flight 10000]
                                 [--webhook-rate N [--news-window 30ms]]
                                 [--big-fire 100000 [--big-fire-seconds 20]] [--json PATH|-]

Everything runs as separate processes on this machine: one emulator (high `--speed`, so desktops are never the
limit), the daemons (`cyberdesk-runner run`), PostgreSQL. Figures:

(a) one daemon on `--store`: an `--items` job over `--desktops` desktops.
    - runs created per second, next to the emulator's own creation rate measured first, in this run, with an
      httpx + httpx-aiohttp client keeping 32 creates in flight (target: the runner reaches >= 70% of it);
    - Cyberdesk API requests per completed run, from the emulator's counters (target <= 1.5 with webhooks,
      <= 3 with --poll-only);
    - tracking latency: a run's end in the emulator -> its terminal status in the store (the attempt's
      finishing event), both wall clock on this machine (target p50 < 50 ms with webhooks); and the same in two
      parts, from the emulator's delivery log (its last 1,000 attempts): the run's end -> its webhook sent (the
      emulator's part) and sent -> store (the daemon's part, which includes waiting for a core);
    - peak RSS (VmHWM) of a daemon holding `--in-flight` items in flight (target < 200 MB), read twice: with as
      many desktops (every item a run in flight) and over `--desktops` desktops (the rest pending), on a store
      whose schema is already at head (a daemon's usual start).
(b) the same job with 1, 2, 3... daemons (`--daemons`) on one PostgreSQL store: throughput and API requests
    per run, side by side. As in a deployment with one webhook endpoint, webhooks go to the first daemon only
    (`--webhooks-to each` registers every daemon's endpoint, so each receives every delivery).
(fire) with `--big-fire N`: one fire of N items read from a CSV (`items_from`) over `--desktops` desktops:
    seconds until every item is recorded (planning), then `--big-fire-seconds` of dispatching (daemon CPU per
    run, peak RSS, the daemon's longest store transaction from its /metrics), then the seconds until `fires`,
    `runs --fire F`, `show F` (its first page) and `results F` (CSV, every item) print their first line and until
    they end, and the CPU each used (under load, wall time mostly waits for a core). First, a fire of 1,000 items
    over the same desktops, run to its end: the big fire's CPU per run is given as a ratio to its (target <= 1.2).
(c) tracking latency under light load: `--light-items` items at most 16 in flight (job `concurrency`), on an
    emulator 10 times slower, so that neither process is saturated. (a) measures latency at saturation, where
    a run's news also waits its turn behind everything else the two processes are doing.

The emulator is served by `cyberdesk.emulator.EmulatorServer` with its webhooks sent through its default,
httpx-aiohttp transport (`--emulator-webhooks httpx` uses httpx's own pool, which caps deliveries near 100/s
here; see docs/performance notes); `--webhook-rate N` caps them at N per second (slow news), and
`--news-window` sets the daemons' `tracking.news_window`. Daemons log at
warning level unless `--log-level` says otherwise. `--json PATH` (or `-`) writes every figure as JSON, for
`bench/compare.py OLD NEW`.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import dataclasses
import json
import math
import os
import resource
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa
from httpx_aiohttp import AiohttpTransport
from report import add_json_option, tables_to_stderr, write_json

ROOT = Path(__file__).resolve().parents[1]
API_KEY = "cd_bench_key"
WEBHOOK_SECRET = "whsec_" + base64.b64encode(b"runner-bench-webhook-secret-0123").decode()
PG_URL = os.environ.get("CYBERDESK_RUNNER_BENCH_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
WORKFLOW = "Bench work"
VERBOSE = False
WEBHOOKS_TO_EACH = False
NEWS_WINDOW: str | None = None  # the daemons' tracking.news_window (--news-window)

# Served in a subprocess: the emulator with a chosen webhook transport, until SIGTERM.
_EMULATOR_PROGRAM = """
import json, signal, sys, threading
from cyberdesk.emulator import Emulator, EmulatorOptions, EmulatorServer
options = json.loads(sys.argv[1])
transport = None
if not options.pop("fast_webhooks"):  # the emulator's own default is httpx-aiohttp
    import httpx
    transport = httpx.AsyncHTTPTransport()
emulator = Emulator(EmulatorOptions.build(webhook_transport=transport, **options))
server = EmulatorServer(emulator).start()
print(server.base_url, flush=True)
stop = threading.Event()
signal.signal(signal.SIGTERM, lambda *_: stop.set())
signal.signal(signal.SIGINT, lambda *_: stop.set())
stop.wait()
server.stop()
"""


# The thinnest client that does the runner's job, in a subprocess: one run at a time per desktop, at most 32
# create calls in flight, each run followed to its end by webhook. It keeps nothing and checks nothing (no store,
# no signature check, no retries): what the emulator sustains for this job when the client costs next to nothing.
_THIN_CLIENT_PROGRAM = """
import asyncio, json, secrets, sys, uvicorn, httpx
from httpx_aiohttp import AiohttpTransport
base_url, api_key, port, items, workflow = json.loads(sys.argv[1])
waiting, early = {}, set()

async def app(scope, receive, send):
    body, more = b"", True
    while more:
        message = await receive()
        body, more = body + message.get("body", b""), message.get("more_body", False)
    run_id = json.loads(body)["run"]["id"]
    future = waiting.pop(run_id, None)
    if future is None:
        early.add(run_id)
    else:
        future.set_result(None)
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b""})

async def main():
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    server = uvicorn.Server(config)
    serving = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.01)
    limits = httpx.Limits(max_connections=32, max_keepalive_connections=32)
    headers = {"Authorization": f"Bearer {api_key}"}
    async with httpx.AsyncClient(transport=AiohttpTransport(limits=limits), base_url=base_url,
                                 headers=headers, timeout=30) as client:
        workflow_id = next(w["id"] for w in (await client.get("/v1/workflows")).json()["items"]
                           if w["name"] == workflow)
        machines, skip = [], 0
        while True:
            page = (await client.get("/v1/machines", params={"limit": 100, "skip": skip})).json()["items"]
            machines += [m["id"] for m in page]
            skip += len(page)
            if len(page) < 100:
                break
        print("ready", flush=True)
        sys.stdin.readline()
        todo, calls = list(range(items)), asyncio.Semaphore(32)
        loop = asyncio.get_running_loop()

        async def desktop(machine_id):
            while todo:
                n = todo.pop()
                body = {"workflow_id": workflow_id, "machine_id": machine_id, "input_values": {"n": n}}
                async with calls:
                    response = await client.post("/v1/runs", json=body,
                                                 headers={"Idempotency-Key": secrets.token_hex(16)})
                run_id = response.json()["id"]
                if run_id in early:
                    early.discard(run_id)
                else:
                    waiting[run_id] = loop.create_future()
                    await waiting[run_id]

        await asyncio.gather(*(desktop(m) for m in machines))
    print("done", flush=True)
    server.should_exit = True
    await serving

asyncio.run(main())
"""


# -- processes ---------------------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-c", "from cyberdesk_runner.cli import main; main()", *args]


def _stop(process: subprocess.Popen[Any], grace: float = 15.0) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(grace)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _thread_wakes(pid: int) -> dict[int, tuple[int, float]]:
    """Each thread of `pid`: its context switches so far (voluntary + not) and its CPU seconds.

    A thread that sleeps and is woken switches once per wake; on this machine each wake costs a fixed CPU price
    (bench/wakeup_cost.py), so wakes per run explain why a run costs more when its news comes slowly."""
    threads: dict[int, tuple[int, float]] = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            status = (task / "status").read_text()
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # the thread ended meanwhile
        switches = sum(int(line.split()[1]) for line in status.splitlines() if "ctxt_switches:" in line)
        threads[int(task.name)] = (switches, (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK"))
    return threads


def _wakes_between(
    before: dict[int, tuple[int, float]], after: dict[int, tuple[int, float]]
) -> list[tuple[int, float]]:
    """(wakes, CPU seconds) of each thread between two readings, busiest first (threads born meanwhile count whole)."""
    moved = [
        (switches - before.get(tid, (0, 0.0))[0], cpu - before.get(tid, (0, 0.0))[1])
        for tid, (switches, cpu) in after.items()
    ]
    return sorted((m for m in moved if m[0] or m[1]), key=lambda m: -m[1])


def _postgres_cpu_seconds() -> float:
    """CPU used so far by every PostgreSQL server process (other users of the server count too: run alone)."""
    total = 0.0
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() == "postgres":
                    total += _cpu_seconds(int(entry.name))
            except OSError:
                continue  # gone meanwhile
    return total


@dataclass
class Emulator:
    process: subprocess.Popen[str]
    base_url: str

    def stats(self) -> dict[str, Any]:
        return httpx.get(f"{self.base_url}/_emulator/stats", timeout=60).json()  # type: ignore[no-any-return]

    def runs(self) -> list[dict[str, Any]]:
        return httpx.get(f"{self.base_url}/_emulator/runs", timeout=120).json()["runs"]  # type: ignore[no-any-return]

    def webhook_log(self) -> list[dict[str, Any]]:
        """The emulator's last 1,000 delivery attempts, each with when it was sent and answered."""
        return httpx.get(f"{self.base_url}/_emulator/webhooks", timeout=60).json()["log"]  # type: ignore[no-any-return]


@contextmanager
def serve_emulator(work: Path, fixture: dict[str, Any], **options: Any) -> Iterator[Emulator]:
    """An emulator in its own process with this fleet fixture and these EmulatorOptions (every bench's)."""
    path = work / "fleet.json"
    path.write_text(json.dumps(fixture))
    options = {"api_key": API_KEY, "fixture": str(path), "seed": 1, "fast_webhooks": True, **options}
    process = subprocess.Popen(
        [sys.executable, "-c", _EMULATOR_PROGRAM, json.dumps(options)],
        stdout=subprocess.PIPE,
        text=True,
        stderr=(work / "emulator.log").open("a"),
    )
    assert process.stdout is not None
    base_url = process.stdout.readline().strip()
    if not base_url.startswith("http"):
        _stop(process)
        raise RuntimeError(f"the emulator did not start (see {work / 'emulator.log'})")
    try:
        yield Emulator(process, base_url)
    finally:
        _stop(process)


def farm(desktops: int, workflows: list[dict[str, Any]]) -> dict[str, Any]:
    """A fixture of one pool, `farm`, of `desktops` desktops, and these workflows."""
    machines = [{"name": f"farm-{n:05d}", "pools": ["farm"]} for n in range(desktops)]
    return {"pools": [{"name": "farm"}], "machines": machines, "workflows": workflows}


@contextmanager
def emulator(
    work: Path,
    desktops: int,
    speed: float,
    run_duration: str,
    fast_webhooks: bool,
    webhook_rate: float | None = None,
) -> Iterator[Emulator]:
    fixture = farm(desktops, [{"name": WORKFLOW, "prompt": "Process one record."}])
    with serve_emulator(
        work,
        fixture,
        speed=speed,
        run_duration=run_duration,
        fast_webhooks=fast_webhooks,
        webhook_rate=webhook_rate,
    ) as emu:
        yield emu


# -- the emulator alone --------------------------------------------------------------------------------------


async def _emulator_create_rate(base_url: str, seconds: float, in_flight: int) -> float:
    """Creates per second the emulator sustains with `in_flight` requests kept in flight by one client."""
    limits = httpx.Limits(max_connections=in_flight, max_keepalive_connections=in_flight)
    async with httpx.AsyncClient(
        transport=AiohttpTransport(limits=limits),
        base_url=base_url,
        timeout=30,
        headers={"Authorization": f"Bearer {API_KEY}"},
    ) as client:
        workflows = (await client.get("/v1/workflows")).json()["items"]
        machines = (await client.get("/v1/machines", params={"limit": 100})).json()["items"]
        workflow_id = next(w["id"] for w in workflows if w["name"] == WORKFLOW)
        machine_ids = [m["id"] for m in machines]
        done = 0

        async def worker(n: int, stop_at: float) -> None:
            nonlocal done
            i = n
            while time.perf_counter() < stop_at:
                body = {
                    "workflow_id": workflow_id,
                    "machine_id": machine_ids[i % len(machine_ids)],
                    "input_values": {"n": i},
                    "is_priority": False,
                }
                response = await client.post(
                    "/v1/runs", json=body, headers={"Idempotency-Key": f"alone-{secrets.token_hex(8)}"}
                )
                if response.status_code != 201:
                    raise RuntimeError(f"create failed: {response.status_code} {response.text[:200]}")
                done += 1
                i += in_flight

        warm = time.perf_counter() + 0.5
        await asyncio.gather(*(worker(n, warm) for n in range(in_flight)))
        done = 0
        start = time.perf_counter()
        await asyncio.gather(*(worker(n, start + seconds) for n in range(in_flight)))
        return done / (time.perf_counter() - start)


def thin_client_rate(emu: Emulator, items: int) -> tuple[float, float]:
    """Runs created per second by the thin client doing the job, and its CPU per run (ms)."""
    port = _free_port()
    httpx.post(
        f"{emu.base_url}/_emulator/webhooks",
        timeout=30,
        json={"url": f"http://127.0.0.1:{port}/", "secret": WEBHOOK_SECRET},
    ).raise_for_status()
    process = subprocess.Popen(
        [
            sys.executable,
            "-c",
            _THIN_CLIENT_PROGRAM,
            json.dumps([emu.base_url, API_KEY, port, items, WORKFLOW]),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdin is not None and process.stdout is not None
    try:
        if process.stdout.readline().strip() != "ready":
            raise RuntimeError("the thin client did not start")
        cpu_before = _cpu_seconds(process.pid)
        process.stdin.write("go\n")
        process.stdin.flush()
        if process.stdout.readline().strip() != "done":
            raise RuntimeError("the thin client failed")
        cpu = _cpu_seconds(process.pid) - cpu_before
    finally:
        _stop(process)
    created = sorted(_when(r["created_at"]) for r in emu.runs())
    span = (created[-1] - created[0]).total_seconds()
    return len(created) / span, cpu / len(created) * 1000


# -- daemons ----------------------------------------------------------------------------------------------


@dataclass
class Store:
    url: str
    cleanup: list[str] = field(default_factory=list)

    @classmethod
    def make(cls, kind: str, work: Path) -> Store:
        if kind == "sqlite":
            return cls(f"sqlite:///{work / f'store-{secrets.token_hex(3)}.sqlite'}")
        schema = f"bench_{secrets.token_hex(5)}"
        engine = sa.create_engine(PG_URL)
        with engine.begin() as conn:
            conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
        engine.dispose()
        return cls(f"{PG_URL}?options=-csearch_path%3D{schema}", [schema])

    def drop(self) -> None:
        if self.cleanup:
            engine = sa.create_engine(PG_URL)
            with engine.begin() as conn:
                for schema in self.cleanup:
                    conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
            engine.dispose()


def _write_job(work: Path, items: int, concurrency: int) -> Path:
    jobs = work / f"jobs-{items}-{concurrency}"
    if not jobs.exists():
        jobs.mkdir()
        (jobs / "bench.jsonl").write_text("".join(json.dumps({"n": n}) + "\n" for n in range(items)))
        (jobs / "bench.yaml").write_text(
            textwrap.dedent(f"""
            name: bench
            workflow: {WORKFLOW}
            target: {{pool: farm}}
            items_from: bench.jsonl
            concurrency: {concurrency}
            timeout: 2h
        """)
        )
    return jobs


def _start_daemons(
    work: Path,
    emu: Emulator,
    store: Store,
    jobs: Path,
    count: int,
    *,
    poll_only: bool,
    poll_interval: str,
    log_level: str,
) -> list[subprocess.Popen[bytes]]:
    daemons = []
    for n in range(count):
        port, server_port = _free_port(), _free_port()
        webhook = "" if poll_only else f'webhook: {{listen: "127.0.0.1:{port}", secret: "{WEBHOOK_SECRET}"}}'
        window = f"news_window: {NEWS_WINDOW}" if NEWS_WINDOW else ""
        config = work / f"daemon-{secrets.token_hex(3)}.yaml"
        config.write_text(
            textwrap.dedent(f"""
            cyberdesk: {{api_key: {API_KEY}, base_url: "{emu.base_url}"}}
            store: "{store.url}"
            jobs: {jobs}
            server: {{listen: "127.0.0.1:{server_port}"}}
            tracking:
              poll_interval: {poll_interval}
              {window}
              {webhook}
            log: {{level: {log_level}}}
        """)
        )
        if not poll_only and (n == 0 or WEBHOOKS_TO_EACH):
            response = httpx.post(
                f"{emu.base_url}/_emulator/webhooks",
                timeout=30,
                json={"url": f"http://127.0.0.1:{port}/webhooks/cyberdesk", "secret": WEBHOOK_SECRET},
            )
            response.raise_for_status()
        log = (work / f"{config.stem}.log").open("ab")
        daemon = subprocess.Popen(_cli("run", "--config", str(config)), cwd=work, stdout=log, stderr=log)
        # With a webhook listener, the daemon serves /metrics there (one HTTP server), else on `server.listen`.
        metrics_port = server_port if poll_only else port
        daemon.metrics_url = f"http://127.0.0.1:{metrics_port}/metrics"  # type: ignore[attr-defined]
        daemon.config_path = config  # type: ignore[attr-defined]
        daemons.append(daemon)
    return daemons


def _metric(daemons: list[subprocess.Popen[bytes]], name: str) -> float:
    """The sum over the daemons of one sample of their /metrics (labels included in `name`)."""
    total = 0.0
    for daemon in daemons:
        for line in httpx.get(daemon.metrics_url, timeout=30).text.splitlines():  # type: ignore[attr-defined]
            if line.startswith(name + " "):
                total += float(line.split()[-1])
    return total


def _wait_ready(engine: sa.Engine, daemons: list[subprocess.Popen[bytes]], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if any(d.poll() is not None for d in daemons):
            raise RuntimeError("a daemon exited at start; see its log in the work folder")
        try:
            with engine.connect() as conn:
                ready = conn.execute(
                    sa.text("SELECT count(*) FROM daemon WHERE stopped_at IS NULL")
                ).scalar_one()
                job = conn.execute(sa.text("SELECT workflow_id FROM job WHERE name = 'bench'")).scalar()
            if ready == len(daemons) and job:
                return
        except sa.exc.DBAPIError:
            pass  # tables not there yet
        if time.monotonic() > deadline:
            raise TimeoutError("the daemons did not start")
        time.sleep(0.2)


def _trigger(engine: sa.Engine) -> None:
    # The CLI's `trigger`, without a process start: a requested fire the daemons plan.
    from cyberdesk_runner.store import Store as RunnerStore
    from cyberdesk_runner.store.records import NewFire

    store = RunnerStore(engine.url.render_as_string(hide_password=False))
    try:
        store.fires.request(NewFire("bench", "manual", None), datetime.now().astimezone())
    finally:
        store.close()


def _count(engine: sa.Engine, query: str) -> int:
    with engine.connect() as conn:
        return int(conn.execute(sa.text(query)).scalar_one())


@dataclass
class Result:
    label: str
    runs: int
    seconds: float
    create_rate: float
    requests_per_run: float
    latency_p50_ms: float
    latency_p90_ms: float
    latency_p99_ms: float
    #: The same latency in two parts, over the runs among the emulator's last 1,000 deliveries: the run's end ->
    #: its webhook sent (the emulator's part: a real cloud's is its own) and webhook sent -> store (the daemon's).
    end_to_sent_p50_ms: float
    end_to_sent_p99_ms: float
    sent_to_store_p50_ms: float
    sent_to_store_p99_ms: float
    webhook_share: float
    daemon_cpu_per_run_ms: float
    emulator_cpu_per_run_ms: float
    postgres_cpu_per_run_ms: float
    peak_rss_mb: float
    dispatch_rounds_per_run: float
    news_per_transaction: float
    #: The daemons' threads' context switches per run (each is a wake-up), and per thread (wakes, CPU ms) per run.
    wakes_per_run: float = float("nan")
    threads: list[tuple[float, float]] | None = None
    light: bool = False


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _when(iso: str) -> datetime:
    return datetime.fromisoformat(iso.replace("Z", "+00:00"))


def run_job(
    work: Path,
    emu: Emulator,
    store_kind: str,
    daemons: int,
    items: int,
    concurrency: int,
    *,
    poll_only: bool,
    log_level: str,
    label: str,
) -> Result:
    """Trigger the `items` job on fresh daemons and a fresh store; measure until every item succeeded."""
    store = Store.make(store_kind, work)
    engine = sa.create_engine(store.url)
    jobs = _write_job(work, items, concurrency)
    procs: list[subprocess.Popen[bytes]] = []
    try:
        procs = _start_daemons(
            work,
            emu,
            store,
            jobs,
            daemons,
            poll_only=poll_only,
            poll_interval="1s" if poll_only else "15s",
            log_level=log_level,
        )
        _wait_ready(engine, procs)
        before = emu.stats()
        cpu_before = sum(_cpu_seconds(p.pid) for p in procs)
        wakes_before = [_thread_wakes(p.pid) for p in procs]
        emulator_before, postgres_before = _cpu_seconds(emu.process.pid), _postgres_cpu_seconds()
        started = time.monotonic()
        _trigger(engine)
        deadline = started + max(120.0, items / 20)
        shown = 0.0
        while (done := _count(engine, "SELECT count(*) FROM item WHERE status = 'succeeded'")) < items:
            if time.monotonic() > deadline or any(p.poll() is not None for p in procs):
                raise RuntimeError(f"{label}: the job did not finish (see the daemon logs in {work})")
            if VERBOSE and time.monotonic() - shown >= 1:
                shown = time.monotonic()
                print(f"  {label}: {shown - started:5.1f}s {done} succeeded", flush=True)
            time.sleep(0.1)
        elapsed = time.monotonic() - started
        cpu = sum(_cpu_seconds(p.pid) for p in procs) - cpu_before
        threads = [
            t
            for p, b in zip(procs, wakes_before, strict=True)
            for t in _wakes_between(b, _thread_wakes(p.pid))
        ]
        emulator_cpu = _cpu_seconds(emu.process.pid) - emulator_before
        postgres_cpu = _postgres_cpu_seconds() - postgres_before
        rss = max(_peak_rss_mb(p.pid) for p in procs)
        rounds = _metric(procs, 'cyberdesk_runner_loop_rounds_total{loop="dispatch"}')
        batches = _metric(procs, "cyberdesk_runner_news_batch_size_count")
        news = _metric(procs, "cyberdesk_runner_news_batch_size_sum")
        after = emu.stats()
        timeline = emu.runs()
        deliveries = emu.webhook_log()
        finished, ours = _store_view(engine)
    finally:
        for p in procs:
            _stop(p)
        engine.dispose()
        store.drop()
    runs = [r for r in timeline if r["id"] in ours]
    created = sorted(_when(r["created_at"]) for r in runs)
    span = (created[-1] - created[0]).total_seconds() if len(created) > 1 else float("nan")
    latencies = [
        (finished[r["id"]][0] - _when(r["ended_at"])).total_seconds() * 1000
        for r in runs
        if r["ended_at"] and r["id"] in finished
    ]
    by_webhook = sum(1 for at_source in finished.values() if at_source[1] == "webhook")
    end_to_sent, sent_to_store = _latency_parts(runs, deliveries, finished)
    api = _api_requests(after) - _api_requests(before)
    return Result(
        label=label,
        runs=len(runs),
        seconds=elapsed,
        create_rate=len(runs) / span if span else float("nan"),
        requests_per_run=api / max(len(runs), 1),
        latency_p50_ms=_percentile(latencies, 0.5),
        latency_p90_ms=_percentile(latencies, 0.9),
        latency_p99_ms=_percentile(latencies, 0.99),
        end_to_sent_p50_ms=_percentile(end_to_sent, 0.5),
        end_to_sent_p99_ms=_percentile(end_to_sent, 0.99),
        sent_to_store_p50_ms=_percentile(sent_to_store, 0.5),
        sent_to_store_p99_ms=_percentile(sent_to_store, 0.99),
        webhook_share=by_webhook / max(len(finished), 1),
        daemon_cpu_per_run_ms=cpu / max(len(runs), 1) * 1000,
        emulator_cpu_per_run_ms=emulator_cpu / max(len(runs), 1) * 1000,
        postgres_cpu_per_run_ms=postgres_cpu / max(len(runs), 1) * 1000,
        peak_rss_mb=rss,
        dispatch_rounds_per_run=rounds / max(len(runs), 1),
        news_per_transaction=news / max(batches, 1),
        wakes_per_run=sum(w for w, _ in threads) / max(len(runs), 1),
        threads=[(w / max(len(runs), 1), c / max(len(runs), 1) * 1000) for w, c in threads[:6]],
    )


def _latency_parts(
    runs: list[dict[str, Any]],
    deliveries: list[dict[str, Any]],
    finished: dict[str, tuple[datetime, str]],
) -> tuple[list[float], list[float]]:
    """(run end -> first webhook sent, that send -> end in the store), in ms, for runs with a delivery in the log."""
    ended = {r["id"]: _when(r["ended_at"]) for r in runs if r["ended_at"]}
    first_sent: dict[str, datetime] = {}
    for attempt in deliveries:
        run_id = attempt.get("run_id")
        if (
            run_id in ended and run_id not in first_sent and attempt.get("sent_at")
        ):  # older emulators: no sent_at
            first_sent[run_id] = _when(attempt["sent_at"])
    end_to_sent = [(sent - ended[run_id]).total_seconds() * 1000 for run_id, sent in first_sent.items()]
    sent_to_store = [
        (finished[run_id][0] - sent).total_seconds() * 1000
        for run_id, sent in first_sent.items()
        if run_id in finished
    ]
    return end_to_sent, sent_to_store


def _store_view(engine: sa.Engine) -> tuple[dict[str, tuple[datetime, str]], set[str]]:
    """When each run's success was recorded and from which source; every run id the store knows."""
    # Through the store's own table definitions, so times come back timezone-aware on both backends.
    from cyberdesk_runner.store.tables import AttemptRow, EventRow

    event, attempt = EventRow.__table__, AttemptRow.__table__  # type: ignore[attr-defined]
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(event.c.run_id, event.c.at, event.c.data).where(event.c.kind == "attempt_success")
        ).all()
        ours = set(conn.execute(sa.select(attempt.c.run_id).where(attempt.c.run_id.is_not(None))).scalars())
    return {r.run_id: (r.at, (r.data or {}).get("source", "?")) for r in rows}, ours


def _api_requests(stats: dict[str, Any]) -> int:
    return sum(sum(codes.values()) for route, codes in stats["requests"].items() if " /v1/" in route)


@dataclass
class Memory:
    desktops: int
    items: int
    runs_in_flight: int
    idle_mb: float
    peak_mb: float
    seconds: float


def peak_rss_in_flight(work: Path, store_kind: str, items: int, desktops: int, log_level: str) -> Memory:
    """Peak RSS of one daemon with `items` items in flight over `desktops` desktops (runs that never end)."""
    with emulator(work, desktops, speed=1, run_duration="7200-7200", fast_webhooks=True) as emu:
        store = Store.make(store_kind, work)
        _upgrade_schema(store)
        engine = sa.create_engine(store.url)
        procs: list[subprocess.Popen[bytes]] = []
        try:
            jobs = _write_job(work, items, items)
            procs = _start_daemons(
                work, emu, store, jobs, 1, poll_only=False, poll_interval="5s", log_level=log_level
            )
            _wait_ready(engine, procs, timeout=120)
            idle = _rss_mb(procs[0].pid)
            started = time.monotonic()
            _trigger(engine)
            query = "SELECT count(*) FROM attempt WHERE run_id IS NOT NULL AND status IN ('scheduling', 'running')"
            target, reached = min(items, desktops), 0
            while reached < target and time.monotonic() - started < 600 and procs[0].poll() is None:
                time.sleep(1)
                reached = _count(engine, query)
            took = time.monotonic() - started
            time.sleep(12)  # a few poll rounds (the poller lists every run in flight) and fleet refreshes
            return Memory(desktops, items, reached, idle, _peak_rss_mb(procs[0].pid), took)
        finally:
            for p in procs:
                _stop(p)
            engine.dispose()
            store.drop()


def _upgrade_schema(store: Store) -> None:
    """The store's schema made beforehand, as a daemon finds it on every start but the first after an update: a
    daemon that migrates its store loads Alembic for that (about 10 MB more, until it restarts)."""
    code = (
        "import sys; from cyberdesk_runner.store import Store; s = Store(sys.argv[1]); s.upgrade(); s.close()"
    )
    subprocess.run([sys.executable, "-c", code, store.url], check=True)


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


# -- one big fire ------------------------------------------------------------------------------------------


def _write_csv_job(work: Path, items: int, concurrency: int) -> Path:
    jobs = work / f"jobs-csv-{items}"
    if jobs.exists():
        return jobs
    jobs.mkdir()
    with (jobs / "bench.csv").open("w", encoding="utf-8") as rows:
        rows.write("n,claim\n")
        rows.writelines(f"{n},C-{n:07d}\n" for n in range(items))
    (jobs / "bench.yaml").write_text(
        textwrap.dedent(f"""
        name: bench
        workflow: {WORKFLOW}
        target: {{pool: farm}}
        items_from: bench.csv
        concurrency: {concurrency}
        timeout: 2h
    """)
    )
    return jobs


def _first_output(config: Path, *args: str) -> tuple[float, float, float]:
    """Seconds until a CLI command prints its first line and until it ends (its process start included), and
    the CPU seconds it used: the figure that holds on a loaded machine, where wall time mostly waits for a core."""
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    process = subprocess.Popen(
        _cli(*args, "--config", str(config)),
        cwd=config.parent,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "COLUMNS": "200"},
    )
    assert process.stdout is not None
    process.stdout.readline()
    first = time.perf_counter() - started
    process.stdout.read()
    process.wait()
    total = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime + after.ru_stime - children.ru_utime - children.ru_stime
    return first, total, cpu


def big_fire(work: Path, args: argparse.Namespace, fast: bool) -> dict[str, Any]:
    """One fire of `--big-fire` items read from a CSV: planning time, then `--big-fire-seconds` of dispatching
    (daemon CPU per run, peak RSS, the longest store transaction), then the time to first output of the commands
    that look at it; next to it, a fire of 1,000 items over the same desktops (its CPU per run, to the end)."""
    small = _one_fire(work, args, fast, SMALL_FIRE, seconds=None, commands=False)
    figures = _one_fire(work, args, fast, args.big_fire, seconds=args.big_fire_seconds, commands=True)
    figures["cpu per run vs 1,000-item fire"] = (
        figures["daemon_cpu_per_run_ms"] / small["daemon_cpu_per_run_ms"]
    )
    figures["1,000-item fire"] = small
    rows = [[name, _shown(value)] for name, value in figures.items() if not isinstance(value, dict)]
    rows += [[f"1,000-item fire: {name}", _shown(value)] for name, value in small.items()]
    _table(
        f"one fire of {args.big_fire:,} items from a CSV over {args.desktops:,} desktops ({args.store})",
        ["figure", "value"],
        rows,
    )
    return figures


#: Items of the fire the big fire's CPU per run is compared with.
SMALL_FIRE = 1_000


def _shown(value: Any) -> str:
    return (
        f"{value:,.3f}"
        if isinstance(value, float)
        else f"{value:,}"
        if isinstance(value, int)
        else str(value)
    )


def _one_fire(
    work: Path, args: argparse.Namespace, fast: bool, items: int, *, seconds: float | None, commands: bool
) -> dict[str, Any]:
    """One fire of `items` CSV rows on a fresh daemon: planning, then `seconds` of dispatching (None: until every
    item succeeded), optionally the CLI's first outputs."""
    jobs = _write_csv_job(work, items, args.desktops)
    with emulator(work, args.desktops, args.speed, "30-90", fast, args.webhook_rate) as emu:
        store = Store.make(args.store, work)
        engine = sa.create_engine(store.url)
        procs: list[subprocess.Popen[bytes]] = []
        first_output: dict[str, tuple[float, float, float]] = {}
        try:
            procs = _start_daemons(
                work, emu, store, jobs, 1, poll_only=False, poll_interval="15s", log_level=args.log_level
            )
            _wait_ready(engine, procs, timeout=120)
            daemon = procs[0]
            cpu_start = _cpu_seconds(daemon.pid)
            started = time.monotonic()
            _trigger(engine)
            while _count(engine, "SELECT count(*) FROM item") < items:
                if time.monotonic() - started > 600 or daemon.poll() is not None:
                    raise RuntimeError(
                        f"the fire of {items} items was not planned (see the daemon log in {work})"
                    )
                time.sleep(0.05)
            planned = time.monotonic() - started
            planning_cpu = _cpu_seconds(daemon.pid) - cpu_start
            done_query = "SELECT count(*) FROM item WHERE status = 'succeeded'"
            done_before, cpu_before = _count(engine, done_query), _cpu_seconds(daemon.pid)
            measured_from = time.monotonic()
            if seconds is None:
                while _count(engine, done_query) < items:
                    if time.monotonic() - measured_from > 600 or daemon.poll() is not None:
                        raise RuntimeError(f"the fire of {items} items did not finish (see {work})")
                    time.sleep(0.05)
            else:
                time.sleep(seconds)
            measured = time.monotonic() - measured_from
            done = _count(engine, done_query) - done_before
            cpu = _cpu_seconds(daemon.pid) - cpu_before
            longest, longest_method = _longest_transaction(daemon)
            if commands:
                first_output = _cli_first_outputs(engine, daemon)
            rss = _peak_rss_mb(daemon.pid)
        finally:
            for p in procs:
                _stop(p)
            engine.dispose()
            store.drop()
    figures: dict[str, Any] = {
        "items": items,
        "planning_s": planned,
        "planning_cpu_s": planning_cpu,
        "runs_measured": done,
        "runs_per_s": done / measured,
        "daemon_cpu_per_run_ms": cpu / max(done, 1) * 1000,
        "peak_rss_mb": rss,
        "longest_transaction_s": longest,
        "longest_transaction_method": longest_method,
    }
    for name, (first, total, cli_cpu) in first_output.items():
        figures[f"{name}: first output s"] = first
        figures[f"{name}: total s"] = total
        figures[f"{name}: cpu s"] = cli_cpu
    return figures


def _longest_transaction(daemon: subprocess.Popen[bytes]) -> tuple[float, str]:
    """The daemon's longest store transaction so far and the store method that ran it, from its /metrics
    (NaN when the daemon does not time its transactions)."""
    prefix = "cyberdesk_runner_store_transaction_max_seconds{"
    longest, method = float("nan"), "-"
    for line in httpx.get(daemon.metrics_url, timeout=30).text.splitlines():  # type: ignore[attr-defined]
        if line.startswith(prefix):
            labels, value = line[len(prefix) :].rsplit("} ", 1)
            if math.isnan(longest) or float(value) > longest:
                longest, method = float(value), labels.removeprefix('method="').removesuffix('"')
    return longest, method


def _cli_first_outputs(
    engine: sa.Engine, daemon: subprocess.Popen[bytes]
) -> dict[str, tuple[float, float, float]]:
    fire_id = _count_text(engine, "SELECT id FROM fire")
    config = daemon.config_path  # type: ignore[attr-defined]
    # As installed, with bytecode: a CLI that compiles its sources first (PYTHONDONTWRITEBYTECODE)
    # spends seconds on that under load, not on the fire.
    subprocess.run(
        [sys.executable, "-m", "compileall", "-q", str(ROOT / "sdk"), str(ROOT / "runner")],
        check=True,
    )
    commands = {
        "fires": ("fires",),
        "runs --fire F": ("runs", "--fire", fire_id),
        "show F": ("show", fire_id),
        "results F": ("results", fire_id),
    }
    return {name: _first_output(config, *command) for name, command in commands.items()}


def _count_text(engine: sa.Engine, query: str) -> str:
    with engine.connect() as conn:
        return str(conn.execute(sa.text(query)).scalar_one())


# -- main -------------------------------------------------------------------------------------------------


def _print_threads(results: list[Result]) -> None:
    """Where each run's daemon CPU went by thread (the event loop is the busiest; the store's threads follow)."""
    for r in results:
        busiest = ", ".join(
            f"{w:.1f} wakes {c:.2f} ms" for w, c in r.threads or [] if w >= 0.05 or c >= 0.005
        )
        print(f"  {r.label}: per run, the daemons' busiest threads: {busiest}")


def _table(title: str, header: list[str], rows: list[list[str]]) -> None:
    if not rows:
        return
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    print(f"\n{title}")
    print(
        "  "
        + "  ".join(
            h.rjust(w) if i else h.ljust(w) for i, (h, w) in enumerate(zip(header, widths, strict=True))
        )
    )
    for row in rows:
        print(
            "  "
            + "  ".join(
                c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True))
            )
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--daemons", default="1,2,3", help="daemon counts for (b), comma-separated")
    parser.add_argument("--store", choices=["sqlite", "postgres"], default="postgres", help="store of (a)")
    parser.add_argument("--poll-only", action="store_true", help="no webhooks: the daemons poll every 1s")
    parser.add_argument("--items", type=int, default=2000)
    parser.add_argument(
        "--light-items", type=int, default=400, help="items of the light-load latency run (c)"
    )
    parser.add_argument("--desktops", type=int, default=200)
    parser.add_argument(
        "--in-flight", type=int, default=10_000, help="runs in flight for the RSS figure (0: skip)"
    )
    parser.add_argument(
        "--speed", type=float, default=3000, help="emulator speed (runs take 30-90 s / speed)"
    )
    parser.add_argument("--log-level", default="warning")
    parser.add_argument("--emulator-webhooks", choices=["aiohttp", "httpx"], default="aiohttp")
    parser.add_argument(
        "--webhook-rate", type=float, default=None, help="cap the emulator's webhooks at N deliveries/s"
    )
    parser.add_argument(
        "--news-window", default=None, help="the daemons' tracking.news_window, e.g. 30ms (default: none)"
    )
    parser.add_argument(
        "--skip",
        default="",
        help="comma-separated parts to skip: a, b, c, rss, baselines (the emulator's create-only rate and the thin client)",
    )
    parser.add_argument(
        "--webhooks-to",
        choices=["first", "each"],
        default="first",
        help="with several daemons: webhooks to the first one (one endpoint), or to each (one endpoint per daemon)",
    )
    parser.add_argument("--verbose", action="store_true", help="print progress every second")
    parser.add_argument(
        "--big-fire",
        type=int,
        default=0,
        metavar="N",
        help="also: one fire of N items from a CSV (planning time, CPU per run, RSS, time to first output)",
    )
    parser.add_argument(
        "--big-fire-seconds", type=float, default=20.0, help="seconds of dispatching measured in --big-fire"
    )
    add_json_option(parser)
    args = parser.parse_args()
    with tables_to_stderr(args.json):
        figures = measure(args)
    write_json(
        args.json,
        "runner_bench",
        figures,
        store=args.store,
        items=args.items,
        desktops=args.desktops,
        speed=args.speed,
        webhook_rate=args.webhook_rate,
        news_window=args.news_window,
        poll_only=args.poll_only,
        emulator_webhooks=args.emulator_webhooks,
    )


def measure(args: argparse.Namespace) -> dict[str, Any]:
    """Runs the parts not skipped, prints their tables and returns their figures."""
    global VERBOSE, WEBHOOKS_TO_EACH, NEWS_WINDOW
    VERBOSE = args.verbose
    NEWS_WINDOW = args.news_window
    WEBHOOKS_TO_EACH = args.webhooks_to == "each"
    skip = set(filter(None, args.skip.split(",")))
    counts = [int(n) for n in args.daemons.split(",") if n]
    fast = args.emulator_webhooks == "aiohttp"
    mode = "poll-only (1s)" if args.poll_only else "webhooks + 15s polls"
    work = Path(tempfile.mkdtemp(prefix="runner-bench-"))
    print(
        f"{os.cpu_count()} cores; emulator speed {args.speed:g} (runs last 30-90 s / speed); {mode}; work in {work}"
    )
    results: list[Result] = []
    try:
        alone = thin = thin_cpu = float("nan")
        if not {"a", "b"} <= skip and "baselines" not in skip:  # the baselines of the throughput figures
            with emulator(work, args.desktops, args.speed, "30-90", fast, args.webhook_rate) as emu:
                alone = asyncio.run(_emulator_create_rate(emu.base_url, 3.0, 32))
            print(f"emulator alone: {alone:,.0f} creates/s (32 in flight, httpx + httpx-aiohttp)")
            with emulator(work, args.desktops, args.speed, "30-90", fast, args.webhook_rate) as emu:
                thin, thin_cpu = thin_client_rate(emu, args.items)
            print(
                f"thin client, same job: {thin:,.0f} runs/s ({thin_cpu:.2f} ms CPU/run; create + webhook, "
                "nothing kept or checked)"
            )
        if "a" not in skip:
            with emulator(work, args.desktops, args.speed, "30-90", fast, args.webhook_rate) as emu:
                results.append(
                    run_job(
                        work,
                        emu,
                        args.store,
                        1,
                        args.items,
                        args.desktops,
                        poll_only=args.poll_only,
                        log_level=args.log_level,
                        label=f"(a) 1 daemon, {args.store}",
                    )
                )
        if "c" not in skip:
            with emulator(work, args.desktops, args.speed / 10, "30-90", fast, args.webhook_rate) as emu:
                light = run_job(
                    work,
                    emu,
                    args.store,
                    1,
                    args.light_items,
                    16,
                    poll_only=args.poll_only,
                    log_level=args.log_level,
                    label=f"(c) light load, {args.store}",
                )
                results.append(dataclasses.replace(light, light=True))
        if "b" not in skip:
            for n in counts:
                with emulator(work, args.desktops, args.speed, "30-90", fast, args.webhook_rate) as emu:
                    results.append(
                        run_job(
                            work,
                            emu,
                            "postgres",
                            n,
                            args.items,
                            args.desktops,
                            poll_only=args.poll_only,
                            log_level=args.log_level,
                            label=f"(b) {n} daemon{'s' if n > 1 else ''}, postgres",
                        )
                    )
        fire_figures = big_fire(work, args, fast) if args.big_fire else None
        memory: list[Memory] = []
        if args.in_flight and "rss" not in skip:
            for desktops in (args.in_flight, args.desktops):
                memory.append(peak_rss_in_flight(work, args.store, args.in_flight, desktops, args.log_level))
    finally:
        shutil.rmtree(work, ignore_errors=True)

    _table(
        f"{args.items} items over {args.desktops} desktops ({mode})",
        [
            "run",
            "runs",
            "seconds",
            "creates/s",
            "% of emulator",
            "% of thin",
            "API req/run",
            "end->store p50",
            "p90",
            "p99",
            "end->sent p50/p99",
            "sent->store p50/p99",
            "via webhook",
            "CPU/run: daemons",
            "emulator",
            "postgres",
            "peak RSS",
            "rounds/run",
            "news/txn",
            "wakes/run",
        ],
        [
            [
                r.label,
                str(r.runs),
                f"{r.seconds:.1f}",
                f"{r.create_rate:,.0f}",
                # The light-load run (c) is throttled on purpose: its rate is no throughput figure.
                "-" if r.light or math.isnan(alone) else f"{r.create_rate / alone:.0%}",
                "-" if r.light or math.isnan(thin) else f"{r.create_rate / thin:.0%}",
                f"{r.requests_per_run:.2f}",
                f"{r.latency_p50_ms:.0f} ms",
                f"{r.latency_p90_ms:.0f} ms",
                f"{r.latency_p99_ms:.0f} ms",
                f"{r.end_to_sent_p50_ms:.0f}/{r.end_to_sent_p99_ms:.0f} ms",
                f"{r.sent_to_store_p50_ms:.0f}/{r.sent_to_store_p99_ms:.0f} ms",
                f"{r.webhook_share:.0%}",
                f"{r.daemon_cpu_per_run_ms:.2f} ms",
                f"{r.emulator_cpu_per_run_ms:.2f} ms",
                f"{r.postgres_cpu_per_run_ms:.2f} ms",
                f"{r.peak_rss_mb:.0f} MB",
                f"{r.dispatch_rounds_per_run:.2f}",
                f"{r.news_per_transaction:.1f}",
                f"{r.wakes_per_run:.1f}",
            ]
            for r in results
        ],
    )
    _print_threads(results)
    if memory:
        _table(
            f"one daemon holding {args.in_flight:,} items in flight ({args.store}; runs never end)",
            ["desktops", "runs in flight", "RSS idle", "peak RSS", "seconds to reach"],
            [
                [
                    f"{m.desktops:,}",
                    f"{m.runs_in_flight:,}",
                    f"{m.idle_mb:.0f} MB",
                    f"{m.peak_mb:.0f} MB",
                    f"{m.seconds:.0f}",
                ]
                for m in memory
            ],
        )
    targets = (
        "targets: >= 70% of the emulator's rate (% of emulator: its create-only rate; % of thin: the thin "
        "client's rate on the same job); API req/run <= 1.5 (webhooks) or <= 3 (poll-only); "
    )
    print("\n" + targets + "p50 < 50 ms with webhooks; peak RSS < 200 MB")
    figures: dict[str, Any] = {}
    if fire_figures is not None:
        figures["big fire"] = fire_figures
    if not math.isnan(alone):
        figures["baselines"] = {
            "emulator_creates_per_s": alone,
            "thin_client_runs_per_s": thin,
            "thin_client_cpu_per_run_ms": thin_cpu,
        }
    for r in results:
        figure = dataclasses.asdict(r)
        del figure["label"], figure["light"], figure["threads"]
        if not r.light and not math.isnan(thin):
            figure["share_of_thin_client"] = r.create_rate / thin
        figures[r.label] = figure
    for m in memory:
        figures[f"rss with {m.runs_in_flight} in flight over {m.desktops} desktops"] = {
            "idle_mb": m.idle_mb,
            "peak_mb": m.peak_mb,
            "seconds_to_reach": m.seconds,
        }
    return figures


if __name__ == "__main__":
    main()
