"""What the read-only questions of `store.queries` (queries.py) hand out: frozen records for listings, `show` and `status`.

They mirror rows closely (the CLI decides how to present them) but never carry secrets: the store holds none.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, Literal

import attrs

from cyberdesk_runner.store.records import FINAL_ATTEMPT_STATUSES
from cyberdesk_runner.store.tables import ACTIVE_ATTEMPT_STATUSES

RefKind = Literal["fire", "item", "attempt"]

#: Every attempt status, in the order an attempt moves through them.
ATTEMPT_STATUSES = (*ACTIVE_ATTEMPT_STATUSES, *sorted(FINAL_ATTEMPT_STATUSES))
#: Names that stand for several attempt statuses in filters (`runs --status failed`).
ATTEMPT_STATUS_GROUPS: dict[str, tuple[str, ...]] = {
    "active": ACTIVE_ATTEMPT_STATUSES,
    "failed": ("task_failed", "error", "timed_out", "rejected"),
}


@attrs.frozen
class ItemCounts:
    """Items of one fire (or one job) by status."""

    pending: int = 0
    running: int = 0
    succeeded: int = 0
    failed: int = 0
    cancelled: int = 0

    @property
    def total(self) -> int:
        return self.pending + self.running + self.succeeded + self.failed + self.cancelled

    @property
    def done(self) -> int:
        return self.succeeded + self.failed + self.cancelled


@attrs.frozen
class FireView:
    id: str
    job_name: str
    trigger: str
    status: str
    scheduled_for: datetime | None
    created_at: datetime
    planned_at: datetime | None
    finished_at: datetime | None
    skip_reason: str | None
    error: str | None
    retry_of: str | None
    input_overrides: Mapping[str, Any] | None
    items_total: int
    counts: ItemCounts
    #: trigger `after`: the upstream fire whose end made this one.
    upstream_fire_id: str | None = None
    #: The last error of one failed item, so a listing can say why a fire failed without `show`.
    item_error: str | None = None


@attrs.frozen
class ItemView:
    id: str
    fire_id: str
    job_name: str
    seq: int
    inputs: Mapping[str, Any]
    machine_id: str | None
    machine_name: str | None
    status: str
    attempts: int
    next_attempt_at: datetime
    created_at: datetime
    finished_at: datetime | None
    last_error: str | None
    cancel_requested: bool


@attrs.frozen
class AttemptView:
    id: str
    item_id: str
    fire_id: str
    job_name: str
    number: int
    run_id: str | None
    workflow_id: str
    machine_id: str
    machine_name: str | None
    status: str
    created_at: datetime
    started_at: datetime | None
    ended_at: datetime | None
    deadline_at: datetime
    cancel_requested: bool
    create_tries: int
    error: list[str] | None
    output: Mapping[str, Any] | None
    #: The run's usage_metadata as sent (None until it ended, or when it said nothing).
    usage: Mapping[str, Any] | None = None


@attrs.frozen
class EventView:
    id: int
    at: datetime
    kind: str
    job_name: str | None
    fire_id: str | None
    item_id: str | None
    attempt_id: str | None
    run_id: str | None
    data: Mapping[str, Any] | None


@attrs.frozen
class EventPage:
    """The newest `limit` events of something, oldest first, and how many there are in all."""

    events: list[EventView]
    total: int


@attrs.frozen
class DaemonView:
    id: str
    host: str
    pid: int
    started_at: datetime
    heartbeat_at: datetime
    stopped_at: datetime | None
    health: Mapping[str, Any] | None


@attrs.frozen
class Ref:
    """What an id printed by the CLI (or a Cyberdesk run id) names."""

    kind: RefKind
    id: str
    job_name: str
    fire_id: str
    item_id: str | None = None
    status: str = ""


@attrs.frozen
class AttemptQuery:
    """Filters of `runs`; every one given must hold. `machine` matches a desktop's name or id."""

    job: str | None = None
    fire_id: str | None = None
    item_id: str | None = None
    statuses: tuple[str, ...] | None = None
    machine: str | None = None
    since: datetime | None = None
    limit: int = 50
