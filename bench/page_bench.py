"""The status page under load: 1,000 jobs and 10,000 items in flight.

    python bench/page_bench.py [--jobs 1000] [--items 10000] [--browsers 5] [--hold 30] [--json PATH]

A daemon (`cyberdesk-runner run`, its own process, embedded emulator) serves the page from an SQLite store holding
`--jobs` jobs (a third with cron schedules) and one running fire per job, `--items` items in all, pending: the
emulator's desktops are all disconnected, so the work stays in flight for the whole benchmark. Figures (JSON):

- server time of `/`: one request at a time, each after the page's one-second shared cache has lapsed, so
  each one asks the store again and renders (target p50 < 200 ms); and a request served from that cache;
- load in Chromium (Debian's package, as the browser tests drive it): navigation start to the load event
  (target < 1 s);
- the daemon's CPU (utime + stime from /proc) over `--hold` seconds with no page open, then with `--browsers`
  browser contexts (separate sessions, each polling every 2 s) holding the page open: the difference is what
  the page costs.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests" / "runner" / "web"))

from browser_support import CHROMIUM_ARGS, chromium_path  # noqa: E402

from cyberdesk_runner.store import Store  # noqa: E402
from cyberdesk_runner.store.records import NewFire, NewItem  # noqa: E402

FLEET = (
    """
pools:
  - name: desks
machines:
"""
    + "".join(f"  - {{name: desk-{i:02d}, pools: [desks], status: disconnected}}\n" for i in range(12))
    + """
workflows:
  - {name: Work, prompt: "Do {n}."}
"""
)


def write_setup(folder: Path, jobs: int) -> Path:
    (folder / "jobs").mkdir()
    for index in range(jobs):
        schedule = (
            f'schedule: {{cron: "{index % 60} 6 * * 1-5", timezone: Europe/Paris}}\n'
            if index % 3 == 0
            else ""
        )
        (folder / "jobs" / f"job-{index:04d}.yaml").write_text(
            f"name: job-{index:04d}\nworkflow: Work\ntarget: {{pool: desks}}\nitems: [{{n: 1}}]\n{schedule}"
        )
    (folder / "fleet.yaml").write_text(FLEET)
    config = folder / "config.yaml"
    config.write_text(
        textwrap.dedent(f"""
        store: sqlite:///{folder / "store.sqlite"}
        jobs: jobs
        server: {{listen: "127.0.0.1:0"}}
        log: {{level: warning}}
        emulator: {{fixture: fleet.yaml, seed: 1}}
        """)
    )
    return config


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wait_for(check, timeout: float, what: str):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.2)
    raise SystemExit(f"timed out waiting for {what}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--items", type=int, default=10_000)
    parser.add_argument("--browsers", type=int, default=5)
    parser.add_argument("--hold", type=float, default=30.0)
    parser.add_argument("--requests", type=int, default=10)
    parser.add_argument("--json", metavar="PATH", default="-", help="where to write the figures (- : stdout)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        config = write_setup(folder, args.jobs)
        url_file = folder / "http.log"
        daemon = subprocess.Popen(
            [str(Path(sys.executable).parent / "cyberdesk-runner"), "run", "--config", str(config)],
            stdout=url_file.open("w"),
            stderr=subprocess.STDOUT,
        )
        try:
            store = Store(f"sqlite:///{folder / 'store.sqlite'}")
            wait_for(
                lambda: store.is_initialised() and len(store.jobs.all()) == args.jobs, 120, "the jobs to load"
            )
            per_job = args.items // args.jobs
            now = datetime.now(UTC)
            for job in store.jobs.all():
                store.fires.insert(
                    NewFire(job.name, "manual", None), [NewItem({"n": n}) for n in range(per_job)], now
                )
            # The daemon's address (port 0: a free one): its webhook URL, recorded with its heartbeat.
            base = wait_for(
                lambda: next(
                    (
                        str(d.health.get("webhook_url") or "").rsplit("/webhooks", 1)[0]
                        for d in store.queries.daemon_views()
                        if d.health and d.health.get("webhook_url")
                    ),
                    None,
                ),
                60,
                "the daemon's heartbeat",
            )
            counts = store.counts.work()
            store.close()
            result: dict[str, object] = {
                "jobs": args.jobs,
                "items_in_flight": counts.pending_items + counts.running_items,
                "fires_in_flight": args.jobs,
            }
            client = httpx.Client(base_url=base, timeout=30)
            client.get("/")  # warm: templates compiled, job schedules parsed
            times = []
            for _ in range(args.requests):
                time.sleep(1.1)  # past the shared one-second cache: the store is asked again
                started = time.perf_counter()
                response = client.get("/")
                times.append((time.perf_counter() - started) * 1000)
                assert response.status_code == 200
            started = time.perf_counter()
            client.get("/")
            cached_ms = (time.perf_counter() - started) * 1000
            result["page_bytes"] = len(response.content)
            result["server_ms"] = {
                "p50": round(statistics.median(times), 1),
                "max": round(max(times), 1),
                "cached": round(cached_ms, 1),
                "target_p50": 200,
            }
            result |= browser_figures(base, args, daemon.pid)
        finally:
            daemon.terminate()
            daemon.wait(timeout=60)
    text = json.dumps(result, indent=2)
    if args.json == "-":
        print(text)
    else:
        Path(args.json).write_text(text + "\n")


def browser_figures(base: str, args: argparse.Namespace, pid: int) -> dict[str, object]:
    from playwright.sync_api import sync_playwright

    path = chromium_path()
    if path is None:
        return {"browser": "no chromium on PATH"}
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=path, args=CHROMIUM_ARGS)
        loads = []
        for _ in range(5):
            context = browser.new_context()
            page = context.new_page()
            time.sleep(1.1)
            page.goto(base + "/", wait_until="load")
            loads.append(
                page.evaluate(
                    "(() => { const n = performance.getEntriesByType('navigation')[0];"
                    " return n.loadEventEnd - n.startTime; })()"
                )
            )
            context.close()
        idle_before = cpu_seconds(pid)
        time.sleep(args.hold)
        idle = cpu_seconds(pid) - idle_before
        contexts = [browser.new_context() for _ in range(args.browsers)]
        for context in contexts:
            context.new_page().goto(base + "/")
        busy_before = cpu_seconds(pid)
        time.sleep(args.hold)
        busy = cpu_seconds(pid) - busy_before
        for context in contexts:
            context.close()
        browser.close()
    return {
        "chromium_load_ms": {
            "p50": round(statistics.median(loads), 1),
            "max": round(max(loads), 1),
            "target": 1000,
        },
        "daemon_cpu_percent": {
            "no_page_open": round(100 * idle / args.hold, 1),
            f"{args.browsers}_pages_open": round(100 * busy / args.hold, 1),
            "extra": round(100 * (busy - idle) / args.hold, 1),
            "hold_s": args.hold,
        },
    }


if __name__ == "__main__":
    main()
