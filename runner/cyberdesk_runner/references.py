"""A job's references to Cyberdesk things (its workflow, pool and desktops), checked against what the API has.

`validate` and the daemon report the same problems, each as `file:line:col: field: message` with the closest
existing names, so a misspelt name is caught before a fire fails as "unplanned".
"""

from __future__ import annotations

import uuid
from collections.abc import Hashable, Iterable, Mapping, Sequence

import attrs

from cyberdesk import CyberdeskClient
from cyberdesk_runner.spec import LoadedJob, SpecError
from cyberdesk_runner.spec.diagnostics import suggest

__all__ = ["ApiNames", "fetch_api_names", "list_workflows", "resolve_workflow", "unknown_references"]

#: Known names listed in a message when none is close to the one written.
_LISTED = 10


@attrs.frozen
class ApiNames:
    """id -> name (None when the API gives none) of every workflow, pool and desktop the API knows."""

    workflows: Mapping[str, str | None]
    pools: Mapping[str, str | None]
    machines: Mapping[str, str | None]


async def list_workflows(
    client: CyberdeskClient, *, without_exports: set[str] | None = None
) -> dict[str, str | None]:
    """Every workflow, id -> name (raises CyberdeskError when a page fails); `without_exports`, when given, gets
    the ids of those the API says export no files (their runs' attachments are not listed: files/outputs.py)."""
    names: dict[str, str | None] = {}
    async for w in client.workflows.iter():
        names[str(w.id)] = _text(w.name)
        if without_exports is not None and w.includes_file_exports is False:
            without_exports.add(str(w.id))
    return names


async def fetch_api_names(client: CyberdeskClient) -> ApiNames:
    """List every workflow, pool and desktop (raises CyberdeskError when a page fails)."""
    workflows = await list_workflows(client)
    pools = {str(p.id): _text(p.name) async for p in client.pools.iter()}
    machines = {str(m.id): _text(m.name) async for m in client.machines.iter()}
    return ApiNames(workflows, pools, machines)


def resolve_workflow(ref: str, workflows: Mapping[str, str | None]) -> tuple[str | None, str | None]:
    """(workflow id, None), or (None, why not) for an unknown or ambiguous name or id."""
    if _is_uuid(ref):
        key = str(uuid.UUID(ref))
        return (key, None) if key in workflows else (None, f"workflow {ref} does not exist in Cyberdesk")
    ids = [wf_id for wf_id, name in workflows.items() if name == ref]
    if len(ids) == 1:
        return ids[0], None
    if not ids:
        return None, _unknown("workflow", ref, workflows.values())
    return None, f"{len(ids)} workflows are named {ref!r}; give the workflow's id instead"


def unknown_references(job: LoadedJob, names: ApiNames) -> list[SpecError]:
    """Every workflow, pool and desktop `job` names that the API does not have, pointing at where it is named."""
    errors = []
    places: list[tuple[Hashable, ...]] = (
        [("steps", i, "workflow") for i in range(len(job.spec.steps))] if job.spec.steps else [("workflow",)]
    )
    for at_workflow, ref in zip(places, job.spec.workflows, strict=False):
        _, workflow_error = resolve_workflow(ref, names.workflows)
        if workflow_error is not None:
            errors.append(job.error_at(at_workflow, workflow_error))
    target = job.spec.target
    if target.pool is not None and not _known(target.pool, names.pools):
        errors.append(job.error_at(("target", "pool"), _unknown("pool", target.pool, names.pools.values())))
    for index, machine in enumerate(target.machines or ()):
        if not _known(machine, names.machines):
            at: Sequence[Hashable] = ("target", "machines", index)
            errors.append(job.error_at(at, _unknown("desktop", machine, names.machines.values())))
    return errors


def _known(ref: str, names: Mapping[str, str | None]) -> bool:
    """A pool or desktop is selected by id or by name (as `Fleet.select` does)."""
    if _is_uuid(ref) and str(uuid.UUID(ref)) in names:
        return True
    return ref in names or ref in names.values()


def _unknown(kind: str, ref: str, names: Iterable[str | None]) -> str:
    known = sorted({name for name in names if name})
    hint = suggest(ref, known, n=3)
    if not hint:
        listed = ", ".join(repr(name) for name in known[:_LISTED]) or "none"
        hint = f" (known: {listed}{', ...' if len(known) > _LISTED else ''})"
    return f"no {kind} is named {ref!r} in Cyberdesk{hint}"


def _is_uuid(text: str) -> bool:
    try:
        uuid.UUID(text)
    except ValueError:
        return False
    return True


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None
