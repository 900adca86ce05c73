"""Request bodies and enums as pydantic models, so malformed requests get FastAPI's genuine 422s.

Fields the official client always sends with their default (`is_priority: false`, ...) are accepted;
PATCH models tell "absent" from "null" through `model_fields_set`.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any
from uuid import UUID

from pydantic import BaseModel, Field


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


class FileInput(BaseModel):
    filename: str
    content: str
    target_path: str | None = None
    cleanup_imports_after_run: bool = False


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
