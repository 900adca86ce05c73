"""The bodies of an attempt's create call (`POST /v1/runs`) and chain call (`POST /v1/runs/chain`), built the same
way on every repeat of the attempt: the API refuses a known idempotency key with another body."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from cyberdesk import UNSET, ChainStep, FileInput, RunCreate, WorkflowChainCreate
from cyberdesk_runner.catalog import ActiveJob
from cyberdesk_runner.fleet import Desktop, Fleet
from cyberdesk_runner.store.records import AttemptRef

__all__ = ["chain_create", "run_create"]


def run_create(ref: AttemptRef, sensitive: dict[str, str], files: list[FileInput]) -> RunCreate:
    # The body must be the same on every repeat of one attempt: the API refuses a known key with another body.
    fields: dict[str, Any] = {
        "workflow_id": ref.workflow_id,
        "machine_id": ref.machine_id,
        "input_values": dict(ref.inputs),
        "is_priority": ref.priority,
    }
    if sensitive:
        fields["sensitive_input_values"] = sensitive
    if files:
        fields["file_inputs"] = files
    return RunCreate(**fields)


def chain_create(
    ref: AttemptRef,
    job: ActiveJob,
    fleet: Fleet,
    sensitive: dict[str, str],
    step_sensitive: Sequence[dict[str, str]],
    files: list[FileInput],
) -> WorkflowChainCreate:
    """The chain call of one attempt: the item's values are every step's shared inputs, each step adds its own
    (static, or `{"$ref": "alias.outputs.path"}` read by the API from an earlier step). Built the same way on
    every repeat of the attempt (same key, same body)."""
    spec = job.loaded.spec
    steps = [
        ChainStep(
            workflow_id=job.workflow_ids[i],
            session_alias=step.alias if step.alias is not None else UNSET,
            inputs=dict(step.inputs) if step.inputs else UNSET,
            sensitive_inputs=step_sensitive[i] or UNSET,
        )
        for i, step in enumerate(spec.steps or ())
    ]
    fields: dict[str, Any] = {
        "steps": steps,
        "machine_id": ref.machine_id,
        "shared_inputs": dict(ref.inputs),
        "is_priority": ref.priority,
        "keep_session_after_completion": spec.keep_session,
    }
    pool_ids = _pool_ids(fleet.get(ref.machine_id), job.target.pool)
    if pool_ids:
        fields["pool_ids"] = pool_ids
    if sensitive:
        fields["shared_sensitive_inputs"] = sensitive
    if files:  # the job's files go to the session once, for every step
        fields["shared_file_inputs"] = files
    return WorkflowChainCreate(**fields)


def _pool_ids(desktop: Desktop | None, pool: str | None) -> list[str]:
    """The target's pool as ids: given by id, or by name when the desktop is in one pool only."""
    if desktop is None or pool is None:
        return []
    if pool in desktop.pool_ids:
        return [pool]
    if pool in desktop.pool_names and len(desktop.pool_ids) == 1:
        return list(desktop.pool_ids)
    return []
