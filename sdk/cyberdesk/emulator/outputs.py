"""What an ended run leaves behind: its exported files (workflows with `includes_file_exports`) and its
`usage_metadata`, both deterministic, and `usage.aggregate` over runs.

Emulator choices (the API documents neither): a successful run of an exporting workflow exports one CSV naming
the run and its inputs, or the files its fixture's `exports` list; usage counts one agentic step per input plus
three, one cached step when the workflow has a generated trajectory, 1,000 input and 200 output tokens per step,
and the run's simulated seconds as billed seconds. An `error` run is an infrastructure failure: free when billed.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from typing import Any

from cyberdesk.emulator.records import Run, Workflow


class _Blank(dict[str, Any]):
    def __missing__(self, key: str) -> str:
        return ""


def exported_files(run: Run, workflow: Workflow) -> list[tuple[str, bytes, str]]:
    """(filename, content, content type) of each file a successful run of `workflow` exports."""
    inputs = run.input_values or {}
    if workflow.exports is not None:
        values = _Blank({k: v for k, v in inputs.items()}, run_id=run.id)
        return [
            (name.format_map(values), text.format_map(values).encode(), _content_type(name))
            for name, text in workflow.exports
        ]
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["run_id", "workflow", "input", "value"])
    for key, value in sorted(inputs.items()):
        writer.writerow([run.id, workflow.name or workflow.id, key, value])
    if not inputs:
        writer.writerow([run.id, workflow.name or workflow.id, "", ""])
    return [(f"export-{run.id[:8]}.csv", out.getvalue().encode(), "text/csv")]


def _content_type(filename: str) -> str:
    suffix = filename.rsplit(".", 1)[-1].lower() if "." in filename else ""
    return {"csv": "text/csv", "pdf": "application/pdf", "txt": "text/plain", "json": "application/json"}.get(
        suffix, "application/octet-stream"
    )


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
