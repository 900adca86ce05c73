"""/v1/workflow-tags, /v1/workflow-tag-groups, and the tags of workflows (/v1/workflows/{id}/tags, bulk/tags)."""

from __future__ import annotations

from uuid import UUID

from fastapi import APIRouter
from fastapi.responses import Response

from cyberdesk.emulator import serializers as ser
from cyberdesk.emulator.emulator import Emulator
from cyberdesk.emulator.records import Tag, Workflow
from cyberdesk.emulator.routes.common import json_response, make_router, no_content, route
from cyberdesk.emulator.schemas import (
    AddTagsRequest,
    BulkAddTagsRequest,
    ReorderRequest,
    WorkflowTagCreate,
    WorkflowTagGroupCreate,
    WorkflowTagGroupUpdate,
    WorkflowTagUpdate,
)

_STYLE = ("description", "emoji", "color")


class _Tags:
    def __init__(self, em: Emulator) -> None:
        self.em = em
        self.tags = em.tags

    def body(self, tag: Tag, count: bool = True) -> ser.JSON:
        group = self.tags.groups.get(tag.group_id or "")
        return ser.tag(tag, group, self.tags.workflow_count(tag) if count else None)

    @route("GET", "")
    async def list_tags(self, include_archived: bool = False) -> Response:
        return json_response([self.body(t) for t in self.tags.list_tags(include_archived)])

    @route("POST", "", status_code=201)
    async def create_tag(self, body: WorkflowTagCreate) -> Response:
        group_id = None if body.group_id is None else str(body.group_id)
        fields = {f: getattr(body, f) for f in _STYLE}
        return json_response(self.body(self.tags.create_tag(body.name, group_id, fields, self.em.now())), 201)

    @route("PUT", "/reorder", status_code=204)
    async def reorder_tags(self, body: ReorderRequest) -> Response:
        self.tags.reorder_tags([str(i) for i in body.ids], self.em.now())
        return no_content()

    @route("GET", "/{tag_id}")
    async def get_tag(self, tag_id: UUID) -> Response:
        return json_response(self.body(self.tags.tag(str(tag_id))))

    @route("PATCH", "/{tag_id}")
    async def update_tag(self, tag_id: UUID, body: WorkflowTagUpdate) -> Response:
        changes = {f: getattr(body, f) for f in body.model_fields_set}
        if changes.get("group_id") is not None:
            changes["group_id"] = str(changes["group_id"])
        tag = self.tags.update_tag(self.tags.tag(str(tag_id)), changes, self.em.now())
        return json_response(self.body(tag))

    @route("DELETE", "/{tag_id}", status_code=204)
    async def delete_tag(self, tag_id: UUID) -> Response:
        self.tags.delete_tag(str(tag_id))
        return no_content()

    @route("POST", "/{tag_id}/archive")
    async def archive_tag(self, tag_id: UUID) -> Response:
        return json_response(
            self.body(self.tags.set_archived(self.tags.tag(str(tag_id)), True, self.em.now()))
        )

    @route("POST", "/{tag_id}/unarchive")
    async def unarchive_tag(self, tag_id: UUID) -> Response:
        tag = self.tags.set_archived(self.tags.tag(str(tag_id)), False, self.em.now())
        return json_response(self.body(tag))


class _Groups:
    def __init__(self, em: Emulator) -> None:
        self.em = em
        self.tags = em.tags

    @route("GET", "")
    async def list_groups(self) -> Response:
        return json_response([ser.tag_group(g) for g in self.tags.list_groups()])

    @route("POST", "", status_code=201)
    async def create_group(self, body: WorkflowTagGroupCreate) -> Response:
        fields = {f: getattr(body, f) for f in _STYLE}
        return json_response(ser.tag_group(self.tags.create_group(body.name, fields, self.em.now())), 201)

    @route("PUT", "/reorder", status_code=204)
    async def reorder_groups(self, body: ReorderRequest) -> Response:
        self.tags.reorder_groups([str(i) for i in body.ids], self.em.now())
        return no_content()

    @route("GET", "/{group_id}")
    async def get_group(self, group_id: UUID) -> Response:
        return json_response(ser.tag_group(self.tags.group(str(group_id))))

    @route("PATCH", "/{group_id}")
    async def update_group(self, group_id: UUID, body: WorkflowTagGroupUpdate) -> Response:
        changes = {f: getattr(body, f) for f in body.model_fields_set}
        group = self.tags.update_group(self.tags.group(str(group_id)), changes, self.em.now())
        return json_response(ser.tag_group(group))

    @route("DELETE", "/{group_id}", status_code=204)
    async def delete_group(self, group_id: UUID) -> Response:
        self.tags.delete_group(str(group_id), self.em.now())
        return no_content()


class _OnWorkflows:
    """Mounted in the /v1/workflows router (the emulator dispatches on the first path segment)."""

    def __init__(self, em: Emulator) -> None:
        self.em = em
        self.tags = em.tags

    def of(self, workflow: Workflow) -> Response:
        return json_response([_Tags(self.em).body(t, count=False) for t in self.tags.of(workflow)])

    @route("POST", "/bulk/tags", status_code=204)
    async def bulk_add_tags(self, body: BulkAddTagsRequest) -> Response:
        workflows = [self.em.workflow(str(w)) for w in body.workflow_ids]
        self.tags.add(workflows, [str(t) for t in body.tag_ids])
        return no_content()

    @route("POST", "/{workflow_id}/tags")
    async def add_tags(self, workflow_id: UUID, body: AddTagsRequest) -> Response:
        workflow = self.em.workflow(str(workflow_id))
        self.tags.add([workflow], [str(t) for t in body.tag_ids])
        return self.of(workflow)

    @route("GET", "/{workflow_id}/tags")
    async def get_workflow_tags(self, workflow_id: UUID) -> Response:
        return self.of(self.em.workflow(str(workflow_id)))

    @route("DELETE", "/{workflow_id}/tags/{tag_id}", status_code=204)
    async def remove_tag(self, workflow_id: UUID, tag_id: UUID) -> Response:
        self.tags.remove(self.em.workflow(str(workflow_id)), str(tag_id))
        return no_content()


def build_tags(em: Emulator) -> APIRouter:
    return make_router(_Tags(em), prefix="/v1/workflow-tags", tags=["workflow tags"])


def build_groups(em: Emulator) -> APIRouter:
    return make_router(_Groups(em), prefix="/v1/workflow-tag-groups", tags=["workflow tag groups"])


def build_on_workflows(em: Emulator) -> APIRouter:
    return make_router(_OnWorkflows(em), prefix="/v1/workflows", tags=["workflow tags"])
