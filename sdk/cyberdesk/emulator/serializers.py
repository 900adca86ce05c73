"""Records -> wire JSON (plain dicts: the hot path stays free of model validation).

Every required key of the official models is always present, nullable ones as null; secrets appear
only as aliases.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from cyberdesk.emulator.clock import iso
from cyberdesk.emulator.records import (
    ORGANIZATION_ID,
    Attachment,
    Connection,
    Machine,
    ModelConfiguration,
    Pool,
    Run,
    Tag,
    TagGroup,
    Trajectory,
    Workflow,
)

JSON = dict[str, Any]

# Always present in a run, even under a `fields=` projection (the client requires them).
RUN_BASE_FIELDS = ("id", "workflow_id", "machine_id", "status", "created_at")


def _iso_or_none(ts: float | None) -> str | None:
    return None if ts is None else iso(ts)


def machine(m: Machine, now: float) -> JSON:
    # A connected desktop pings constantly, so it was last seen "now".
    last_seen = now if m.status == "connected" else (m.last_seen or m.created_at)
    return {
        "id": m.id,
        "unkey_key_id": m.unkey_key_id,
        "status": m.status,
        "is_available": m.enabled and m.current_run_id is None and m.reserved_session_id is None,
        "alerts_enabled": m.alerts_enabled,
        "created_at": iso(m.created_at),
        "last_seen": iso(last_seen),
        "name": m.name,
        "version": m.version,
        "hostname": m.hostname,
        "os_info": m.os_info,
        "machine_parameters": m.parameters,
        "machine_sensitive_parameters": m.sensitive,
        "user_id": None,
        "organization_id": ORGANIZATION_ID,
        "reserved_session_id": m.reserved_session_id,
        "linked_keepalive_machine_id": None,
        "physical_server_id": None,
    }


def pool(p: Pool) -> JSON:
    return {
        "id": p.id,
        "name": p.name,
        "description": p.description,
        "organization_id": ORGANIZATION_ID,
        "pool_parameters": p.parameters,
        "pool_sensitive_parameters": p.sensitive,
        "machine_count": len(p.machine_ids),
        "created_at": iso(p.created_at),
        "updated_at": iso(p.updated_at),
    }


def workflow(w: Workflow) -> JSON:
    return {
        "id": w.id,
        "name": w.name,
        "main_prompt": w.main_prompt,
        "input_schema": w.input_schema,
        "output_schema": w.output_schema,
        "includes_file_exports": w.includes_file_exports,
        "is_webhooks_enabled": w.is_webhooks_enabled,
        "terminal_command_allowlist": w.terminal_command_allowlist,
        "model_metadata": w.model_metadata,
        "post_run_check_failure_cleanup_prompt": w.post_run_check_failure_cleanup_prompt,
        "includes_input_variables": "{" in w.main_prompt,
        "user_id": None,
        "organization_id": ORGANIZATION_ID,
        "old_versions": w.old_versions,
        "created_at": iso(w.created_at),
        "updated_at": iso(w.updated_at),
    }


def run(r: Run) -> JSON:
    return {
        "id": r.id,
        "workflow_id": r.workflow_id,
        "machine_id": r.machine_id,
        "status": r.status,
        "created_at": iso(r.created_at),
        "user_id": None,
        "organization_id": ORGANIZATION_ID,
        "is_priority": r.is_priority,
        "error": r.error,
        "output_data": r.output_data,
        "input_attachment_ids": r.input_attachment_ids,
        "output_attachment_ids": r.output_attachment_ids,
        "run_message_history": r.run_message_history,
        "input_values": r.input_values,
        "main_prompt": r.main_prompt,
        "model_metadata": r.model_metadata,
        "pool_ids": r.pool_ids,
        "sensitive_input_aliases": r.sensitive_aliases,
        "usage_metadata": r.usage_metadata,
        "post_run_checks": r.post_run_checks,
        "session_id": r.session_id,
        "session_alias": r.session_alias,
        "release_session_after": r.release_session_after,
        "started_at": _iso_or_none(r.started_at),
        "ended_at": _iso_or_none(r.ended_at),
    }


def run_projection(r: Run, fields: Iterable[str]) -> JSON:
    full = run(r)
    keys = dict.fromkeys((*RUN_BASE_FIELDS, *fields))
    return {k: full[k] for k in keys if k in full}


def connection(c: Connection) -> JSON:
    return {
        "id": c.id,
        "websocket_id": c.websocket_id,
        "machine_id": c.machine_id,
        "connected_at": iso(c.connected_at),
        "disconnected_at": _iso_or_none(c.disconnected_at),
        "last_ping": iso(c.last_ping),
        "status": c.status,
        "ip_address": c.ip_address,
        "user_agent": c.user_agent,
    }


def trajectory(t: Trajectory) -> JSON:
    return {
        "id": t.id,
        "workflow_id": t.workflow_id,
        "name": t.name,
        "description": t.description,
        "trajectory_data": t.trajectory_data,
        "dimensions": t.dimensions,
        "original_input_values": t.original_input_values,
        "is_approved": t.is_approved,
        "has_been_approved": t.has_been_approved,
        "is_generated": t.is_generated,
        "is_main": t.is_main,
        "run_id": t.run_id,
        "user_id": None,
        "organization_id": ORGANIZATION_ID,
        "created_at": iso(t.created_at),
        "updated_at": iso(t.updated_at),
    }


def included(kind: str, body: JSON) -> JSON:
    """An `included` item: the resource's fields flattened beside `type` (JSON:API-like)."""
    return {"type": kind, **body}


def page(items: list[JSON], total: int, skip: int, limit: int) -> JSON:
    return {"items": items, "total": total, "skip": skip, "limit": limit}


def page_with_includes(
    items: list[JSON], total: int, skip: int, limit: int, included_items: list[JSON] | None
) -> JSON:
    """The `PaginatedResponseWithIncludes*` envelope: `included` is null unless includes were asked for."""
    return {"items": items, "total": total, "skip": skip, "limit": limit, "included": included_items}


def attachment(a: Attachment) -> JSON:
    return {
        "id": a.id,
        "run_id": a.run_id,
        "filename": a.filename,
        "content_type": a.content_type,
        "attachment_type": a.attachment_type,
        "size_bytes": len(a.content),
        "storage_path": f"{ORGANIZATION_ID}/{a.run_id}/{a.attachment_type}/{a.filename}",
        "target_path": a.target_path,
        "cleanup_imports_after_run": a.cleanup_imports_after_run,
        "user_id": None,
        "organization_id": ORGANIZATION_ID,
        "expires_at": _iso_or_none(a.expires_at),
        "created_at": iso(a.created_at),
    }


def tag_group(g: TagGroup) -> JSON:
    return {
        "id": g.id,
        "name": g.name,
        "description": g.description,
        "emoji": g.emoji,
        "color": g.color,
        "organization_id": ORGANIZATION_ID,
        "order": g.order,
        "created_at": iso(g.created_at),
        "updated_at": iso(g.updated_at),
    }


def tag(t: Tag, group: TagGroup | None, workflow_count: int | None = None) -> JSON:
    return {
        "id": t.id,
        "name": t.name,
        "description": t.description,
        "emoji": t.emoji,
        "color": t.color,
        "group_id": t.group_id,
        "is_archived": t.is_archived,
        "organization_id": ORGANIZATION_ID,
        "order": t.order,
        "workflow_count": workflow_count,
        "group": None if group is None else tag_group(group),
        "created_at": iso(t.created_at),
        "updated_at": iso(t.updated_at),
    }


def model_configuration(c: ModelConfiguration) -> JSON:
    return {
        "id": c.id,
        "name": c.name,
        "provider": c.provider,
        "model": c.model,
        "is_system_default": c.is_system_default,
        "organization_id": None if c.is_system_default else ORGANIZATION_ID,
        **c.settings,
        "created_at": iso(c.created_at),
        "updated_at": iso(c.updated_at),
    }
