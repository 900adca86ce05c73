"""/v1/workflows: prompts with their version history, duplication and latest trajectory."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import datetime
from typing import Any
from uuid import UUID

from fastapi import APIRouter
from fastapi.responses import Response

from cyberdesk.emulator import serializers as ser
from cyberdesk.emulator.clock import iso
from cyberdesk.emulator.emulator import Emulator
from cyberdesk.emulator.errors import EmulatorError, NotFound
from cyberdesk.emulator.records import ORGANIZATION_ID, Trajectory, Workflow
from cyberdesk.emulator.routes import prompt_images, tags
from cyberdesk.emulator.routes.common import (
    Limit,
    Skip,
    contains,
    in_range,
    includes,
    json_response,
    make_router,
    no_content,
    route,
    window,
)
from cyberdesk.emulator.schemas import (
    WorkflowCreate,
    WorkflowDuplicateRequest,
    WorkflowMergeRequest,
    WorkflowUpdate,
)

_COPIED_FIELDS = (
    "input_schema",
    "output_schema",
    "includes_file_exports",
    "is_webhooks_enabled",
    "terminal_command_allowlist",
    "model_metadata",
    "post_run_check_failure_cleanup_prompt",
)


def _checks(raw: list[dict[str, Any]] | None, now: float, ids: Any) -> list[dict[str, Any]]:
    return [
        {
            **check,
            "id": check.get("id") or ids.uuid(),
            "organization_id": ORGANIZATION_ID,
            "order": i,
            "created_at": iso(now),
            "updated_at": iso(now),
        }
        for i, check in enumerate(raw or [])
    ]


class _Routes:
    def __init__(self, em: Emulator) -> None:
        self.em = em
        self.world = em.world

    def body_of(self, workflow: Workflow, include: set[str]) -> ser.JSON:
        body = ser.workflow(workflow)
        if "tags" in include:
            body["tags"] = [
                ser.tag(t, self.em.tags.groups.get(t.group_id or "")) for t in self.em.tags.of(workflow)
            ]
        if "post_run_checks" in include:
            body["post_run_checks"] = workflow.post_run_checks
        return body

    @route("GET", "")
    async def list_workflows(
        self,
        search: str | None = None,
        created_at_from: datetime | None = None,
        created_at_to: datetime | None = None,
        updated_at_from: datetime | None = None,
        updated_at_to: datetime | None = None,
        tag_ids: str | None = None,
        include_tags: bool = False,
        include: str | None = None,
        skip: Skip = 0,
        limit: Limit = 100,
    ) -> Response:
        wanted = includes(include) if include is not None else ({"tags"} if include_tags else set())
        required_tags = includes(tag_ids)
        found = [
            w
            for w in self.world.workflows.values()
            if self.em.tags.has_all(w, required_tags)
            and in_range(w.created_at, created_at_from, created_at_to)
            and in_range(w.updated_at, updated_at_from, updated_at_to)
            and contains(search, w.id, w.name)
        ]
        # Newest first; on equal timestamps the later-created one first.
        found = [x for _, x in sorted(enumerate(found), key=lambda p: (p[1].updated_at, p[0]), reverse=True)]
        shown = window(found, skip, limit)
        return json_response(
            ser.page_with_includes(
                [self.body_of(w, wanted) for w in shown], len(found), skip, limit, [] if wanted else None
            )
        )

    @route("POST", "", status_code=201)
    async def create_workflow(self, body: WorkflowCreate) -> Response:
        fields = {f: getattr(body, f) for f in _COPIED_FIELDS if f != "is_webhooks_enabled"}
        workflow = self.em.add_workflow(
            body.name, body.main_prompt, webhooks=body.is_webhooks_enabled, **fields
        )
        workflow.post_run_checks = _checks(body.post_run_checks, workflow.created_at, self.em.ids)
        return json_response(ser.workflow(workflow), 201)

    @route("GET", "/{workflow_id}")
    async def get_workflow(self, workflow_id: UUID, include: str | None = None) -> Response:
        # The real server includes tags and post-run checks when `include` is omitted.
        wanted = includes(include) if include is not None else {"tags", "post_run_checks"}
        return json_response(self.body_of(self.em.workflow(str(workflow_id)), wanted))

    @route("PATCH", "/{workflow_id}")
    async def update_workflow(self, workflow_id: UUID, body: WorkflowUpdate) -> Response:
        workflow = self.em.workflow(str(workflow_id))
        given = body.model_fields_set
        # The current version goes to history first, as the real API does.
        workflow.old_versions.append(
            {
                "name": workflow.name,
                "main_prompt": workflow.main_prompt,
                "updated_at": iso(workflow.updated_at),
            }
        )
        if body.main_prompt is not None:
            workflow.main_prompt = body.main_prompt
        if "name" in given:
            workflow.name = body.name
        for attr in _COPIED_FIELDS:
            value = getattr(body, attr)
            if attr in given and (
                value is not None or attr not in ("includes_file_exports", "is_webhooks_enabled")
            ):
                setattr(workflow, attr, value)
        if "post_run_checks" in given:
            workflow.post_run_checks = _checks(body.post_run_checks, self.em.now(), self.em.ids)
        workflow.updated_at = self.em.now()
        return json_response(ser.workflow(workflow))

    @route("DELETE", "/{workflow_id}", status_code=204)
    async def delete_workflow(self, workflow_id: UUID) -> Response:
        self.em.delete_workflow(str(workflow_id))
        return no_content()

    @route("GET", "/{workflow_id}/versions")
    async def list_versions(self, workflow_id: UUID) -> Response:
        return json_response(self.em.workflow(str(workflow_id)).old_versions)

    @route("POST", "/{workflow_id}/duplicate", status_code=201)
    async def duplicate_workflow(
        self, workflow_id: UUID, body: WorkflowDuplicateRequest | None = None
    ) -> Response:
        source = self.em.workflow(str(workflow_id))
        copy = self.em.add_workflow(
            f"(Copy) {source.name or 'Untitled'}",
            source.main_prompt,
            webhooks=source.is_webhooks_enabled,
            run_duration=source.run_duration,
            failure_rate=source.failure_rate,
            fail_when=source.fail_when,
            exports=source.exports,
            **{f: getattr(source, f) for f in _COPIED_FIELDS if f != "is_webhooks_enabled"},
        )
        copy.post_run_checks = [dict(c) for c in source.post_run_checks]
        if body is not None and body.include_trajectories:
            # Only generated trajectories are copied, as documented.
            self.copy_trajectories(source, copy, lambda t: t.is_generated)
        return json_response(ser.workflow(copy), 201)

    def copy_trajectories(
        self, source: Workflow, target: Workflow, which: Callable[[Trajectory], bool]
    ) -> None:
        now = self.em.now()
        for t in [t for t in self.world.trajectories_of(source.id) if which(t)]:
            clone = dataclasses.replace(t, id=self.em.ids.uuid(), workflow_id=target.id, run_id=None)
            clone.trajectory_data, clone.dimensions = list(t.trajectory_data), dict(t.dimensions)
            clone.created_at = clone.updated_at = now
            self.world.trajectories[clone.id] = clone

    @route("POST", "/{workflow_id}/merge")
    async def merge_workflow(self, workflow_id: UUID, body: WorkflowMergeRequest) -> Response:
        """The target takes the source's prompt and settings (its own version goes to its history), keeps its
        id, name and tags; the source is deleted with its runs. Emulator choice: `copy_trajectories` copies
        every trajectory of the source (generated or not)."""
        source = self.em.workflow(str(workflow_id))
        target = self.em.workflow(str(body.target_workflow_id))
        if source.id == target.id:
            raise EmulatorError("A workflow cannot be merged into itself")
        now = self.em.now()
        target.old_versions.append(
            {"name": target.name, "main_prompt": target.main_prompt, "updated_at": iso(target.updated_at)}
        )
        target.main_prompt = source.main_prompt
        for attr in _COPIED_FIELDS:
            setattr(target, attr, getattr(source, attr))
        target.post_run_checks = [dict(c) for c in source.post_run_checks]
        target.exports = source.exports
        if body.copy_trajectories:
            self.copy_trajectories(source, target, lambda _: True)
        target.updated_at = now
        self.em.delete_workflow(source.id)
        return json_response(ser.workflow(target))

    @route("GET", "/{workflow_id}/latest-trajectory", tags=["trajectories"])
    async def latest_trajectory(self, workflow_id: UUID) -> Response:
        workflow = self.em.workflow(str(workflow_id))
        latest = max(self.world.trajectories_of(workflow.id), key=lambda t: t.updated_at, default=None)
        if latest is None:
            raise NotFound("No trajectory found for this workflow")
        return json_response(ser.trajectory(latest))


def build(em: Emulator) -> APIRouter:
    router = APIRouter()
    # Literal paths (prompt-image, bulk/tags) before `/{workflow_id}`: routes match in order. The routes are
    # copied, not included: an included router is one opaque route, which the per-route counters cannot name.
    for part in (
        prompt_images.build(em),
        tags.build_on_workflows(em),
        make_router(_Routes(em), prefix="/v1/workflows", tags=["workflows"]),
    ):
        router.routes.extend(part.routes)
    return router
