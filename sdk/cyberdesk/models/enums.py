"""Enums of the API, with their exact lower-case wire values (``StrEnum``: ``run.status == "success"`` holds).

The API adds enum values over time. A response field is therefore typed ``RunStatus | UnknownValue`` (an "open
enum"): a value this SDK knows parses to the enum member, one it does not know to an :class:`UnknownValue`, the
raw string, instead of failing the whole call. Request fields keep the closed enum.
"""

from enum import StrEnum
from typing import Any


class RunStatus(StrEnum):
    SCHEDULING = "scheduling"
    RUNNING = "running"
    RUNNING_CHECKS = "running_checks"
    SUCCESS = "success"
    TASK_FAILED = "task_failed"
    ERROR = "error"
    CANCELLED = "cancelled"

    @property
    def is_terminal(self) -> bool:
        """True for the statuses a run never leaves on its own (the ones ``runs.retry`` accepts)."""
        return self in _TERMINAL_RUN_STATUSES


_TERMINAL_RUN_STATUSES = frozenset(
    {RunStatus.SUCCESS, RunStatus.TASK_FAILED, RunStatus.ERROR, RunStatus.CANCELLED}
)


class MachineStatus(StrEnum):
    CONNECTED = "connected"
    DISCONNECTED = "disconnected"
    ERROR = "error"


class ConnectionStatus(StrEnum):
    CONNECTED = "connected"
    DISCONNECTED = "disconnected"
    ERROR = "error"


class AttachmentType(StrEnum):
    INPUT = "input"
    OUTPUT = "output"


class RunListSortMode(StrEnum):
    ACTIVITY = "activity"
    CREATED_AT_DESC = "created_at_desc"


class RunField(StrEnum):
    """Projection fields of ``runs.list(fields=...)``; id, workflow_id, machine_id, status, created_at always come."""

    ENDED_AT = "ended_at"
    ERROR = "error"
    INPUT_ATTACHMENT_IDS = "input_attachment_ids"
    INPUT_VALUES = "input_values"
    IS_PRIORITY = "is_priority"
    MACHINE_ID = "machine_id"
    MAIN_PROMPT = "main_prompt"
    MODEL_METADATA = "model_metadata"
    ORGANIZATION_ID = "organization_id"
    OUTPUT_ATTACHMENT_IDS = "output_attachment_ids"
    OUTPUT_DATA = "output_data"
    POOL_IDS = "pool_ids"
    POST_RUN_CHECKS = "post_run_checks"
    RELEASE_SESSION_AFTER = "release_session_after"
    RUN_MESSAGE_HISTORY = "run_message_history"
    SENSITIVE_INPUT_ALIASES = "sensitive_input_aliases"
    SESSION_ALIAS = "session_alias"
    SESSION_ID = "session_id"
    STARTED_AT = "started_at"
    USAGE_METADATA = "usage_metadata"
    USER_ID = "user_id"


class PostRunCheckType(StrEnum):
    OUTPUT_DATA_AGENTIC_CHECK = "output_data_agentic_check"
    OUTPUT_DATA_PASSES_SCHEMA_VALIDATION = "output_data_passes_schema_validation"
    RUN_ATTACHMENT_EXISTS = "run_attachment_exists"
    RUN_ATTACHMENT_IMAGE_CHECK = "run_attachment_image_check"


class PostRunCheckStatus(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    SUCCESS = "success"
    FAILED = "failed"
    CANCELLED = "cancelled"
    INFRA_ERROR = "infra_error"


class PostRunCheckFileTargetMode(StrEnum):
    EXACT = "exact"
    LOOP_ITEMS = "loop_items"
    REGEX = "regex"


class UnknownValue(str):
    """An enum value the API sent that this version of the SDK does not know, kept as the raw string.

    It compares equal to that string and is sent back unchanged. Tell it from a known member with ``isinstance``
    or ``match``::

        match run.status:
            case RunStatus.SUCCESS: ...
            case UnknownValue(raw): log.warning("new run status %s", raw)
    """

    __slots__ = ()
    __match_args__ = ("value",)

    @property
    def value(self) -> str:
        """The raw string, as ``.value`` of an enum member."""
        return str.__str__(self)

    def __repr__(self) -> str:
        return f"UnknownValue({str.__repr__(self)})"

    def __reduce__(self) -> tuple[Any, ...]:
        return (UnknownValue, (str(self),))


class UsageMode(StrEnum):
    """How ``usage.aggregate`` counts: ``simulated`` (default) leaves out infrastructure failures; ``billed``
    sums the billed counters."""

    SIMULATED = "simulated"
    BILLED = "billed"
