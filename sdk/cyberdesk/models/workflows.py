"""Workflows, their post-run checks, merges and prompt images."""

from datetime import datetime
from uuid import UUID

from attrs import define, field

from .._types import UNSET, Unset
from ._base import JSONObject, Model, to_opt_uuid, to_uuid
from .common import IncludedResource, WorkflowModelMetadata
from .enums import PostRunCheckFileTargetMode, PostRunCheckType, UnknownValue
from .tags import WorkflowTagResponse


@define(kw_only=True)
class WorkflowPostRunCheckUpsert(Model):
    name: str
    type: PostRunCheckType
    description: str | None | Unset = UNSET
    file_target_mode: PostRunCheckFileTargetMode | None | Unset = UNSET
    file_names: list[str] | None | Unset = UNSET
    file_name_regex: str | None | Unset = UNSET
    expected_match_count: int | None | Unset = UNSET
    expected_match_count_ref: str | None | Unset = UNSET
    loop_input: str | None | Unset = UNSET
    loop_item_filename_template: str | None | Unset = UNSET
    allow_missing_attachments: bool = False
    check_prompt: str | None | Unset = UNSET
    model: UUID | None | Unset = field(default=UNSET, converter=to_opt_uuid)
    #: The id of an existing check to update; omitted to create one.
    id: UUID | None | Unset = field(default=UNSET, converter=to_opt_uuid)


@define(kw_only=True)
class WorkflowPostRunCheckResponse(Model):
    id: UUID
    name: str
    type: PostRunCheckType | UnknownValue
    organization_id: str
    order: int
    created_at: datetime
    updated_at: datetime
    description: str | None = None
    file_target_mode: PostRunCheckFileTargetMode | UnknownValue | None = None
    file_names: list[str] | None = None
    file_name_regex: str | None = None
    expected_match_count: int | None = None
    expected_match_count_ref: str | None = None
    loop_input: str | None = None
    loop_item_filename_template: str | None = None
    allow_missing_attachments: bool = False
    check_prompt: str | None = None
    model: UUID | None = None
    user_id: UUID | None = None


@define(kw_only=True)
class WorkflowInternalMetadata(Model):
    has_unaddressed_error: bool | None = None
    last_errored_run_start: datetime | None = None
    last_errored_run_uuid: UUID | None = None


@define(kw_only=True)
class WorkflowInternalMetadataUpdate(Model):
    """A per-key ``None`` removes only that key."""

    has_unaddressed_error: bool | None | Unset = UNSET
    last_errored_run_start: datetime | None | Unset = UNSET
    last_errored_run_uuid: UUID | None | Unset = field(default=UNSET, converter=to_opt_uuid)


@define(kw_only=True)
class WorkflowCreate(Model):
    main_prompt: str
    name: str | None | Unset = UNSET
    #: A JSON schema serialised as text; validates the merged run inputs (sensitive keys prefixed ``$``).
    input_schema: str | None | Unset = UNSET
    output_schema: str | None | Unset = UNSET
    includes_file_exports: bool = False
    #: Send a ``run_complete`` webhook when a run of this workflow completes.
    is_webhooks_enabled: bool = False
    terminal_command_allowlist: list[str] | None | Unset = UNSET
    model_metadata: WorkflowModelMetadata | None | Unset = UNSET
    post_run_check_failure_cleanup_prompt: str | None | Unset = UNSET
    post_run_checks: list[WorkflowPostRunCheckUpsert] | None | Unset = UNSET


@define(kw_only=True)
class WorkflowUpdate(Model):
    """Partial update; the server pushes the current version to the history first."""

    name: str | None | Unset = UNSET
    main_prompt: str | None | Unset = UNSET
    input_schema: str | None | Unset = UNSET
    output_schema: str | None | Unset = UNSET
    includes_file_exports: bool | None | Unset = UNSET
    is_webhooks_enabled: bool | None | Unset = UNSET
    terminal_command_allowlist: list[str] | None | Unset = UNSET
    model_metadata: WorkflowModelMetadata | None | Unset = UNSET
    post_run_check_failure_cleanup_prompt: str | None | Unset = UNSET
    #: ``None`` clears all metadata; UNSET leaves it unchanged.
    workflow_metadata: WorkflowInternalMetadataUpdate | None | Unset = UNSET
    post_run_checks: list[WorkflowPostRunCheckUpsert] | None | Unset = UNSET


@define(kw_only=True)
class WorkflowResponse(Model):
    id: UUID
    main_prompt: str
    created_at: datetime
    updated_at: datetime
    name: str | None = None
    input_schema: str | None = None
    output_schema: str | None = None
    includes_file_exports: bool = False
    is_webhooks_enabled: bool = False
    terminal_command_allowlist: list[str] | None = None
    model_metadata: WorkflowModelMetadata | None = None
    post_run_check_failure_cleanup_prompt: str | None = None
    user_id: UUID | None = None
    organization_id: str | None = None
    includes_input_variables: bool = False
    workflow_metadata: WorkflowInternalMetadata | None = None
    old_versions: list[JSONObject] | None = None
    tags: list[WorkflowTagResponse] | None = None
    post_run_checks: list[WorkflowPostRunCheckResponse] | None = None


@define(kw_only=True)
class WorkflowResponseWithIncludes(WorkflowResponse):
    included: list[IncludedResource] | None = None


@define(kw_only=True)
class WorkflowDuplicateRequest(Model):
    #: Also copy the workflow's generated trajectories.
    include_trajectories: bool = False


@define(kw_only=True)
class WorkflowMergeRequest(Model):
    """Merge the source workflow into ``target_workflow_id`` (the source is deleted)."""

    target_workflow_id: UUID = field(converter=to_uuid)
    copy_trajectories: bool = False


@define(kw_only=True)
class WorkflowPromptImageResponse(Model):
    """An uploaded prompt image: embed ``supabase_url`` in a prompt's HTML (``<img src=...>``)."""

    supabase_url: str
    signed_url: str
    filename: str
    content_type: str
    size_bytes: int


@define(kw_only=True)
class WorkflowPromptImageListItem(Model):
    supabase_url: str
    path: str
    filename: str
    created_at: datetime | None = None
    size_bytes: int | None = None


@define(kw_only=True)
class WorkflowPromptImageSignedUrlResponse(Model):
    supabase_url: str
    signed_url: str
    expires_in: int
