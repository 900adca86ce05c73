"""The emulator's rows: plain mutable records, serialised to the wire format by `serializers`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from cyberdesk.emulator.options import DurationRange

ORGANIZATION_ID = "org_emulator"

ACTIVE_STATUSES = frozenset({"scheduling", "running"})
TERMINAL_STATUSES = frozenset({"success", "task_failed", "error", "cancelled"})


@dataclass(slots=True, eq=False)
class FailRule:
    """A deterministic failure: the run fails when a resolved input equals a value (and on a desktop)."""

    input: str
    equals: Any
    status: str = "task_failed"
    error: str | None = None
    machine: str | None = None

    def matches(self, inputs: dict[str, Any], machine_name: str | None) -> bool:
        if self.machine is not None and self.machine != machine_name:
            return False
        return self.input in inputs and str(inputs[self.input]) == str(self.equals)

    def message(self) -> str:
        return self.error or f"Simulated failure: {self.input} = {self.equals}"


@dataclass(slots=True, eq=False)
class Machine:
    id: str
    name: str | None
    fingerprint: str
    unkey_key_id: str
    created_at: float
    version: str | None = None
    hostname: str | None = None
    os_info: str | None = None
    status: str = "connected"
    alerts_enabled: bool = False
    # False drains the desktop: it keeps its current run but gets no new one.
    enabled: bool = True
    last_seen: float | None = None
    parameters: dict[str, Any] | None = None
    # name -> alias; the values live in `World.vault`.
    sensitive: dict[str, str] | None = None
    reserved_session_id: str | None = None
    current_run_id: str | None = None
    pool_ids: set[str] = field(default_factory=set)
    idle_since: float = 0.0
    connection_id: str | None = None


@dataclass(slots=True, eq=False)
class Pool:
    id: str
    name: str
    created_at: float
    updated_at: float
    description: str | None = None
    parameters: dict[str, Any] | None = None
    sensitive: dict[str, str] | None = None
    machine_ids: set[str] = field(default_factory=set)


@dataclass(slots=True, eq=False)
class Workflow:
    id: str
    main_prompt: str
    created_at: float
    updated_at: float
    name: str | None = None
    input_schema: str | None = None
    output_schema: str | None = None
    includes_file_exports: bool = False
    is_webhooks_enabled: bool = False
    terminal_command_allowlist: list[str] | None = None
    model_metadata: dict[str, Any] | None = None
    post_run_check_failure_cleanup_prompt: str | None = None
    old_versions: list[dict[str, Any]] = field(default_factory=list)
    # Stored in their response shape; the emulator does not simulate the checks themselves.
    post_run_checks: list[dict[str, Any]] = field(default_factory=list)
    # Simulation knobs from a fixture; None falls back to the emulator-wide settings.
    run_duration: DurationRange | None = None
    failure_rate: float | None = None
    fail_when: list[FailRule] = field(default_factory=list)
    # What a run of a workflow with includes_file_exports exports: (filename, text) templates over the run's
    # inputs (`{claim_id}`), from a fixture; None exports one CSV naming the run and its inputs.
    exports: list[tuple[str, str]] | None = None
    tag_ids: list[str] = field(default_factory=list)


@dataclass(slots=True, eq=False)
class Execution:
    """One stay of a run on a desktop; a retried run has several."""

    machine_id: str
    started_at: float
    ended_at: float | None = None
    status: str = "running"


@dataclass(slots=True, eq=False)
class Outcome:
    """What a started run will end with, decided when it starts so a seed fixes it."""

    status: str
    error: list[str] | None
    output: dict[str, Any]


@dataclass(slots=True, eq=False)
class Run:
    id: str
    workflow_id: str
    seq: int
    created_at: float
    status: str = "scheduling"
    machine_id: str | None = None
    # The machine the caller asked for (kept across retries); `machine_id` is where it ran.
    requested_machine_id: str | None = None
    pool_ids: list[str] | None = None
    is_priority: bool = False
    main_prompt: str | None = None
    model_metadata: dict[str, Any] | None = None
    input_values: dict[str, Any] | None = None
    sensitive_aliases: dict[str, str] | None = None
    session_id: str | None = None
    session_alias: str | None = None
    release_session_after: bool | None = None
    started_at: float | None = None
    ended_at: float | None = None
    error: list[str] | None = None
    output_data: dict[str, Any] | None = None
    input_attachment_ids: list[str] | None = None
    output_attachment_ids: list[str] | None = None
    run_message_history: list[dict[str, Any]] | None = None
    usage_metadata: dict[str, Any] | None = None
    post_run_checks: list[dict[str, Any]] | None = None
    # Bumped whenever the run leaves its current state, so stale queue/heap entries are skipped.
    generation: int = 0
    outcome: Outcome | None = None
    executions: list[Execution] = field(default_factory=list)
    idempotency_key: str | None = None
    # The inputs the run executed with ($refs followed, pool and desktop parameters merged); not on the wire.
    resolved_inputs: dict[str, Any] | None = None
    # A chain step: the ids of every step of its chain in order (one list shared by the steps).
    chain: list[str] | None = None


@dataclass(slots=True, eq=False)
class Connection:
    id: str
    websocket_id: str
    machine_id: str
    connected_at: float
    last_ping: float
    status: str = "connected"
    disconnected_at: float | None = None
    ip_address: str | None = None
    user_agent: str | None = None


@dataclass(slots=True, eq=False)
class Trajectory:
    id: str
    workflow_id: str
    trajectory_data: list[dict[str, Any]]
    dimensions: dict[str, int]
    created_at: float
    updated_at: float
    name: str | None = None
    description: str | None = None
    run_id: str | None = None
    original_input_values: dict[str, Any] | None = None
    is_approved: bool = False
    has_been_approved: bool = False
    is_generated: bool = False
    is_main: bool = False


@dataclass(slots=True, eq=False)
class Attachment:
    id: str
    run_id: str
    filename: str
    content_type: str
    attachment_type: str
    content: bytes
    created_at: float
    target_path: str | None = None
    cleanup_imports_after_run: bool = False
    expires_at: float | None = None


@dataclass(slots=True, eq=False)
class TagGroup:
    id: str
    name: str
    order: int
    created_at: float
    updated_at: float
    description: str | None = None
    emoji: str | None = None
    color: str | None = None


@dataclass(slots=True, eq=False)
class Tag:
    id: str
    name: str
    order: int
    created_at: float
    updated_at: float
    description: str | None = None
    emoji: str | None = None
    color: str | None = None
    group_id: str | None = None
    is_archived: bool = False


@dataclass(slots=True, eq=False)
class ModelConfiguration:
    id: str
    name: str
    provider: str
    model: str
    created_at: float
    updated_at: float
    is_system_default: bool = False
    # Every other field of the API's shape (description, temperature, ..., api_key_alias).
    settings: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True, eq=False)
class PromptImage:
    path: str
    filename: str
    content_type: str
    content: bytes
    created_at: float
