"""`trigger JOB --dry-run`: the plan of a manual fire of JOB as the daemon would make it now, from the job file and
the API's desktops; nothing is recorded in the store and nothing is created in Cyberdesk.

The items come from `planning.build_items` and the desktops from `Fleet.select`, the daemon's own code.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

import typer
from rich.console import Group, RenderableType
from rich.text import Text

from cyberdesk import CyberdeskClient, CyberdeskError
from cyberdesk_runner.catalog import ActiveJob, resolved_job
from cyberdesk_runner.cli.api import ask_api, where
from cyberdesk_runner.cli.common import ExitCode, fail, refuse_sensitive_inputs
from cyberdesk_runner.cli.render import details, print_json, show
from cyberdesk_runner.cli.shapes import inputs_json
from cyberdesk_runner.config import Config
from cyberdesk_runner.fleet import Desktop
from cyberdesk_runner.fleet_listing import FleetListing, list_fleet
from cyberdesk_runner.planning import PlanningError, build_items
from cyberdesk_runner.references import list_workflows
from cyberdesk_runner.spec import LoadedJob, load_jobs
from cyberdesk_runner.spec.errors import display_path

__all__ = ["dry_run"]

#: Desktops listed by name in the text output of one item; --json lists them all.
_SHOWN_DESKTOPS = 12


def dry_run(settings: Config, job_name: str, overrides: Mapping[str, str], *, as_json: bool) -> None:
    loaded = _job(settings, job_name)
    sensitive = sorted(loaded.spec.sensitive_inputs)
    refuse_sensitive_inputs(job_name, overrides, sensitive)

    async def question(client: CyberdeskClient) -> tuple[FleetListing, dict[str, str | None]]:
        listing = await list_fleet(client, pool_members=loaded.spec.target.pool is not None)
        return listing, await list_workflows(client)

    try:
        listing, workflows = ask_api(settings, question)
    except CyberdeskError as exc:
        fail(f"cannot plan {job_name}: {where(settings)} did not answer ({exc})", ExitCode.FAILED)
    document = plan_document(loaded, listing, workflows, overrides, sensitive)
    document["api"] = where(settings)
    if as_json:
        print_json(document)
    else:
        show(render(document))
    if not document["would_run"]:
        raise typer.Exit(int(ExitCode.FAILED))


def plan_document(
    loaded: LoadedJob,
    listing: FleetListing,
    workflows: Mapping[str, str | None],
    overrides: Mapping[str, str],
    sensitive: Collection[str],
) -> dict[str, Any]:
    """What a fire of `loaded` would do now: its items with their inputs and eligible desktops, or why none runs."""
    job = resolved_job(ActiveJob(loaded), workflows)
    workflow_id, workflow_error = job.workflow_id, job.workflow_error
    fleet = listing.fleet
    selected = fleet.select(job.target)
    why_not: str | None = None
    try:
        items = build_items(job, fleet, overrides or None)
    except PlanningError as exc:
        items, why_not = [], str(exc)
    match_keys = sorted(loaded.spec.target.match or {})
    rows = []
    for seq, item in enumerate(items):
        pinned = fleet.get(item.machine_id) if item.machine_id else None
        eligible = [pinned] if pinned is not None else selected
        rows.append(
            {
                "seq": seq,
                "inputs": inputs_json(item.inputs, sensitive),
                "desktops": [_desktop_json(d, match_keys) for d in eligible],
            }
        )
    if why_not is None and not any(d.connected for d in selected):
        why_not = (
            f"no desktop of the target ({len(selected)} selected) is connected: "
            "the items would wait until one connects"
        )
    left_out = [d.label for d in selected if not d.connected] if loaded.spec.fan_out == "machines" else []
    return {
        "job": job.name,
        "dry_run": True,
        "workflow": {"ref": " -> ".join(loaded.spec.workflows), "id": workflow_id, "error": workflow_error},
        "target": loaded.spec.target.describe(),
        "fan_out": str(loaded.spec.fan_out),
        "desktops_selected": len(selected),
        "desktops_connected": sum(d.connected for d in selected),
        "desktops_left_out": left_out,
        "items": rows,
        "would_run": why_not is None,
        "why_not": why_not,
    }


def _job(settings: Config, name: str) -> LoadedJob:
    """The job as its file says now (what the daemon would fire); exit 3 when no valid file has that name."""
    result = load_jobs(settings.jobs)
    if name in result.jobs:
        return result.jobs[name]
    known = ", ".join(sorted(result.jobs)) or "none"
    hint = (
        f"; {len(result.errors)} job file problem(s), see `cyberdesk-runner validate`"
        if result.errors
        else ""
    )
    fail(f"no job named {name!r} in {display_path(settings.jobs)} (known: {known}){hint}", ExitCode.NOT_FOUND)


def _desktop_json(desktop: Desktop, match_keys: list[str]) -> dict[str, Any]:
    return {
        "id": desktop.id,
        "name": desktop.name,
        "connected": desktop.connected,
        "params": {key: desktop.params.get(key) for key in match_keys},
    }


def render(document: dict[str, Any]) -> RenderableType:
    workflow = document["workflow"]
    head = details(
        f"Dry run of {document['job']}: nothing recorded, no run created",
        [
            ("workflow", f"{workflow['ref']} ({workflow['id'] or 'not found'})"),
            ("target", f"{document['target']}, fan_out {document['fan_out']}"),
            (
                "desktops",
                f"{document['desktops_selected']} selected, {document['desktops_connected']} connected",
            ),
            (
                "left out",
                ", ".join(document["desktops_left_out"]) + " (not connected: no item)"
                if document["desktops_left_out"]
                else None,
            ),
            ("api", document["api"]),
        ],
    )
    parts: list[RenderableType] = [head, Text()]
    for item in document["items"]:
        parts.append(
            details(
                f"Item {item['seq']}",
                [("inputs", _pairs(item["inputs"])), ("desktops", _desktops(item["desktops"]))],
            )
        )
    verdict = (
        Text(f"{len(document['items'])} item(s) would run.", style="green")
        if document["would_run"]
        else Text(f"Nothing would run: {document['why_not']}", style="red")
    )
    return Group(*parts, verdict)


def _pairs(values: Mapping[str, Any]) -> str:
    return "\n".join(f"{k} = {v}" for k, v in values.items()) or "(none)"


def _desktops(desktops: list[dict[str, Any]]) -> str:
    def one(d: dict[str, Any]) -> str:
        params = " ".join(f"{k}={v}" for k, v in d["params"].items())
        state = "connected" if d["connected"] else "NOT connected"
        return f"{d['name'] or d['id']} ({state}{', ' + params if params else ''})"

    lines = [one(d) for d in desktops[:_SHOWN_DESKTOPS]]
    if len(desktops) > _SHOWN_DESKTOPS:
        lines.append(f"... and {len(desktops) - _SHOWN_DESKTOPS} more (--json lists them all)")
    return "\n".join(lines) or "none"
