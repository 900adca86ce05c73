"""Usage: the deterministic `usage_metadata` of an ended run, and `usage.aggregate` over runs.

Emulator choices (the API documents none): usage counts one agentic step per input plus three, one cached step
when the workflow has a generated trajectory, 1,000 input and 200 output tokens per step, and the run's simulated
seconds as billed seconds. An `error` run is an infrastructure failure: free when billed.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from cyberdesk.emulator.records import Run


def usage_metadata(run: Run, speed: float, cached: bool) -> dict[str, Any]:
    """The run's usage, the same for the same inputs and simulated duration."""
    ran = run.started_at is not None and run.ended_at is not None
    agentic = (3 + len(run.input_values or {})) if ran else 0
    cached_steps = 1 if ran and cached else 0
    billed_seconds = round((run.ended_at - run.started_at) * speed) if ran else 0  # type: ignore[operator]
    infra = run.status == "error"
    return {
        "total_agentic_steps": agentic,
        "total_cached_steps": cached_steps,
        "total_agentic_steps_billed": 0 if infra else agentic,
        "total_cached_steps_billed": 0 if infra else cached_steps,
        "billing_outcome": "infra_failure" if infra else "billable",
        "input_tokens": 1000 * (agentic + cached_steps),
        "output_tokens": 200 * (agentic + cached_steps),
        "total_tokens": 1200 * (agentic + cached_steps),
        "billed_seconds": 0 if infra else billed_seconds,
    }


def aggregate(runs: Iterable[Run], mode: str) -> tuple[int, int, int]:
    """(agentic steps, cached steps, runs counted) as `usage.aggregate` counts them in `mode`."""
    agentic = cached = counted = 0
    for run in runs:
        usage = run.usage_metadata
        if not usage:
            continue
        if mode == "billed":
            agentic += int(usage.get("total_agentic_steps_billed", 0))
            cached += int(usage.get("total_cached_steps_billed", 0))
        elif usage.get("billing_outcome") == "infra_failure":
            continue
        else:
            agentic += int(usage.get("total_agentic_steps", 0))
            cached += int(usage.get("total_cached_steps", 0))
        counted += 1
    return agentic, cached, counted
