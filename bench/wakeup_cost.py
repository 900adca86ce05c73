"""What a thread pays in CPU for waking up: the same piece of the daemon's work, timed in thread CPU time, run in a
tight loop and run once after each short sleep.

    python bench/wakeup_cost.py [--wakes 1000] [--sleep-ms 5] [--reps 1 4 16 64] [--json PATH|-]

The piece of work is what the daemon does for each webhook before the store: verify its Standard Webhooks
signature and parse its body into a typed event (`cyberdesk.webhooks.verify`). For each `--reps` R, it is timed R times in a
row per wake, both warm (no sleep between wakes) and after sleeping `--sleep-ms`. The figure is the extra CPU per
wake: (after-sleep - warm) per wake. If it stays about the same whatever R is, the cost is a fixed price for
waking (cold caches and branch predictors after another process ran), not slower work.

Why it matters: with webhooks capped at 200/s (`runner_bench.py --webhook-rate 200`), news comes ~5 ms apart and
every run costs the daemon ~5 wakes across its threads (webhook, store thread, back to the event loop, the create
answer), each paying this price; at full speed one wake serves dozens of runs. `tracking.news_window` trades
latency for fewer wakes.
"""

from __future__ import annotations

import argparse
import base64
import json
import time
from collections.abc import Callable

from report import add_json_option, tables_to_stderr, write_json

from cyberdesk.webhooks import sign, verify

SECRET = "whsec_" + base64.b64encode(b"wakeup-cost-bench-secret-0123456").decode()


def webhook_work() -> Callable[[], None]:
    """One webhook's verification and parse, as the daemon's receiver does it."""
    run = {
        "id": "3f1c2b7e-0000-4000-8000-000000000001",
        "workflow_id": "3f1c2b7e-0000-4000-8000-000000000002",
        "machine_id": "3f1c2b7e-0000-4000-8000-000000000003",
        "status": "success",
        "created_at": "2026-12-05T10:00:00Z",
        "ended_at": "2026-12-05T10:01:00Z",
        "input_values": {"claim": "C-1001", "amount": "120.00"},
        "output_data": {"confirmation": "OK-1001"},
    }
    body = json.dumps({"event_type": "run_complete", "occurred_at": run["ended_at"], "run": run}).encode()
    headers = sign(body, SECRET, msg_id="msg_1")

    def work() -> None:
        verify(body, headers, SECRET)

    return work


def cpu_per_wake_us(work: Callable[[], None], wakes: int, reps: int, sleep_s: float) -> float:
    total = 0
    for _ in range(wakes):
        if sleep_s:
            time.sleep(sleep_s)
        started = time.thread_time_ns()
        for _ in range(reps):
            work()
        total += time.thread_time_ns() - started
    return total / wakes / 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--wakes", type=int, default=1000)
    parser.add_argument("--sleep-ms", type=float, default=5.0)
    parser.add_argument("--reps", type=int, nargs="+", default=[1, 4, 16, 64])
    add_json_option(parser)
    args = parser.parse_args()
    work = webhook_work()
    cpu_per_wake_us(work, 200, 1, 0)  # imports and first-call caches out of the way
    figures: dict[str, dict[str, float]] = {}
    with tables_to_stderr(args.json):
        print(f"{'reps':>5} {'warm us/wake':>13} {'after sleep':>12} {'extra us/wake':>14} {'ratio':>6}")
        for reps in args.reps:
            warm = cpu_per_wake_us(work, args.wakes, reps, 0)
            cold = cpu_per_wake_us(work, args.wakes, reps, args.sleep_ms / 1000)
            figures[f"reps_{reps}"] = {
                "warm_us_per_wake": warm,
                "after_sleep_us_per_wake": cold,
                "extra_us_per_wake": cold - warm,
                "ratio": cold / warm,
            }
            print(f"{reps:>5} {warm:>13.1f} {cold:>12.1f} {cold - warm:>14.1f} {cold / warm:>6.2f}")
    write_json(args.json, "wakeup_cost", figures, wakes=args.wakes, sleep_ms=args.sleep_ms)


if __name__ == "__main__":
    main()
