"""Every operation of every resource, sync and async: the exact request sent and the parsed result.

One table; each row runs twice (``name_sync()`` and ``await name()``) against a recording MockTransport.
"""

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import httpx
import pytest

import cyberdesk._core
from cyberdesk import (
    AttachmentType,
    ChainStep,
    ConnectionCreate,
    ConnectionResponse,
    ConnectionStatus,
    ConnectionUpdate,
    CyberdeskClient,
    DisplayDimensions,
    MachineCreate,
    MachinePoolAssignment,
    MachinePoolUpdate,
    MachineResponse,
    MachineResponseWithIncludes,
    MachineStatus,
    MachineUpdate,
    ModelConfigurationCreate,
    ModelConfigurationResponse,
    ModelConfigurationUpdate,
    Page,
    PoolCreate,
    PoolResponse,
    PoolResponseWithIncludes,
    PoolUpdate,
    PoolWithMachines,
    RunAttachmentCreate,
    RunAttachmentDownloadUrlResponse,
    RunAttachmentResponse,
    RunAttachmentUpdate,
    RunBulkCreate,
    RunBulkCreateResponse,
    RunCreate,
    RunField,
    RunImageSignedUrlResponse,
    RunListSortMode,
    RunResponse,
    RunResponseWithIncludes,
    RunRetry,
    RunStatus,
    RunUpdate,
    TrajectoryCreate,
    TrajectoryResponse,
    TrajectoryResponseWithIncludes,
    TrajectoryUpdate,
    UsageAggregateResponse,
    UsageMode,
    WorkflowChainCreate,
    WorkflowChainResponse,
    WorkflowCreate,
    WorkflowPromptImageListItem,
    WorkflowPromptImageSignedUrlResponse,
    WorkflowResponse,
    WorkflowResponseWithIncludes,
    WorkflowTagGroupResponse,
    WorkflowTagResponse,
    WorkflowUpdate,
)

from .helpers import (
    AID,
    API_KEY,
    CID,
    GID,
    MID,
    PID,
    RID,
    TID,
    WID,
    Api,
    attachment_json,
    body_of,
    call,
    connection_json,
    is_uuid,
    machine_json,
    model_configuration_json,
    page_json,
    pool_json,
    query_of,
    run_json,
    tag_json,
    trajectory_json,
    workflow_json,
)

T0 = datetime(2024, 1, 1, tzinfo=UTC)
T0_ISO = "2024-01-01T00:00:00+00:00"
PNG = b"\x89PNG\r\n\x1a\n-fake-"


@dataclass
class Case:
    resource: str
    name: str
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    method: str
    path: str
    reply: httpx.Response
    returns: type | None
    query: list[tuple[str, str]] = field(default_factory=list)
    body: Any = None
    #: For lists and pages: the type of each item.
    items: type | None = None

    @property
    def id(self) -> str:
        detail = ",".join(sorted(self.kwargs)) if self.kwargs else ""
        return f"{self.resource}.{self.name}({detail})"


def ok(payload: Any, status: int = 200) -> httpx.Response:
    return httpx.Response(status, json=payload)


NO_CONTENT = httpx.Response(204)

CASES = [
    # machines
    Case("machines", "list", (), {}, "GET", "/v1/machines", ok(page_json([machine_json()])), Page, items=MachineResponse),
    Case(
        "machines", "list", (0, 10, MachineStatus.CONNECTED),
        {"search": "desk", "name": "desk-1", "created_at_from": T0, "created_at_to": "2024-02-01T00:00:00Z",
         "include": ["pools"]},
        "GET", "/v1/machines", ok(page_json([machine_json()])), Page, items=MachineResponse,
        query=[("skip", "0"), ("limit", "10"), ("status", "connected"), ("search", "desk"), ("name", "desk-1"),
               ("created_at_from", T0_ISO), ("created_at_to", "2024-02-01T00:00:00Z"), ("include", "pools")],
    ),
    Case("machines", "get", (MID,), {"include": ["pools"]}, "GET", f"/v1/machines/{MID}",
         ok(machine_json(pools=[pool_json()])), MachineResponseWithIncludes, query=[("include", "pools")]),
    Case("machines", "create", (MachineCreate(fingerprint="fp", unkey_key_id="key_1", name="desk-1"),), {},
         "POST", "/v1/machines", ok(machine_json(), 201), MachineResponse,
         body={"fingerprint": "fp", "unkey_key_id": "key_1", "name": "desk-1"}),
    Case("machines", "update",
         (MID, MachineUpdate(machine_parameters={"username": "u"}, machine_sensitive_parameters={"password": "p"})),
         {}, "PATCH", f"/v1/machines/{MID}", ok(machine_json()), MachineResponse,
         body={"machine_parameters": {"username": "u"}, "machine_sensitive_parameters": {"password": "p"}}),
    Case("machines", "clear_session", (UUID(MID),), {}, "PATCH", f"/v1/machines/{MID}", ok(machine_json()),
         MachineResponse, body={"reserved_session_id": None}),
    Case("machines", "delete", (MID,), {}, "DELETE", f"/v1/machines/{MID}", NO_CONTENT, None),
    Case("machines", "get_pools", (MID,), {}, "GET", f"/v1/machines/{MID}/pools", ok([pool_json()]), list,
         items=PoolResponse),
    Case("machines", "update_pools", (MID, MachinePoolUpdate(pool_ids=[PID])), {}, "PUT",
         f"/v1/machines/{MID}/pools", ok(machine_json()), MachineResponse, body={"pool_ids": [PID]}),
    # pools
    Case("pools", "list", (), {}, "GET", "/v1/pools", ok(page_json([pool_json()])), Page, items=PoolResponse),
    Case("pools", "list", (5, 5), {"include": ["machines"]}, "GET", "/v1/pools", ok(page_json([pool_json()])), Page,
         items=PoolResponse, query=[("skip", "5"), ("limit", "5"), ("include", "machines")]),
    Case("pools", "get", (PID,), {}, "GET", f"/v1/pools/{PID}", ok(pool_json(machines=[machine_json()])),
         PoolResponseWithIncludes),
    Case("pools", "get_machine_ids", (PID,), {}, "GET", f"/v1/pools/{PID}",
         ok(pool_json(included=[{"type": "machine", **machine_json()}])), list, items=str,
         query=[("include", "machines")]),
    Case("pools", "create", (PoolCreate(name="pool-1", pool_parameters={"region": "eu"}),), {}, "POST", "/v1/pools",
         ok(pool_json(), 201), PoolResponse, body={"name": "pool-1", "pool_parameters": {"region": "eu"}}),
    Case("pools", "update", (PID, PoolUpdate(description=None, pool_sensitive_parameters={})), {}, "PATCH",
         f"/v1/pools/{PID}", ok(pool_json()), PoolResponse,
         body={"description": None, "pool_sensitive_parameters": {}}),
    Case("pools", "delete", (PID,), {}, "DELETE", f"/v1/pools/{PID}", NO_CONTENT, None),
    Case("pools", "add_machines", (PID, MachinePoolAssignment(machine_ids=[MID])), {}, "POST",
         f"/v1/pools/{PID}/machines", ok(pool_json(machines=[machine_json()])), PoolWithMachines,
         body={"machine_ids": [MID]}),
    Case("pools", "remove_machines", (PID, MachinePoolAssignment(machine_ids=[MID])), {}, "DELETE",
         f"/v1/pools/{PID}/machines", NO_CONTENT, None, body={"machine_ids": [MID]}),
    # workflows
    Case("workflows", "list", (), {}, "GET", "/v1/workflows", ok(page_json([workflow_json()])), Page,
         items=WorkflowResponse),
    Case(
        "workflows", "list", (),
        {"search": "inv", "updated_at_to": T0, "tag_ids": [PID, UUID(CID)], "include_tags": False,
         "include": ["tags", "post_run_checks"]},
        "GET", "/v1/workflows", ok(page_json([workflow_json()])), Page, items=WorkflowResponse,
        query=[("search", "inv"), ("updated_at_to", T0_ISO), ("tag_ids", f"{PID},{CID}"), ("include_tags", "false"),
               ("include", "tags,post_run_checks")],
    ),
    Case("workflows", "get", (WID,), {"include": ["tags"]}, "GET", f"/v1/workflows/{WID}",
         ok(workflow_json(tags=[])), WorkflowResponseWithIncludes, query=[("include", "tags")]),
    Case("workflows", "create", (WorkflowCreate(main_prompt="Do it", name="wf"),), {}, "POST", "/v1/workflows",
         ok(workflow_json(), 201), WorkflowResponse,
         body={"main_prompt": "Do it", "name": "wf", "includes_file_exports": False, "is_webhooks_enabled": False}),
    Case("workflows", "update", (WID, WorkflowUpdate(name="wf2", workflow_metadata=None)), {}, "PATCH",
         f"/v1/workflows/{WID}", ok(workflow_json()), WorkflowResponse, body={"name": "wf2", "workflow_metadata": None}),
    Case("workflows", "delete", (WID,), {}, "DELETE", f"/v1/workflows/{WID}", NO_CONTENT, None),
    Case("workflows", "duplicate", (WID,), {}, "POST", f"/v1/workflows/{WID}/duplicate", ok(workflow_json(), 201),
         WorkflowResponse, body={"include_trajectories": False}),
    Case("workflows", "duplicate", (WID,), {"include_trajectories": True}, "POST", f"/v1/workflows/{WID}/duplicate",
         ok(workflow_json(), 201), WorkflowResponse, body={"include_trajectories": True}),
    # runs
    Case("runs", "list", (), {}, "GET", "/v1/runs", ok(page_json([run_json()])), Page, items=RunResponse),
    Case(
        "runs", "list", (0, 50, RunStatus.RUNNING, WID, UUID(MID), RID),
        {"created_at_from": T0, "created_at_to": datetime(2024, 1, 2), "search": "acme", "deep_search": True,
         "sort_mode": RunListSortMode.CREATED_AT_DESC, "fields": [RunField.OUTPUT_DATA, RunField.STARTED_AT],
         "include": ["workflow", "machine.pools"]},
        "GET", "/v1/runs", ok(page_json([run_json()])), Page, items=RunResponse,
        query=[("skip", "0"), ("limit", "50"), ("status", "running"), ("workflow_id", WID), ("machine_id", MID),
               ("session_id", RID), ("created_at_from", T0_ISO), ("created_at_to", "2024-01-02T00:00:00+00:00"),
               ("search", "acme"), ("deep_search", "true"), ("sort_mode", "created_at_desc"),
               ("fields", "output_data"), ("fields", "started_at"), ("include", "workflow,machine.pools")],
    ),
    Case("runs", "get", (RID,), {"include": ["workflow", "machine"]}, "GET", f"/v1/runs/{RID}",
         ok(run_json(included=[{"type": "workflow", "id": WID, "name": "wf"}])), RunResponseWithIncludes,
         query=[("include", "workflow,machine")]),
    Case("runs", "create", (RunCreate(workflow_id=WID, machine_id=MID, input_values={"a": 1}),), {}, "POST",
         "/v1/runs", ok(run_json(), 201), RunResponse,
         body={"workflow_id": WID, "machine_id": MID, "input_values": {"a": 1}, "is_priority": False,
               "start_session": False}),
    Case("runs", "update", (RID, RunUpdate(status=RunStatus.CANCELLED, error=None)), {}, "PATCH", f"/v1/runs/{RID}",
         ok(run_json(status="cancelled")), RunResponse, body={"status": "cancelled", "error": None}),
    Case("runs", "delete", (RID,), {}, "DELETE", f"/v1/runs/{RID}", NO_CONTENT, None),
    Case("runs", "retry", (RID,), {}, "POST", f"/v1/runs/{RID}/retry", ok(run_json()), RunResponse,
         body={"reuse_session": True, "start_session": False}),
    Case("runs", "retry", (RID, RunRetry(input_values={"a": 2}, is_priority=True, pool_ids=[PID])), {}, "POST",
         f"/v1/runs/{RID}/retry", ok(run_json()), RunResponse,
         body={"input_values": {"a": 2}, "is_priority": True, "pool_ids": [PID], "reuse_session": True,
               "start_session": False}),
    Case("runs", "bulk_create", (RunBulkCreate(workflow_id=WID, count=2),), {}, "POST", "/v1/runs/bulk",
         ok({"created_runs": [run_json(), run_json(id=TID)], "failed_count": 0, "errors": []}, 201),
         RunBulkCreateResponse, body={"workflow_id": WID, "count": 2, "is_priority": False, "start_session": False}),
    Case("runs", "chain", (WorkflowChainCreate(steps=[ChainStep(workflow_id=WID, session_alias="a")]),), {}, "POST",
         "/v1/runs/chain", ok({"session_id": RID, "run_ids": [RID, TID]}, 201), WorkflowChainResponse,
         body={"steps": [{"workflow_id": WID, "session_alias": "a"}], "is_priority": False,
               "keep_session_after_completion": False}),
    Case("runs", "get_trajectory", (RID,), {}, "GET", f"/v1/runs/{RID}/trajectory", ok(trajectory_json()),
         TrajectoryResponse),
    # connections
    Case("connections", "list", (), {}, "GET", "/v1/connections", ok(page_json([connection_json()])), Page,
         items=ConnectionResponse),
    Case("connections", "list", (None, None, MID, ConnectionStatus.CONNECTED), {}, "GET", "/v1/connections",
         ok(page_json([connection_json()])), Page, items=ConnectionResponse,
         query=[("machine_id", MID), ("status", "connected")]),
    Case("connections", "get", (CID,), {}, "GET", f"/v1/connections/{CID}", ok(connection_json()), ConnectionResponse),
    Case("connections", "create", (ConnectionCreate(websocket_id="ws_1", machine_id=MID),), {}, "POST",
         "/v1/connections", ok(connection_json(), 201), ConnectionResponse,
         body={"websocket_id": "ws_1", "machine_id": MID}),
    Case("connections", "update", (CID, ConnectionUpdate(status=ConnectionStatus.DISCONNECTED, disconnected_at=T0)),
         {}, "PATCH", f"/v1/connections/{CID}", ok(connection_json(status="disconnected")), ConnectionResponse,
         body={"status": "disconnected", "disconnected_at": T0_ISO}),
    Case("connections", "delete", (CID,), {}, "DELETE", f"/v1/connections/{CID}", NO_CONTENT, None),
    # trajectories
    Case("trajectories", "list", (), {}, "GET", "/v1/trajectories", ok(page_json([trajectory_json()])), Page,
         items=TrajectoryResponse),
    Case("trajectories", "list", (None, 20, WID, RID, True, False), {"search": "login", "include": ["workflow"]},
         "GET", "/v1/trajectories", ok(page_json([trajectory_json()])), Page, items=TrajectoryResponse,
         query=[("limit", "20"), ("workflow_id", WID), ("run_id", RID), ("is_approved", "true"),
                ("is_generated", "false"), ("search", "login"), ("include", "workflow")]),
    Case("trajectories", "get", (TID,), {"include": ["workflow"]}, "GET", f"/v1/trajectories/{TID}",
         ok({k: v for k, v in trajectory_json().items() if k != "trajectory_data"}), TrajectoryResponseWithIncludes,
         query=[("include", "workflow")]),
    Case("trajectories", "create",
         (TrajectoryCreate(workflow_id=WID, trajectory_data=[{"a": 1}], dimensions={"width": 800, "height": 600}),),
         {}, "POST", "/v1/trajectories", ok(trajectory_json(), 201), TrajectoryResponse,
         body={"workflow_id": WID, "trajectory_data": [{"a": 1}], "dimensions": {"width": 800, "height": 600},
               "is_approved": False}),
    Case("trajectories", "update", (TID, TrajectoryUpdate(is_approved=True, name=None)), {}, "PATCH",
         f"/v1/trajectories/{TID}", ok(trajectory_json(is_approved=True)), TrajectoryResponse,
         body={"is_approved": True, "name": None}),
    Case("trajectories", "delete", (TID,), {}, "DELETE", f"/v1/trajectories/{TID}", NO_CONTENT, None),
    Case("trajectories", "get_latest_for_workflow", (WID,), {}, "GET", f"/v1/workflows/{WID}/latest-trajectory",
         ok(trajectory_json()), TrajectoryResponse),
    Case("trajectories", "duplicate", (TID,), {}, "POST", f"/v1/trajectories/{TID}/duplicate",
         ok(trajectory_json(), 201), TrajectoryResponse),
    Case("workflows", "merge", (WID,), {"target_workflow_id": UUID(TID)}, "POST", f"/v1/workflows/{WID}/merge",
         ok(workflow_json(id=TID)), WorkflowResponse, body={"target_workflow_id": TID, "copy_trajectories": False}),
    Case("workflows", "list_prompt_images", (), {}, "GET", "/v1/workflows/prompt-images",
         ok([{"supabase_url": "supabase://x/a.png", "path": "org/a.png", "filename": "a.png"}]), list,
         items=WorkflowPromptImageListItem),
    Case("workflows", "get_prompt_image_signed_url", ("org/a.png",), {}, "GET", "/v1/workflows/prompt-image/signed-url",
         ok({"supabase_url": "supabase://x/a.png", "signed_url": "https://s/a.png", "expires_in": 3600}),
         WorkflowPromptImageSignedUrlResponse, query=[("path", "org/a.png")]),
    Case("workflows", "delete_prompt_image", ("org/a.png",), {}, "DELETE", "/v1/workflows/prompt-image", NO_CONTENT,
         None, query=[("path", "org/a.png")]),
    # workflow tags and groups
    Case("workflow_tags", "list", (), {}, "GET", "/v1/workflow-tags", ok([tag_json(workflow_count=2)]), list,
         items=WorkflowTagResponse, query=[("include_archived", "false")]),
    Case("workflow_tags", "create", ("Production",), {"emoji": "🚀", "group_id": GID}, "POST", "/v1/workflow-tags",
         ok(tag_json(group_id=GID), 201), WorkflowTagResponse,
         body={"name": "Production", "emoji": "🚀", "group_id": GID}),
    Case("workflow_tags", "get", (TID,), {}, "GET", f"/v1/workflow-tags/{TID}", ok(tag_json()), WorkflowTagResponse),
    Case("workflow_tags", "update", (TID,), {"color": "red", "group_id": ""}, "PATCH", f"/v1/workflow-tags/{TID}",
         ok(tag_json()), WorkflowTagResponse, body={"color": "red", "group_id": None}),
    Case("workflow_tags", "delete", (TID,), {}, "DELETE", f"/v1/workflow-tags/{TID}", NO_CONTENT, None),
    Case("workflow_tags", "archive", (TID,), {}, "POST", f"/v1/workflow-tags/{TID}/archive",
         ok(tag_json(is_archived=True)), WorkflowTagResponse),
    Case("workflow_tags", "unarchive", (TID,), {}, "POST", f"/v1/workflow-tags/{TID}/unarchive", ok(tag_json()),
         WorkflowTagResponse),
    Case("workflow_tags", "reorder", ([TID, UUID(GID)],), {}, "PUT", "/v1/workflow-tags/reorder", NO_CONTENT, None,
         body={"ids": [TID, GID]}),
    Case("workflow_tags", "add_to_workflow", (WID, [TID]), {}, "POST", f"/v1/workflows/{WID}/tags", ok([tag_json()]),
         list, items=WorkflowTagResponse, body={"tag_ids": [TID]}),
    Case("workflow_tags", "remove_from_workflow", (WID, TID), {}, "DELETE", f"/v1/workflows/{WID}/tags/{TID}",
         NO_CONTENT, None),
    Case("workflow_tags", "get_for_workflow", (WID,), {}, "GET", f"/v1/workflows/{WID}/tags", ok([tag_json()]), list,
         items=WorkflowTagResponse),
    Case("workflow_tags", "bulk_add_to_workflows", ([WID], [TID]), {}, "POST", "/v1/workflows/bulk/tags", NO_CONTENT,
         None, body={"workflow_ids": [WID], "tag_ids": [TID]}),
    Case("workflow_tag_groups", "list", (), {}, "GET", "/v1/workflow-tag-groups", ok([tag_json(id=GID)]), list,
         items=WorkflowTagGroupResponse),
    Case("workflow_tag_groups", "create", ("Priority", None, None, "red"), {}, "POST", "/v1/workflow-tag-groups",
         ok(tag_json(id=GID), 201), WorkflowTagGroupResponse, body={"name": "Priority", "color": "red"}),
    Case("workflow_tag_groups", "get", (GID,), {}, "GET", f"/v1/workflow-tag-groups/{GID}", ok(tag_json(id=GID)),
         WorkflowTagGroupResponse),
    Case("workflow_tag_groups", "update", (GID,), {"name": "P"}, "PATCH", f"/v1/workflow-tag-groups/{GID}",
         ok(tag_json(id=GID)), WorkflowTagGroupResponse, body={"name": "P"}),
    Case("workflow_tag_groups", "delete", (GID,), {}, "DELETE", f"/v1/workflow-tag-groups/{GID}", NO_CONTENT, None),
    Case("workflow_tag_groups", "reorder", ([GID],), {}, "PUT", "/v1/workflow-tag-groups/reorder", NO_CONTENT, None,
         body={"ids": [GID]}),
    # runs: trajectories and screenshots
    Case("runs", "generate_trajectory", (RID,), {}, "POST", f"/v1/runs/{RID}/generate-trajectory",
         ok(trajectory_json()), TrajectoryResponse),
    Case("runs", "get_image_signed_url", (RID,), {"image_url": "supabase://run-images/a.png"}, "GET",
         f"/v1/runs/{RID}/image/signed-url",
         ok({"supabase_url": "supabase://run-images/a.png", "signed_url": "https://s/a", "expires_in": 3600}),
         RunImageSignedUrlResponse, query=[("image_url", "supabase://run-images/a.png"), ("expires_in", "3600")]),
    # run attachments
    Case("run_attachments", "list", (), {}, "GET", "/v1/run-attachments", ok(page_json([attachment_json()])), Page,
         items=RunAttachmentResponse),
    Case("run_attachments", "list", (0, 10, RID, AttachmentType.OUTPUT), {}, "GET", "/v1/run-attachments",
         ok(page_json([attachment_json()])), Page, items=RunAttachmentResponse,
         query=[("skip", "0"), ("limit", "10"), ("run_id", RID), ("attachment_type", "output")]),
    Case("run_attachments", "create",
         (RunAttachmentCreate(run_id=RID, filename="a.txt", content="aGk=", content_type="text/plain",
                              attachment_type=AttachmentType.INPUT),), {},
         "POST", "/v1/run-attachments", ok(attachment_json(attachment_type="input"), 201), RunAttachmentResponse,
         body={"run_id": RID, "filename": "a.txt", "content": "aGk=", "content_type": "text/plain",
               "attachment_type": "input", "cleanup_imports_after_run": False}),
    Case("run_attachments", "get", (AID,), {}, "GET", f"/v1/run-attachments/{AID}", ok(attachment_json()),
         RunAttachmentResponse),
    Case("run_attachments", "update", (AID, RunAttachmentUpdate(expires_at=T0)), {}, "PUT",
         f"/v1/run-attachments/{AID}", ok(attachment_json()), RunAttachmentResponse, body={"expires_at": T0_ISO}),
    Case("run_attachments", "delete", (AID,), {}, "DELETE", f"/v1/run-attachments/{AID}", NO_CONTENT, None),
    Case("run_attachments", "get_download_url", (AID, 60), {}, "GET", f"/v1/run-attachments/{AID}/download-url",
         ok({"url": "https://s/invoice.pdf", "expires_in": 60}), RunAttachmentDownloadUrlResponse,
         query=[("expires_in", "60")]),
    Case("run_attachments", "download", (AID,), {}, "GET", f"/v1/run-attachments/{AID}/download",
         httpx.Response(200, content=b"%PDF-", headers={"Content-Type": "application/pdf"}), bytes),
    # usage and model configurations
    Case("usage", "aggregate", (T0, datetime(2024, 2, 1, tzinfo=UTC)), {"mode": UsageMode.BILLED}, "GET",
         "/v1/usage/aggregate",
         ok({"total_agentic_steps": 7, "total_cached_steps": 3, "period_start": T0_ISO, "period_end": T0_ISO,
             "mode": "billed", "runs_counted": 2}), UsageAggregateResponse,
         query=[("from_date", T0_ISO), ("to_date", "2024-02-01T00:00:00+00:00"), ("mode", "billed")]),
    Case("model_configurations", "list", (), {}, "GET", "/v1/model-configurations", ok([model_configuration_json()]),
         list, items=ModelConfigurationResponse),
    Case("model_configurations", "create",
         (ModelConfigurationCreate(name="fast", provider="anthropic", model="claude", api_key="sk-x"),), {}, "POST",
         "/v1/model-configurations", ok(model_configuration_json(api_key_alias="tok_1"), 201),
         ModelConfigurationResponse,
         body={"name": "fast", "provider": "anthropic", "model": "claude", "api_key": "sk-x",
               "is_computer_use_model": False, "is_archived": False}),
    Case("model_configurations", "get", (CID,), {}, "GET", f"/v1/model-configurations/{CID}",
         ok(model_configuration_json()), ModelConfigurationResponse),
    Case("model_configurations", "update", (CID, ModelConfigurationUpdate(is_archived=True)), {}, "PATCH",
         f"/v1/model-configurations/{CID}", ok(model_configuration_json(is_archived=True)),
         ModelConfigurationResponse, body={"is_archived": True}),
    Case("model_configurations", "delete", (CID,), {}, "DELETE", f"/v1/model-configurations/{CID}", NO_CONTENT,
         None),
    # computer, health
    Case("computer", "screenshot", (MID,), {}, "GET", f"/v1/computer/{MID}/display/screenshot",
         httpx.Response(200, content=PNG, headers={"Content-Type": "image/png"}), bytes),
    Case("computer", "get_display_dimensions", (MID,), {}, "GET", f"/v1/computer/{MID}/display/dimensions",
         ok({"width": 1920, "height": 1080}), DisplayDimensions),
    Case("health", "check", (), {}, "GET", "/v1/health", ok({"status": "healthy"}), dict),
]  # fmt: skip

WRITES = [c for c in CASES if c.method != "GET"]


def check_request(case: Case, request: httpx.Request) -> None:
    assert request.method == case.method
    assert request.url.path == case.path
    assert request.url.host == "api.cyberdesk.io"
    assert query_of(request) == case.query
    assert body_of(request) == case.body
    assert request.headers["Authorization"] == f"Bearer {API_KEY}"
    assert (request.headers.get("Content-Type") == "application/json") == (case.body is not None)
    if case.method == "GET":
        assert "Idempotency-Key" not in request.headers
    else:
        assert is_uuid(request.headers["Idempotency-Key"])


def check_result(case: Case, response: Any) -> None:
    assert response.error is None, str(response.error)
    if case.returns is None:
        assert response.data is None
        return
    assert isinstance(response.data, case.returns)
    if case.items is not None:
        items = response.data.items if isinstance(response.data, Page) else response.data
        assert items and all(isinstance(item, case.items) for item in items)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
async def test_operation(case: Case, mode: str, make_client: Callable[..., CyberdeskClient]) -> None:
    api = Api(case.reply)
    response = await call(make_client(api), mode, case.resource, case.name, *case.args, **case.kwargs)
    assert len(api.requests) == 1
    check_request(case, api.last)
    check_result(case, response)


async def test_a_pools_machine_ids_are_read_from_its_included_machines_and_its_deprecated_list(
    mode: str, make_client: Callable[..., CyberdeskClient]
) -> None:
    other = "0f3e5d2b-1e4f-4a6b-8c7d-0e1f2a3b4c09"
    pool = pool_json(
        machines=[machine_json(machine_parameters={"site": "eu"})],
        included=[
            {"type": "pool", "id": PID, "name": "pool-1"},
            {"type": "machine", **machine_json(id=other.upper(), name="desk-2")},
            {"type": "machine", **machine_json()},  # in both lists: once
        ],
    )
    response = await call(make_client(Api(ok(pool))), mode, "pools", "get_machine_ids", PID)
    assert response.data == [MID, other]

    broken = pool_json(included=[{"type": "machine", **machine_json(id="not-a-uuid")}])
    response = await call(make_client(Api(ok(broken))), mode, "pools", "get_machine_ids", PID)
    assert response.data is None and response.error is not None and response.error.kind == "decode"


@pytest.mark.parametrize("case", WRITES, ids=lambda c: c.id)
async def test_write_sends_the_callers_idempotency_key(
    case: Case, mode: str, make_client: Callable[..., CyberdeskClient]
) -> None:
    api = Api(case.reply)
    await call(
        make_client(api), mode, case.resource, case.name, *case.args, **case.kwargs, idempotency_key="job-7"
    )
    assert api.last.headers["Idempotency-Key"] == "job-7"


@pytest.mark.parametrize(
    "case", [c for c in CASES if c.returns is not None and c.returns is not bytes], ids=lambda c: c.id
)
async def test_any_other_status_is_an_error(case: Case, make_client: Callable[..., CyberdeskClient]) -> None:
    """Success codes are strict: a create answering 200, a delete answering 200, a read answering 201..."""
    wrong = 200 if case.reply.status_code != 200 else 201
    api = Api(httpx.Response(wrong, json={}))
    response = await call(make_client(api), "sync", case.resource, case.name, *case.args, **case.kwargs)
    assert response.data is None
    assert response.error is not None and response.error.status_code == wrong


# Tested in their own modules: the multipart upload and the streamed downloads.
ELSEWHERE = {"workflows": {"upload_prompt_image"}, "run_attachments": {"download_to", "save_to_file"}}


@pytest.mark.parametrize(
    "resource",
    ["machines", "pools", "workflows", "runs", "connections", "trajectories", "workflow_tags",
     "workflow_tag_groups", "run_attachments", "usage", "model_configurations"],
)  # fmt: skip
def test_every_operation_has_an_async_and_a_sync_method(resource: str) -> None:
    client = CyberdeskClient(API_KEY)
    group = getattr(client, resource)
    names = {name for name in dir(type(group)) if not name.startswith("_")}
    for name in names - {n for n in names if n.endswith("_sync")}:
        assert f"{name}_sync" in names, name
    covered = {c.name for c in CASES if c.resource == resource} | ELSEWHERE.get(resource, set())
    if "list" in covered and resource in {
        "machines",
        "pools",
        "workflows",
        "runs",
        "connections",
        "trajectories",
        "run_attachments",
    }:
        covered.add("iter")
    assert {n for n in names if not n.endswith("_sync")} == covered


def test_operations_keep_their_names_and_docs() -> None:
    client = CyberdeskClient(API_KEY)
    assert client.runs.create.__name__ == "create"
    assert client.runs.create_sync.__name__ == "create_sync"
    assert "scheduling" in (client.runs.create.__doc__ or "")
    assert client.runs.get_sync is client.runs.get_sync  # bound once, then cached on the resource


async def test_default_async_transport_is_not_built_when_one_is_given(
    monkeypatch: pytest.MonkeyPatch, make_client: Callable[..., CyberdeskClient]
) -> None:
    def forbidden(**_: Any) -> None:
        raise AssertionError("the aiohttp transport must not be created")

    monkeypatch.setattr(cyberdesk._core, "HttpxAiohttpClient", forbidden)
    api = Api(httpx.Response(200, json={"status": "ok"}))
    response = await make_client(api).health.check()
    assert response.data == {"status": "ok"}


async def test_path_ids_are_canonical_lowercase(make_client: Callable[..., CyberdeskClient]) -> None:
    api = Api(httpx.Response(200, json=run_json()))
    await make_client(api).runs.get(RID.upper())
    assert api.last.url.path == f"/v1/runs/{RID}"


async def test_custom_base_url_and_trailing_slash(make_client: Callable[..., CyberdeskClient]) -> None:
    api = Api(httpx.Response(200, json={"status": "ok"}))
    client = make_client(api, base_url="http://localhost:8000/")
    client.health.check_sync()
    assert str(api.last.url) == "http://localhost:8000/v1/health"
