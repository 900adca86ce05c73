"""Trajectories: recorded action sequences of a workflow (only approved ones are used at run time)."""

from datetime import datetime
from typing import Any
from uuid import UUID

from attrs import define, field

from .._types import UNSET, Unset
from ._base import JSONObject, Model, to_opt_uuid, to_uuid
from .common import IncludedResource


@define(kw_only=True)
class TrajectoryCreate(Model):
    workflow_id: UUID = field(converter=to_uuid)
    #: At least one item.
    trajectory_data: list[dict[str, Any]]
    #: Display size at recording time, e.g. ``{"width": 1920, "height": 1080}``.
    dimensions: dict[str, int]
    name: str | None | Unset = UNSET
    description: str | None | Unset = UNSET
    run_id: UUID | None | Unset = field(default=UNSET, converter=to_opt_uuid)
    original_input_values: dict[str, Any] | None | Unset = UNSET
    is_approved: bool = False


@define(kw_only=True)
class TrajectoryUpdate(Model):
    name: str | None | Unset = UNSET
    description: str | None | Unset = UNSET
    trajectory_data: list[dict[str, Any]] | None | Unset = UNSET
    is_approved: bool | None | Unset = UNSET
    #: The optional main tie-break trajectory of its workflow.
    is_main: bool | None | Unset = UNSET


@define(kw_only=True)
class _TrajectoryFields(Model):
    id: UUID
    workflow_id: UUID
    dimensions: dict[str, int]
    is_approved: bool
    has_been_approved: bool
    is_generated: bool
    is_main: bool
    created_at: datetime
    updated_at: datetime
    name: str | None = None
    description: str | None = None
    run_id: UUID | None = None
    original_input_values: JSONObject | None = None
    user_id: UUID | None = None
    organization_id: str | None = None


@define(kw_only=True)
class TrajectoryResponse(_TrajectoryFields):
    trajectory_data: list[JSONObject]


@define(kw_only=True)
class TrajectoryResponseWithIncludes(_TrajectoryFields):
    #: Optional here, unlike in ``TrajectoryResponse``.
    trajectory_data: list[JSONObject] | None = None
    included: list[IncludedResource] | None = None
