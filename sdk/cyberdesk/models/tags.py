"""Workflow tags and tag groups (a workflow has at most one tag of a group)."""

from datetime import datetime
from uuid import UUID

from attrs import define, field

from .._types import UNSET, Unset
from ._base import Model, to_opt_uuid, to_uuid_list


@define(kw_only=True)
class WorkflowTagGroupResponse(Model):
    id: UUID
    name: str
    organization_id: str
    order: int
    created_at: datetime
    updated_at: datetime
    description: str | None = None
    emoji: str | None = None
    color: str | None = None


@define(kw_only=True)
class WorkflowTagResponse(Model):
    id: UUID
    name: str
    organization_id: str
    order: int
    created_at: datetime
    updated_at: datetime
    description: str | None = None
    emoji: str | None = None
    color: str | None = None
    group_id: UUID | None = None
    is_archived: bool = False
    workflow_count: int | None = None
    group: WorkflowTagGroupResponse | None = None


@define(kw_only=True)
class WorkflowTagCreate(Model):
    name: str
    description: str | None | Unset = UNSET
    emoji: str | None | Unset = UNSET
    color: str | None | Unset = UNSET
    #: Tags of one group are mutually exclusive on a workflow.
    group_id: UUID | None | Unset = field(default=UNSET, converter=to_opt_uuid)


@define(kw_only=True)
class WorkflowTagUpdate(Model):
    name: str | None | Unset = UNSET
    description: str | None | Unset = UNSET
    emoji: str | None | Unset = UNSET
    color: str | None | Unset = UNSET
    #: ``None`` takes the tag out of its group.
    group_id: UUID | None | Unset = field(default=UNSET, converter=to_opt_uuid)
    is_archived: bool | None | Unset = UNSET


@define(kw_only=True)
class WorkflowTagGroupCreate(Model):
    name: str
    description: str | None | Unset = UNSET
    emoji: str | None | Unset = UNSET
    color: str | None | Unset = UNSET


@define(kw_only=True)
class WorkflowTagGroupUpdate(Model):
    name: str | None | Unset = UNSET
    description: str | None | Unset = UNSET
    emoji: str | None | Unset = UNSET
    color: str | None | Unset = UNSET


@define(kw_only=True)
class ReorderRequest(Model):
    """Tag or tag-group ids in their new order."""

    ids: list[UUID] = field(converter=to_uuid_list)


@define(kw_only=True)
class AddTagsRequest(Model):
    tag_ids: list[UUID] = field(converter=to_uuid_list)


@define(kw_only=True)
class BulkAddTagsRequest(Model):
    workflow_ids: list[UUID] = field(converter=to_uuid_list)
    tag_ids: list[UUID] = field(converter=to_uuid_list)
