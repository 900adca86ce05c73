"""Runs: creation (single, bulk, chain), updates, retries and the run itself."""

from datetime import datetime
from typing import Any
from uuid import UUID

from attrs import define, field

from .._types import UNSET, Unset
from ._base import JSONObject, Model, to_opt_uuid, to_opt_uuid_list, to_uuid
from .common import FileInput, IncludedResource, WorkflowModelMetadata
from .enums import PostRunCheckFileTargetMode, PostRunCheckStatus, PostRunCheckType, RunStatus, UnknownValue


@define(kw_only=True)
class RunPostRunCheckSnapshot(Model):
    """A workflow's post-run check as snapshotted onto a run, with its own status."""

    status: PostRunCheckStatus | UnknownValue
    id: UUID | None | Unset = field(default=UNSET, converter=to_opt_uuid)
    post_run_check_id: UUID | None | Unset = field(default=UNSET, converter=to_opt_uuid)
    snapshot_version: int | None | Unset = UNSET
    name: str | None | Unset = UNSET
    description: str | None | Unset = UNSET
    type: PostRunCheckType | UnknownValue | None | Unset = UNSET
    order: int | None | Unset = UNSET
    file_target_mode: PostRunCheckFileTargetMode | UnknownValue | None | Unset = UNSET
    file_names: list[str] | None | Unset = UNSET
    file_name_regex: str | None | Unset = UNSET
    expected_match_count: int | None | Unset = UNSET
    expected_match_count_ref: str | None | Unset = UNSET
    loop_input: str | None | Unset = UNSET
    loop_item_filename_template: str | None | Unset = UNSET
    allow_missing_attachments: bool = False
    check_prompt: str | None | Unset = UNSET
    model: UUID | None | Unset = field(default=UNSET, converter=to_opt_uuid)
    started_at: datetime | None | Unset = UNSET
    ended_at: datetime | None | Unset = UNSET
    error_message: str | None | Unset = UNSET
    messages: list[str] | None | Unset = UNSET
    matched_filenames: list[str] | None | Unset = UNSET


@define(kw_only=True)
class RunCreate(Model):
    workflow_id: UUID = field(converter=to_uuid)
    #: Assigned ahead of non-priority runs; does not preempt active runs or bypass session ordering.
    is_priority: bool = False
    #: Replaces the workflow's prompt for this run only.
    main_prompt: str | None | Unset = UNSET
    main_agent_model_id: UUID | None | Unset = field(default=UNSET, converter=to_opt_uuid)
    model_metadata: WorkflowModelMetadata | None | Unset = UNSET
    #: Absent: a machine is chosen automatically (within ``pool_ids`` if given).
    machine_id: UUID | None | Unset = field(default=UNSET, converter=to_opt_uuid)
    #: The machine must be in all of these pools; ignored when ``machine_id`` is given.
    pool_ids: list[UUID] | None | Unset = field(default=UNSET, converter=to_opt_uuid_list)
    input_values: dict[str, Any] | None | Unset = UNSET
    file_inputs: list[FileInput] | None | Unset = UNSET
    #: Vaulted, never stored; runs expose only ``sensitive_input_aliases``.
    sensitive_input_values: dict[str, Any] | None | Unset = UNSET
    #: Joins an existing session; overrides ``machine_id`` / ``pool_ids``.
    session_id: UUID | None | Unset = field(default=UNSET, converter=to_opt_uuid)
    #: Reserve the machine for a new session whose id is this run's id.
    start_session: bool | None = False
    session_alias: str | None | Unset = UNSET
    release_session_after: bool | None | Unset = UNSET


@define(kw_only=True)
class RunUpdate(Model):
    """Partial update of a run."""

    status: RunStatus | None | Unset = UNSET
    error: list[str] | None | Unset = UNSET
    output_data: dict[str, Any] | None | Unset = UNSET
    output_attachment_ids: list[str] | None | Unset = UNSET
    run_message_history: list[dict[str, Any]] | None | Unset = UNSET
    input_values: dict[str, Any] | None | Unset = UNSET
    usage_metadata: dict[str, Any] | None | Unset = UNSET
    post_run_checks: list[RunPostRunCheckSnapshot] | None | Unset = UNSET
    started_at: datetime | None | Unset = UNSET
    ended_at: datetime | None | Unset = UNSET
    release_session_after: bool | None | Unset = UNSET


@define(kw_only=True)
class RunRetry(Model):
    """Retry a terminal run in place (same id). ``{}`` (all defaults) is a valid retry."""

    input_values: dict[str, Any] | None | Unset = UNSET
    sensitive_input_values: dict[str, Any] | None | Unset = UNSET
    #: Replaces the run's input attachments.
    file_inputs: list[FileInput] | None | Unset = UNSET
    machine_id: UUID | None | Unset = field(default=UNSET, converter=to_opt_uuid)
    pool_ids: list[UUID] | None | Unset = field(default=UNSET, converter=to_opt_uuid_list)
    #: Keep the run's session id (False without ``session_id`` clears the session fields).
    reuse_session: bool | None = True
    session_id: UUID | None | Unset = field(default=UNSET, converter=to_opt_uuid)
    start_session: bool | None = False
    session_alias: str | None | Unset = UNSET
    release_session_after: bool | None | Unset = UNSET
    #: UNSET keeps the run's current priority.
    is_priority: bool | None | Unset = UNSET


@define(kw_only=True)
class RunResponse(Model):
    id: UUID
    workflow_id: UUID
    #: The key is required, the value may be null.
    machine_id: UUID | None
    status: RunStatus | UnknownValue
    created_at: datetime
    user_id: UUID | None = None
    organization_id: str | None = None
    is_priority: bool = False
    error: list[str] | None = None
    output_data: JSONObject | None = None
    input_attachment_ids: list[str] | None = None
    output_attachment_ids: list[str] | None = None
    run_message_history: list[JSONObject] | None = None
    input_values: JSONObject | None = None
    main_prompt: str | None = None
    model_metadata: WorkflowModelMetadata | None = None
    pool_ids: list[UUID] | None = None
    sensitive_input_aliases: dict[str, str] | None = None
    usage_metadata: JSONObject | None = None
    post_run_checks: list[RunPostRunCheckSnapshot] | None = None
    session_id: UUID | None = None
    session_alias: str | None = None
    release_session_after: bool | None = None
    #: Null while scheduling.
    started_at: datetime | None = None
    #: Null while scheduling or running.
    ended_at: datetime | None = None


@define(kw_only=True)
class RunResponseWithIncludes(RunResponse):
    #: Optional here (``GET /v1/runs/{id}``), unlike in ``RunResponse``.
    machine_id: UUID | None = None
    included: list[IncludedResource] | None = None


@define(kw_only=True)
class RunBulkCreate(Model):
    """Up to 1000 runs with one configuration, created in one transaction."""

    workflow_id: UUID = field(converter=to_uuid)
    count: int
    is_priority: bool = False
    machine_id: UUID | None | Unset = field(default=UNSET, converter=to_opt_uuid)
    pool_ids: list[UUID] | None | Unset = field(default=UNSET, converter=to_opt_uuid_list)
    input_values: dict[str, Any] | None | Unset = UNSET
    file_inputs: list[FileInput] | None | Unset = UNSET
    sensitive_input_values: dict[str, Any] | None | Unset = UNSET
    session_id: UUID | None | Unset = field(default=UNSET, converter=to_opt_uuid)
    start_session: bool | None = False


@define(kw_only=True)
class RunBulkCreateResponse(Model):
    created_runs: list[RunResponse]
    failed_count: int = 0
    errors: list[str] = field(factory=list)


@define(kw_only=True)
class ChainStep(Model):
    workflow_id: UUID = field(converter=to_uuid)
    #: The alias later steps use to reference this step's outputs (``{"$ref": "alias.outputs.path"}``).
    session_alias: str | None | Unset = UNSET
    inputs: dict[str, Any] | None | Unset = UNSET
    sensitive_inputs: dict[str, Any] | None | Unset = UNSET


@define(kw_only=True)
class WorkflowChainCreate(Model):
    """Steps run in order on one reserved session/machine."""

    steps: list[ChainStep]
    is_priority: bool = False
    shared_inputs: dict[str, Any] | None | Unset = UNSET
    shared_sensitive_inputs: dict[str, Any] | None | Unset = UNSET
    shared_file_inputs: list[FileInput] | None | Unset = UNSET
    keep_session_after_completion: bool | None = False
    machine_id: UUID | None | Unset = field(default=UNSET, converter=to_opt_uuid)
    pool_ids: list[UUID] | None | Unset = field(default=UNSET, converter=to_opt_uuid_list)
    session_id: UUID | None | Unset = field(default=UNSET, converter=to_opt_uuid)


@define(kw_only=True)
class WorkflowChainResponse(Model):
    session_id: UUID
    #: In step order.
    run_ids: list[UUID]


@define(kw_only=True)
class RunImageSignedUrlResponse(Model):
    """A temporary URL of a screenshot referenced (``supabase://run-images/...``) in a run's message history."""

    supabase_url: str
    signed_url: str
    expires_in: int
