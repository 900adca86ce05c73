"""Fire -> items: which input sets run, and on which desktops when the job fans out over machines."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from cyberdesk_runner.catalog import ActiveJob
from cyberdesk_runner.fleet import Desktop, Fleet
from cyberdesk_runner.spec import JobFileError, load_items
from cyberdesk_runner.store.records import NewItem


class PlanningError(Exception):
    """A fire cannot be planned; the message says why (shown in `fires` and `show`)."""


def plan_items(
    *,
    fan_out: str,
    input_sets: Sequence[Mapping[str, Any]],
    overrides: Mapping[str, Any] | None,
    desktops: Sequence[Desktop],
    job_name: str,
) -> list[NewItem]:
    """Items of one fire.

    `fan_out: items` gives one item per input set, to run on any desktop of the target. `fan_out: machines`
    gives every input set once on every selected desktop, each run then picks up that desktop's parameters.
    """
    inputs = [{**dict(s), **dict(overrides or {})} for s in input_sets]
    if fan_out == "machines":
        if not desktops:
            raise PlanningError(f"job {job_name}: its target selects no desktop")
        return [NewItem(i, machine_id=d.id, machine_name=d.name) for d in desktops for i in inputs]
    return [NewItem(i) for i in inputs]


def build_items(job: ActiveJob, fleet: Fleet, overrides: Mapping[str, Any] | None) -> list[NewItem]:
    """The items of a new fire of `job`, or PlanningError saying why it cannot run."""
    if job.workflow_error:
        raise PlanningError(job.workflow_error)
    if job.workflow_id is None:
        raise PlanningError(
            f"job {job.name}: its workflows {list(job.loaded.spec.workflows)!r} are not resolved yet"
        )
    try:
        input_sets = load_items(job.loaded)
    except JobFileError as exc:
        raise PlanningError(str(exc)) from exc
    desktops = [d for d in fleet.select(job.target) if d.connected]
    if not fleet.select(job.target):
        raise PlanningError(f"job {job.name}: its target selects no desktop")
    return plan_items(
        fan_out=str(job.loaded.spec.fan_out),
        input_sets=input_sets,
        overrides=overrides,
        desktops=desktops,
        job_name=job.name,
    )
