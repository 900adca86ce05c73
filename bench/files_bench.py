"""Files in and out: what `files:` costs a daemon, and how fast output attachments come down. JSON output.

    python bench/files_bench.py [--items 1000] [--size-mb 1] [--desktops 1000] [--json PATH|-]

Separate processes, as in runner_bench.py: one emulator (its fleet has `--desktops` desktops, so desktops are
never the limit), one daemon (`cyberdesk-runner run`, SQLite store). Figures:

(in)  the same `--items` job twice, without files and with `files:` attaching one `--size-mb` MB file per item
      (distinct random bytes): runs created per second (trigger -> every attempt has its run), and the daemon's
      peak RSS (VmHWM) over the job. The files are read, hashed and base64-encoded at each create call, with at
      most `dispatch.max_in_flight_requests` (32) calls in flight: the extra memory is bounded by that, not by
      the job's size.
(out) `--items` runs of a workflow that exports one `--size-mb` MB file each: this process records them
      (`note_fire_outputs`, one list call per run) and downloads them (`download_round` until none is left, 8
      at a time, streamed into .part files): seconds, MB/s, and this process's peak RSS.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import tempfile
import textwrap
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from report import add_json_option, tables_to_stderr, write_json
from runner_bench import (
    API_KEY,
    Emulator,
    Store,
    _count,
    _peak_rss_mb,
    _start_daemons,
    _stop,
    _wait_ready,
    farm,
    serve_emulator,
)

WORKFLOW = "Bench work"
EXPORTER = "Bench export"


@contextmanager
def emulator(work: Path, desktops: int, size_mb: float) -> Iterator[Emulator]:
    exporter = {
        "name": EXPORTER,
        "prompt": "Export one record.",
        "exports": [{"filename": "export-{n}.txt", "content": "{n}\n" + "x" * int(size_mb * 1e6)}],
    }
    fixture = farm(desktops, [{"name": WORKFLOW, "prompt": "Process one record."}, exporter])
    with serve_emulator(work, fixture, speed=1000.0, run_duration="1-2", webhook_rate=None) as emu:
        yield emu


def _jobs(work: Path, name: str, items: int, workflow: str, files_mb: float | None) -> Path:
    jobs = work / f"jobs-{name}"
    jobs.mkdir()
    (jobs / "items.jsonl").write_text("".join(json.dumps({"n": n}) + "\n" for n in range(items)))
    files = ""
    if files_mb is not None:
        (jobs / "docs").mkdir()
        for n in range(items):
            (jobs / "docs" / f"{n}.bin").write_bytes(os.urandom(int(files_mb * 1e6)))
        files = "files: [{path: 'docs/{n}.bin', target_path: 'C:\\\\Inbox', cleanup: true}]"
    (jobs / "bench.yaml").write_text(
        textwrap.dedent(f"""
        name: bench
        workflow: {workflow}
        target: {{pool: farm}}
        items_from: items.jsonl
        concurrency: {items}
        timeout: 2h
        retry: {{max_attempts: 1}}
        """)
        + files
        + "\n"
    )
    return jobs


def _trigger(url: str) -> str:
    from cyberdesk_runner.store import Store as RunnerStore
    from cyberdesk_runner.store.records import NewFire

    store = RunnerStore(url)
    try:
        fire_id = store.fires.request(NewFire("bench", "manual", None), datetime.now(UTC))
        assert fire_id is not None
        return str(fire_id)
    finally:
        store.close()


def _wait(engine: sa.Engine, query: str, target: int, timeout: float) -> float:
    start = time.perf_counter()
    while _count(engine, query) < target:
        if time.perf_counter() - start > timeout:
            raise TimeoutError(f"{query} did not reach {target} in {timeout} s")
        time.sleep(0.05)
    return time.perf_counter() - start


def files_in(work: Path, emu: Emulator, items: int, size_mb: float | None) -> dict[str, float]:
    name = "files" if size_mb is not None else "plain"
    store = Store(f"sqlite:///{work / f'store-{name}.sqlite'}")
    jobs = _jobs(work, name, items, WORKFLOW, size_mb)
    [daemon] = _start_daemons(
        work, emu, store, jobs, 1, poll_only=True, poll_interval="2s", log_level="warning"
    )
    engine = sa.create_engine(store.url)
    try:
        _wait_ready(engine, [daemon])
        _trigger(store.url)
        seconds = _wait(engine, "SELECT count(*) FROM attempt WHERE run_id IS NOT NULL", items, 1800)
        rss = _peak_rss_mb(daemon.pid)
        rejected = _count(engine, "SELECT count(*) FROM attempt WHERE status = 'rejected'")
    finally:
        engine.dispose()
        _stop(daemon)
    return {
        "runs_created_per_s": items / seconds,
        "seconds": seconds,
        "daemon_peak_rss_mb": rss,
        "rejected": rejected,
    }


def files_out(work: Path, emu: Emulator, items: int) -> dict[str, float]:
    from cyberdesk import CyberdeskClient
    from cyberdesk_runner.files.outputs import DownloadRound, download_round, note_fire_outputs
    from cyberdesk_runner.store import Store as RunnerStore

    store = Store(f"sqlite:///{work / 'store-out.sqlite'}")
    jobs = _jobs(work, "out", items, EXPORTER, None)
    [daemon] = _start_daemons(
        work, emu, store, jobs, 1, poll_only=True, poll_interval="1s", log_level="warning"
    )
    engine = sa.create_engine(store.url)
    try:
        _wait_ready(engine, [daemon])
        fire_id = _trigger(store.url)
        _wait(engine, "SELECT count(*) FROM item WHERE status = 'succeeded'", items, 1800)
    finally:
        engine.dispose()
        _stop(daemon)
    folder = work / "downloads"

    async def run() -> tuple[float, float, DownloadRound]:
        runner_store = RunnerStore(store.url)
        client = CyberdeskClient(API_KEY, base_url=emu.base_url)
        try:
            start = time.perf_counter()
            await note_fire_outputs(runner_store, client, fire_id, "bench", folder)
            noted = time.perf_counter() - start
            total = DownloadRound()
            start = time.perf_counter()
            while (
                done := await download_round(runner_store, client, datetime.now(UTC), limit=64)
            ) != DownloadRound():
                total = DownloadRound(
                    total.downloaded + done.downloaded,
                    total.existed + done.existed,
                    total.failed + done.failed,
                    total.bytes + done.bytes,
                )
            return noted, time.perf_counter() - start, total
        finally:
            await client.aclose()
            runner_store.close()

    noted, seconds, total = asyncio.run(run())
    return {
        "list_seconds": noted,
        "download_seconds": seconds,
        "downloaded": total.downloaded,
        "failed": total.failed,
        "mb": total.bytes / 1e6,
        "mb_per_s": total.bytes / 1e6 / seconds,
        "bench_peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--items", type=int, default=1000)
    parser.add_argument("--size-mb", type=float, default=1.0)
    parser.add_argument("--desktops", type=int, default=1000)
    add_json_option(parser)
    args = parser.parse_args()
    figures: dict[str, Any] = {}
    with tables_to_stderr(args.json), tempfile.TemporaryDirectory(prefix="files-bench-") as tmp:
        work = Path(tmp)
        with emulator(work, args.desktops, args.size_mb) as emu:
            figures["in_plain"] = files_in(work, emu, args.items, None)
            print("files in, without files:", figures["in_plain"])
            figures["in_files"] = files_in(work, emu, args.items, args.size_mb)
            print(f"files in, {args.size_mb} MB each:", figures["in_files"])
        with emulator(work, args.desktops, args.size_mb) as emu:
            figures["out"] = files_out(work, emu, args.items)
            print(f"files out, {args.size_mb} MB each:", figures["out"])
    write_json(args.json, "files", figures, items=args.items, size_mb=args.size_mb, desktops=args.desktops)


if __name__ == "__main__":
    main()
