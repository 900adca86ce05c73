"""Request bodies and enums as pydantic models, so malformed requests get FastAPI's genuine 422s.

Fields the official client always sends with their default (`is_priority: false`, ...) are accepted;
PATCH models tell "absent" from "null" through `model_fields_set`.
"""

from __future__ import annotations

import base64
import binascii
from datetime import datetime
from enum import StrEnum
from typing import Any
from uuid import UUID

from pydantic import BaseModel, Field, field_validator

#: Emulator choices (the API documents no limits for file inputs): per file and per run, decoded bytes.
MAX_FILE_INPUT_BYTES = 50 * 1024 * 1024
MAX_FILE_INPUTS_BYTES_PER_RUN = 100 * 1024 * 1024


class RunStatus(StrEnum):
    scheduling = "scheduling"
    running = "running"
    running_checks = "running_checks"
    success = "success"
    task_failed = "task_failed"
    error = "error"
    cancelled = "cancelled"


class MachineStatus(StrEnum):
    connected = "connected"
    disconnected = "disconnected"
    error = "error"


class AttachmentType(StrEnum):
    input = "input"
    output = "output"


class UsageMode(StrEnum):
    simulated = "simulated"
    billed = "billed"


class RunListSortMode(StrEnum):
    activity = "activity"
    created_at_desc = "created_at_desc"


class RunField(StrEnum):
    ended_at = "ended_at"
    error = "error"
    input_attachment_ids = "input_attachment_ids"
    input_values = "input_values"
    is_priority = "is_priority"
    machine_id = "machine_id"
    main_prompt = "main_prompt"
    model_metadata = "model_metadata"
    organization_id = "organization_id"
    output_attachment_ids = "output_attachment_ids"
    output_data = "output_data"
    pool_ids = "pool_ids"
    post_run_checks = "post_run_checks"
    release_session_after = "release_session_after"
    run_message_history = "run_message_history"
    sensitive_input_aliases = "sensitive_input_aliases"
    session_alias = "session_alias"
    session_id = "session_id"
    started_at = "started_at"
    usage_metadata = "usage_metadata"
    user_id = "user_id"


# -- machines and pools -----------------------------------------------------------------------


class MachineCreate(BaseModel):
    fingerprint: str
    unkey_key_id: str
    name: str | None = None
    version: str | None = None
    hostname: str | None = None
    os_info: str | None = None
    machine_parameters: dict[str, Any] | None = None
    machine_sensitive_parameters: dict[str, str] | None = None


class MachineUpdate(BaseModel):
    name: str | None = None
    version: str | None = None
    hostname: str | None = None
    os_info: str | None = None
    status: MachineStatus | None = None
    is_available: bool | None = None
    alerts_enabled: bool | None = None
    last_seen: datetime | None = None
    reserved_session_id: UUID | None = None
    machine_parameters: dict[str, Any] | None = None
    machine_sensitive_parameters: dict[str, str] | None = None


class MachinePoolUpdate(BaseModel):
    pool_ids: list[UUID]


class PoolCreate(BaseModel):
    name: str
    description: str | None = None
    pool_parameters: dict[str, Any] | None = None
    pool_sensitive_parameters: dict[str, str] | None = None


class PoolUpdate(BaseModel):
    name: str | None = None
    description: str | None = None
    pool_parameters: dict[str, Any] | None = None
    pool_sensitive_parameters: dict[str, str] | None = None


class MachinePoolAssignment(BaseModel):
    machine_ids: list[UUID]


# -- workflows --------------------------------------------------------------------------------


class WorkflowCreate(BaseModel):
    main_prompt: str
    name: str | None = None
    input_schema: str | None = None
    output_schema: str | None = None
    includes_file_exports: bool = False
    is_webhooks_enabled: bool = False
    terminal_command_allowlist: list[str] | None = None
    model_metadata: dict[str, Any] | None = None
    post_run_check_failure_cleanup_prompt: str | None = None
    post_run_checks: list[dict[str, Any]] | None = None


class WorkflowUpdate(BaseModel):
    main_prompt: str | None = None
    name: str | None = None
    input_schema: str | None = None
    output_schema: str | None = None
    includes_file_exports: bool | None = None
    is_webhooks_enabled: bool | None = None
    terminal_command_allowlist: list[str] | None = None
    model_metadata: dict[str, Any] | None = None
    post_run_check_failure_cleanup_prompt: str | None = None
    post_run_checks: list[dict[str, Any]] | None = None
    workflow_metadata: dict[str, Any] | None = None


class WorkflowDuplicateRequest(BaseModel):
    include_trajectories: bool = False


# -- runs -------------------------------------------------------------------------------------


def decode_base64(value: str) -> bytes:
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("content must be base64 (standard alphabet, padded)") from None


def plain_filename(value: str) -> str:
    if not value.strip() or "/" in value or "\\" in value or value in {".", ".."}:
        raise ValueError("filename must be a plain file name (no folders)")
    return value


class FileInput(BaseModel):
    filename: str = Field(min_length=1, max_length=255)
    content: str
    target_path: str | None = None
    cleanup_imports_after_run: bool = False

    _filename = field_validator("filename")(plain_filename)

    @field_validator("content")
    @classmethod
    def _content(cls, value: str) -> str:
        if len(value) > (MAX_FILE_INPUT_BYTES + 2) // 3 * 4:
            raise ValueError(f"file is larger than {MAX_FILE_INPUT_BYTES // (1024 * 1024)} MB")
        decode_base64(value)
        return value

    def data(self) -> bytes:
        return base64.b64decode(self.content)


def within_run_limit(files: list[FileInput] | None) -> list[FileInput] | None:
    if files and sum(len(f.content) // 4 * 3 for f in files) > MAX_FILE_INPUTS_BYTES_PER_RUN:
        raise ValueError(
            f"the files of a run total more than {MAX_FILE_INPUTS_BYTES_PER_RUN // (1024 * 1024)} MB"
        )
    return files


class RunCreate(BaseModel):
    workflow_id: UUID
    is_priority: bool = False
    main_prompt: str | None = None
    main_agent_model_id: UUID | None = None
    model_metadata: dict[str, Any] | None = None
    machine_id: UUID | None = None
    pool_ids: list[UUID] | None = None
    input_values: dict[str, Any] | None = None
    file_inputs: list[FileInput] | None = None
    sensitive_input_values: dict[str, Any] | None = None
    session_id: UUID | None = None
    start_session: bool | None = False
    session_alias: str | None = None
    release_session_after: bool | None = None

    _files_limit = field_validator("file_inputs")(within_run_limit)


class RunUpdate(BaseModel):
    status: RunStatus | None = None
    error: list[str] | None = None
    output_data: dict[str, Any] | None = None
    output_attachment_ids: list[str] | None = None
    run_message_history: list[dict[str, Any]] | None = None
    input_values: dict[str, Any] | None = None
    usage_metadata: dict[str, Any] | None = None
    post_run_checks: list[dict[str, Any]] | None = None
    started_at: datetime | None = None
    ended_at: datetime | None = None
    release_session_after: bool | None = None


class RunRetry(BaseModel):
    input_values: dict[str, Any] | None = None
    sensitive_input_values: dict[str, Any] | None = None
    file_inputs: list[FileInput] | None = None
    machine_id: UUID | None = None
    pool_ids: list[UUID] | None = None
    reuse_session: bool | None = True
    session_id: UUID | None = None
    start_session: bool | None = False
    session_alias: str | None = None
    release_session_after: bool | None = None
    is_priority: bool | None = None

    _files_limit = field_validator("file_inputs")(within_run_limit)


class RunBulkCreate(BaseModel):
    workflow_id: UUID
    count: int = Field(ge=1, le=1000)
    is_priority: bool = False
    machine_id: UUID | None = None
    pool_ids: list[UUID] | None = None
    input_values: dict[str, Any] | None = None
    file_inputs: list[FileInput] | None = None
    sensitive_input_values: dict[str, Any] | None = None
    session_id: UUID | None = None
    start_session: bool | None = False

    _files_limit = field_validator("file_inputs")(within_run_limit)


class ChainStep(BaseModel):
    workflow_id: UUID
    session_alias: str | None = None
    inputs: dict[str, Any] | None = None
    sensitive_inputs: dict[str, Any] | None = None


class WorkflowChainCreate(BaseModel):
    steps: list[ChainStep] = Field(min_length=1)
    is_priority: bool = False
    shared_inputs: dict[str, Any] | None = None
    shared_sensitive_inputs: dict[str, Any] | None = None
    shared_file_inputs: list[FileInput] | None = None
    keep_session_after_completion: bool | None = False
    machine_id: UUID | None = None
    pool_ids: list[UUID] | None = None
    session_id: UUID | None = None

    _files_limit = field_validator("shared_file_inputs")(within_run_limit)


class RunAttachmentCreate(BaseModel):
    run_id: UUID
    filename: str = Field(min_length=1, max_length=255)
    content: str
    content_type: str
    attachment_type: AttachmentType
    target_path: str | None = None
    cleanup_imports_after_run: bool = False
    expires_at: datetime | None = None

    _filename = field_validator("filename")(plain_filename)
    _content = field_validator("content")(FileInput._content.__func__)  # type: ignore[attr-defined]


class RunAttachmentUpdate(BaseModel):
    expires_at: datetime | None = None


# -- tags, model configurations ---------------------------------------------------------------


class WorkflowTagGroupCreate(BaseModel):
    name: str = Field(min_length=1)
    description: str | None = None
    emoji: str | None = None
    color: str | None = None


class WorkflowTagGroupUpdate(BaseModel):
    name: str | None = None
    description: str | None = None
    emoji: str | None = None
    color: str | None = None


class WorkflowTagCreate(WorkflowTagGroupCreate):
    group_id: UUID | None = None


class WorkflowTagUpdate(WorkflowTagGroupUpdate):
    group_id: UUID | None = None
    is_archived: bool | None = None


class ReorderRequest(BaseModel):
    ids: list[UUID]


class AddTagsRequest(BaseModel):
    tag_ids: list[UUID]


class BulkAddTagsRequest(BaseModel):
    workflow_ids: list[UUID]
    tag_ids: list[UUID]


class WorkflowMergeRequest(BaseModel):
    target_workflow_id: UUID
    copy_trajectories: bool = False


class ModelConfigurationCreate(BaseModel):
    name: str
    provider: str
    model: str
    description: str | None = None
    temperature: float | None = None
    max_tokens: int | None = None
    timeout_seconds: float | None = None
    max_retries: int | None = None
    additional_params: dict[str, Any] | None = None
    agent_harness_version_string: str | None = None
    is_computer_use_model: bool = False
    is_archived: bool = False
    api_key: str | None = None


class ModelConfigurationUpdate(BaseModel):
    name: str | None = None
    description: str | None = None
    provider: str | None = None
    model: str | None = None
    api_key: str | None = None
    clear_api_key: bool | None = None
    temperature: float | None = None
    max_tokens: int | None = None
    timeout_seconds: float | None = None
    max_retries: int | None = None
    additional_params: dict[str, Any] | None = None
    agent_harness_version_string: str | None = None
    is_computer_use_model: bool | None = None
    is_archived: bool | None = None


# -- connections and trajectories -------------------------------------------------------------


class ConnectionCreate(BaseModel):
    websocket_id: str
    machine_id: UUID
    ip_address: str | None = None
    user_agent: str | None = None


class ConnectionUpdate(BaseModel):
    status: MachineStatus | None = None
    last_ping: datetime | None = None
    disconnected_at: datetime | None = None


class TrajectoryCreate(BaseModel):
    workflow_id: UUID
    trajectory_data: list[dict[str, Any]] = Field(min_length=1)
    dimensions: dict[str, int]
    name: str | None = None
    description: str | None = None
    run_id: UUID | None = None
    original_input_values: dict[str, Any] | None = None
    is_approved: bool = False


class TrajectoryUpdate(BaseModel):
    name: str | None = None
    description: str | None = None
    trajectory_data: list[dict[str, Any]] | None = None
    is_approved: bool | None = None
    is_main: bool | None = None


# -- /_emulator control -----------------------------------------------------------------------


class FaultsUpdate(BaseModel):
    rate_limit: float | None = Field(None, ge=0, le=1)
    server_errors: float | None = Field(None, ge=0, le=1)
    drop_responses: float | None = Field(None, ge=0, le=1)
    latency_ms: float | None = Field(None, ge=0)
    latency: float | None = Field(None, ge=0)


class AdvanceRequest(BaseModel):
    seconds: float = Field(ge=0)


class WebhookEndpointCreate(BaseModel):
    url: str
    secret: str
