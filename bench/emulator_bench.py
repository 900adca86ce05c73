"""Throughput of the emulator: POST /v1/runs and GET /v1/runs/{id} per second at 8 and 64 in flight, and the
rate at which it delivers webhooks.

    python bench/emulator_bench.py [--seconds 3] [--concurrency 8 64] [--deliveries 6000]

The emulator runs in a subprocess (uvicorn with httptools + uvloop, the demo fleet, speed 1) so client
and server each get a core; the client is httpx over the httpx-aiohttp transport (docs: performance notes).

Webhook deliveries: a second emulator, started the way users start it (`python -m cyberdesk.emulator` with
`--webhook-url`), gets `--deliveries` runs on as many desktops, all lasting exactly an hour; then its clock is
moved an hour forward (`POST /_emulator/advance`), so every run ends at once and every `run_complete` webhook
comes due together. A bare receiver in its own
process (raw ASGI under uvicorn, answers 200, checks nothing) counts them: deliveries per second is how many
arrived over the time from the first to the last.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
from httpx_aiohttp import AiohttpTransport
from report import add_json_option, tables_to_stderr, write_json

API_KEY = "bench-key"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def start_emulator(port: int, *options: str) -> subprocess.Popen[bytes]:
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(root / "sdk"), os.environ.get("PYTHONPATH", "")])}
    cmd = [sys.executable, "-m", "cyberdesk.emulator", "--port", str(port), "--api-key", API_KEY, *options]
    return subprocess.Popen(
        [*cmd, "--seed", "1", "--log-level", "warning"], env=env, stdout=subprocess.DEVNULL
    )


async def wait_ready(client: httpx.AsyncClient, deadline: float) -> None:
    while True:
        try:
            if (await client.get("/v1/health")).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError("emulator did not start")
        await asyncio.sleep(0.05)


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) used so far by a process, from /proc (Linux); 0.0 elsewhere."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def measure(
    in_flight: int, seconds: float, call: Callable[[int], Awaitable[None]]
) -> tuple[float, int]:
    """(requests per second, requests done) with `in_flight` tasks issuing requests back to back."""
    done = 0
    stop_at = time.perf_counter() + seconds

    async def worker(n: int) -> None:
        nonlocal done
        i = n
        while time.perf_counter() < stop_at:
            await call(i)
            done += 1
            i += in_flight

    start = time.perf_counter()
    await asyncio.gather(*(worker(n) for n in range(in_flight)))
    return done / (time.perf_counter() - start), done


Row = tuple[int, float, float, float, float]


async def bench(base_url: str, server_pid: int, seconds: float, levels: list[int]) -> list[Row]:
    headers = {"Authorization": f"Bearer {API_KEY}"}
    limits = httpx.Limits(max_connections=max(levels), max_keepalive_connections=max(levels))
    async with httpx.AsyncClient(
        transport=AiohttpTransport(limits=limits), base_url=base_url, headers=headers, timeout=30
    ) as client:
        await wait_ready(client, time.monotonic() + 20)
        workflows = (await client.get("/v1/workflows")).json()["items"]
        workflow_id = next(w["id"] for w in workflows if w["name"] == "Submit insurance claim")
        run_ids: list[str] = []

        async def create(i: int) -> None:
            body = {
                "workflow_id": workflow_id,
                "input_values": {"claim_id": f"C-{i}", "patient_name": "Ann Lee", "amount": "120.00"},
                "is_priority": False,
                "start_session": False,
            }
            response = await client.post(
                "/v1/runs", json=body, headers={"Idempotency-Key": f"bench-{time.time_ns()}-{i}"}
            )
            if response.status_code != 201:
                raise RuntimeError(f"create failed: {response.status_code} {response.text}")
            run_ids.append(response.json()["id"])

        async def get(i: int) -> None:
            response = await client.get(f"/v1/runs/{run_ids[i % len(run_ids)]}")
            if response.status_code != 200:
                raise RuntimeError(f"get failed: {response.status_code}")

        await measure(8, 0.5, create)  # warm-up: connections, code paths

        async def cell(level: int, call: Callable[[int], Awaitable[None]]) -> tuple[float, float]:
            cpu = cpu_seconds(server_pid)
            rate, done = await measure(level, seconds, call)
            return rate, (cpu_seconds(server_pid) - cpu) / max(done, 1) * 1e6

        results = []
        for level in levels:
            creates, create_cpu = await cell(level, create)
            gets, get_cpu = await cell(level, get)
            results.append((level, creates, create_cpu, gets, get_cpu))
        stats = (await client.get("/_emulator/stats")).json()
        print(f"runs in memory at the end: {stats['runs']['in_memory']}, duplicates: {stats['duplicates']}")
        return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="duration of each measurement")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[8, 64])
    parser.add_argument(
        "--deliveries",
        type=int,
        default=6000,
        help="webhooks delivered in the delivery measurement (0: skip)",
    )
    add_json_option(parser)
    args = parser.parse_args()
    with tables_to_stderr(args.json):
        figures = run_cells(args)
        if args.deliveries:
            figures["webhooks"] = delivery_rate(args.deliveries)
    write_json(args.json, "emulator_bench", figures, seconds=args.seconds)


# -- webhook deliveries ---------------------------------------------------------------------------------------

# A receiver that costs next to nothing: it counts deliveries and keeps the time of each; `GET /` answers
# {"count": N, "first": t, "last": t} (time.monotonic of this process, which is the system's monotonic clock).
_RECEIVER_PROGRAM = """
import json, sys, time, uvicorn
times = []

async def app(scope, receive, send):
    more = True
    while more:
        more = (await receive()).get("more_body", False)
    body = b""
    if scope["method"] == "POST":
        times.append(time.monotonic())
    else:
        body = json.dumps({"count": len(times), "first": times[0] if times else None,
                           "last": times[-1] if times else None}).encode()
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": body})

uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning", lifespan="off",
            access_log=False)
"""

RUN_SECONDS = 3600.0  # every run lasts exactly this long, until the bench moves the clock


def delivery_rate(deliveries: int) -> dict[str, Any]:
    """Webhooks per second the emulator started from its CLI delivers when `deliveries` runs end together."""
    receiver_port, emulator_port = free_port(), free_port()
    receiver = subprocess.Popen(
        [sys.executable, "-c", _RECEIVER_PROGRAM, str(receiver_port)], stdout=subprocess.DEVNULL
    )
    with tempfile.TemporaryDirectory() as work:
        fixture = Path(work) / "fleet.yaml"
        machines = [{"name": f"desk-{n:05d}"} for n in range(deliveries)]
        workflows = [
            {"name": "Deliver", "prompt": "Finish.", "run_duration": f"{RUN_SECONDS:g}-{RUN_SECONDS:g}"}
        ]
        fixture.write_text(json.dumps({"machines": machines, "workflows": workflows}))  # JSON is YAML
        server = start_emulator(
            emulator_port,
            "--fixture", str(fixture),
            "--speed", "1",
            "--webhook-url", f"http://127.0.0.1:{receiver_port}/",
            "--webhook-secret", "whsec_" + base64.b64encode(b"emulator-bench-webhook-secret").decode(),
        )  # fmt: skip
        try:
            base_url = f"http://127.0.0.1:{emulator_port}"
            created_in = asyncio.run(_create_one_per_desktop(base_url, deliveries))
            httpx.post(
                f"{base_url}/_emulator/advance", json={"seconds": RUN_SECONDS}, timeout=60
            ).raise_for_status()
            count, first, last = _wait_for_deliveries(receiver_port, deliveries, timeout=120)
        finally:
            server.terminate()
            server.wait(10)
            receiver.terminate()
            receiver.wait(10)
    span = last - first
    rate = (count - 1) / span if span > 0 else float("nan")
    print(f"\nwebhook deliveries: {count:,} runs (created in {created_in:.1f} s) ending at once")
    print(f"  delivered {count:,} in {span:.2f} s: {rate:,.0f} deliveries/s (target >= 1,500/s)")
    return {
        "deliveries": count,
        "delivery_seconds": span,
        "deliveries_per_s": rate,
        "creates_seconds": created_in,
    }


async def _create_one_per_desktop(base_url: str, runs: int) -> float:
    """Create one run on each desktop (64 calls in flight); seconds taken."""
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
    headers = {"Authorization": f"Bearer {API_KEY}"}
    async with httpx.AsyncClient(
        transport=AiohttpTransport(limits=limits), base_url=base_url, headers=headers, timeout=60
    ) as client:
        await wait_ready(client, time.monotonic() + 30)
        workflow_id = (await client.get("/v1/workflows")).json()["items"][0]["id"]
        machine_ids: list[str] = []
        while len(
            page := (
                await client.get("/v1/machines", params={"limit": 100, "skip": len(machine_ids)})
            ).json()["items"]
        ):
            machine_ids += [m["id"] for m in page]
        if len(machine_ids) != runs:
            raise RuntimeError(f"the emulator has {len(machine_ids)} desktops, expected {runs}")
        todo = list(machine_ids)
        start = time.monotonic()

        async def worker() -> None:
            while todo:
                body = {"workflow_id": workflow_id, "machine_id": todo.pop(), "input_values": {}}
                response = await client.post("/v1/runs", json=body)
                if response.status_code != 201:
                    raise RuntimeError(f"create failed: {response.status_code} {response.text[:200]}")

        await asyncio.gather(*(worker() for _ in range(64)))
        took = time.monotonic() - start
    if took >= RUN_SECONDS:
        raise RuntimeError(
            f"creating the runs took {took:.1f} s, longer than a run: the deliveries would not bunch"
        )
    return took


def _wait_for_deliveries(port: int, expected: int, timeout: float) -> tuple[int, float, float]:
    deadline = time.monotonic() + timeout
    while True:
        state = httpx.get(f"http://127.0.0.1:{port}/", timeout=10).json()
        if state["count"] >= expected or time.monotonic() > deadline:
            return state["count"], state["first"] or 0.0, state["last"] or 0.0
        time.sleep(0.5)


def run_cells(args: argparse.Namespace) -> dict[str, Any]:
    port = free_port()
    server = start_emulator(port)
    try:
        results = asyncio.run(bench(f"http://127.0.0.1:{port}", server.pid, args.seconds, args.concurrency))
    finally:
        server.terminate()
        server.wait(10)
    print(
        f"\nemulator throughput ({os.cpu_count()} cores, {args.seconds:g} s per cell, httpx + httpx-aiohttp)"
    )
    print("server CPU = emulator process CPU time per request (the rest of a core goes to the client)")
    print(
        f"{'in flight':>9} | {'POST /v1/runs /s':>16} | {'server CPU':>10} | {'GET /v1/runs/{id} /s':>20} | {'server CPU':>10}"
    )
    print("-" * 78)
    for level, creates, create_cpu, gets, get_cpu in results:
        print(
            f"{level:>9} | {creates:>16,.0f} | {create_cpu:>7,.0f} us | {gets:>20,.0f} | {get_cpu:>7,.0f} us"
        )
    return {
        f"{level} in flight": {
            "creates_per_s": creates,
            "create_server_cpu_us": create_cpu,
            "gets_per_s": gets,
            "get_server_cpu_us": get_cpu,
        }
        for level, creates, create_cpu, gets, get_cpu in results
    }


if __name__ == "__main__":
    main()
