"""The store's tables. Only `cyberdesk_runner.store` imports this module.

Ids are short random strings with a prefix (`fire_...`, `item_...`, `att_...`) so that an id printed by the CLI says
what it names. Times are timezone-aware UTC. Secrets never reach these tables: job specs hold only references to
sensitive inputs, and attempts record the inputs that were sent without the sensitive ones.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field

from cyberdesk_runner.store.types import TableModel, UTCDateTime

#: Attempt statuses in which a run holds (or may hold) its desktop.
ACTIVE_ATTEMPT_STATUSES = ("creating", "scheduling", "running", "running_checks")
#: Item statuses of work not finished.
OPEN_ITEM_STATUSES = ("pending", "running")


class JobRow(TableModel, table=True):
    __tablename__ = "job"

    name: str = Field(primary_key=True, max_length=100)
    definition_hash: str = Field(max_length=64)
    definition: dict[str, Any] = Field(sa_column=sa.Column(sa.JSON, nullable=False))
    source_path: str
    workflow_id: str | None = Field(default=None, max_length=36)
    paused: bool = Field(default=False)
    paused_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    loaded_at: datetime = Field(sa_type=UTCDateTime)
    removed_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    #: Schedule bookkeeping: the latest slot this job has been considered for (fired or skipped).
    last_slot_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class FireRow(TableModel, table=True):
    __tablename__ = "fire"
    __table_args__ = (
        sa.Index("ix_fire_job_created", "job_name", "created_at"),
        sa.Index("ix_fire_status", "status"),
        sa.Index("ix_fire_created", "created_at"),
        # Retention deletes finished fires oldest first.
        sa.Index("ix_fire_finished", "status", "finished_at"),
        # One downstream fire per (upstream fire, job): the key of `after:` jobs, across daemons and restarts.
        sa.Index("ux_fire_upstream", "upstream_fire_id", "job_name", unique=True),
    )

    id: str = Field(primary_key=True, max_length=40)
    job_name: str = Field(max_length=100)
    #: scheduled | catchup | manual | retry | after
    trigger: str = Field(max_length=16)
    #: Unique per scheduled slot: "<job>@<iso instant>", per upstream fire: "<job>@after:<fire id>"; a random id
    #: for manual and retry fires.
    dedup_key: str = Field(max_length=200, sa_column_kwargs={"unique": True})
    scheduled_for: datetime | None = Field(default=None, sa_type=UTCDateTime)
    created_at: datetime = Field(sa_type=UTCDateTime)
    #: requested (items not yet planned) | running | succeeded | failed | cancelled | skipped
    status: str = Field(max_length=16)
    skip_reason: str | None = None
    retry_of: str | None = Field(default=None, max_length=40)
    #: trigger `after`: the fire of the upstream job whose end made this fire.
    upstream_fire_id: str | None = Field(default=None, max_length=40)
    input_overrides: dict[str, Any] | None = Field(default=None, sa_column=sa.Column(sa.JSON))
    definition_hash: str | None = Field(default=None, max_length=64)
    #: When every item was recorded; NULL while a fire is `requested` or still being planned (`running`, its
    #: items going in by chunks: `store.fires.plan_chunk`).
    planned_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    finished_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    error: str | None = None
    items_total: int = 0
    #: While a fire is planned: which store plans it, until when that claim holds (then any daemon continues the
    #: plan), and the digest of what the plan reads (items file, desktops, overrides).
    planned_by: str | None = Field(default=None, max_length=64)
    plan_lease_until: datetime | None = Field(default=None, sa_type=UTCDateTime)
    plan_digest: str | None = Field(default=None, max_length=64)
    #: A cancel of the whole fire was asked (why): its open items are cancelled by chunks (`store.control`), and
    #: none of its items is dispatched any more. Until when the process cancelling them holds the work (renewed
    #: each chunk; once it lapses any daemon finishes the cancel); NULL once every item is cancelled or flagged.
    cancel_reason: str | None = None
    cancel_lease_until: datetime | None = Field(default=None, sa_type=UTCDateTime)


class ItemRow(TableModel, table=True):
    __tablename__ = "item"
    __table_args__ = (
        # Per fire: its items, and whether any is still open (`items.settle_fires`, retention).
        sa.Index("ix_item_fire_status", "fire_id", "status"),
        # An item's place in its fire, recorded once whichever daemon plans (or continues planning) the fire; and a
        # fire's items in order (`show F`'s page and `results F`'s stream read them in index order: seq is unique
        # within the fire, so (seq, id) is the index's order).
        sa.Index("ux_item_fire_seq", "fire_id", "seq", unique=True),
        sa.Index("ix_item_due", "status", "next_attempt_at"),
        # A job's queue in dispatch order (`store.dispatch.assign`, priority items first, then the rest): the next N due
        # items are read in index order, not every pending item of the job sorted each round.
        sa.Index("ix_item_job_queue", "job_name", "status", "priority", "next_attempt_at", "seq", "id"),
    )

    id: str = Field(primary_key=True, max_length=40)
    fire_id: str = Field(max_length=40)
    job_name: str = Field(max_length=100)
    seq: int
    inputs: dict[str, Any] = Field(sa_column=sa.Column(sa.JSON, nullable=False))
    #: The desktop this item must run on (fan_out: machines), else None: any desktop of the target.
    machine_id: str | None = Field(default=None, max_length=36)
    machine_name: str | None = None
    #: pending | running | succeeded | failed | cancelled
    status: str = Field(max_length=16)
    priority: bool = False
    attempts: int = 0
    next_attempt_at: datetime = Field(sa_type=UTCDateTime)
    created_at: datetime = Field(sa_type=UTCDateTime)
    finished_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    last_error: str | None = None
    cancel_requested: bool = False


class AttemptRow(TableModel, table=True):
    __tablename__ = "attempt"
    __table_args__ = (
        sa.Index("ix_attempt_item", "item_id"),
        sa.Index("ix_attempt_job_created", "job_name", "created_at"),
        sa.Index("ix_attempt_created", "created_at"),
        # A fire's newest runs (`runs --fire F`, `show F`) up to the LIMIT; by fire_id alone for the rest.
        sa.Index("ix_attempt_fire_created", "fire_id", "created_at", "id"),
        # Creating attempts whose claim lapsed (`store.dispatch.attempts_to_settle`).
        sa.Index("ix_attempt_creating", "status", "retry_create_at"),
        # `runs --status S` and `--machine M`: the newest attempts of one status or desktop (name or id) are read
        # in index order up to the LIMIT (`store.queries.attempt_views`), not all of them sorted.
        sa.Index("ix_attempt_status_created", "status", "created_at"),
        sa.Index("ix_attempt_machine_created", "machine_id", "created_at"),
        sa.Index("ix_attempt_machine_name_created", "machine_name", "created_at"),
        # ux_attempt_active_desktop: below (ACTIVE_DESKTOP_INDEX).
    )

    id: str = Field(primary_key=True, max_length=40)
    item_id: str = Field(max_length=40)
    fire_id: str = Field(max_length=40)
    job_name: str = Field(max_length=100)
    number: int
    idempotency_key: str = Field(max_length=64, sa_column_kwargs={"unique": True})
    run_id: str | None = Field(default=None, max_length=36, sa_column_kwargs={"unique": True})
    workflow_id: str = Field(max_length=36)
    machine_id: str = Field(max_length=36)
    machine_name: str | None = None
    #: creating (create call sent or about to be, outcome unknown) | scheduling | running | running_checks |
    #: success | task_failed | error | cancelled | timed_out | rejected (the API refused the create call)
    status: str = Field(max_length=16)
    created_at: datetime = Field(sa_type=UTCDateTime)
    updated_at: datetime = Field(sa_type=UTCDateTime)
    started_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    ended_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    deadline_at: datetime = Field(sa_type=UTCDateTime)
    #: When to try the create call again (outcome unknown) or to look at this attempt next.
    retry_create_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    create_tries: int = 0
    #: While `creating`: the store (daemon) making the create call, which renews `retry_create_at` as its
    #: claim. None once the call's outcome is recorded or deferred; a claim not renewed lapses and is taken over.
    owner: str | None = Field(default=None, max_length=40)
    cancel_requested: bool = False
    error: list[str] | None = Field(default=None, sa_column=sa.Column(sa.JSON))
    output: dict[str, Any] | None = Field(default=None, sa_column=sa.Column(sa.JSON))
    #: The run's `usage_metadata` as the API sent it (free-form), and the two figures the runner sums from it
    #: (None when the run did not say): tokens and billed seconds (`store.usage`).
    usage: dict[str, Any] | None = Field(default=None, sa_column=sa.Column(sa.JSON(none_as_null=True)))
    tokens: int | None = Field(default=None, sa_column=sa.Column(sa.BigInteger))
    billed_seconds: float | None = Field(default=None)


class EventRow(TableModel, table=True):
    """Append-only log of state changes, for `show` and for audits."""

    __tablename__ = "event"
    __table_args__ = (
        # A fire's newest events (`show F`) in index order, on PostgreSQL too.
        sa.Index("ix_event_fire_id", "fire_id", "id"),
        sa.Index("ix_event_item", "item_id"),
        sa.Index("ix_event_attempt", "attempt_id"),
        sa.Index("ix_event_at", "at"),
    )

    # 64-bit on PostgreSQL: ids are never reused, even after retention deletes rows. SQLite's rowid is 64-bit
    # already and needs the exact type INTEGER to be one.
    id: int | None = Field(
        default=None,
        sa_column=sa.Column(sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True),
    )
    at: datetime = Field(sa_type=UTCDateTime)
    kind: str = Field(max_length=40)
    job_name: str | None = Field(default=None, max_length=100)
    fire_id: str | None = Field(default=None, max_length=40)
    item_id: str | None = Field(default=None, max_length=40)
    attempt_id: str | None = Field(default=None, max_length=40)
    run_id: str | None = Field(default=None, max_length=36)
    data: dict[str, Any] | None = Field(default=None, sa_column=sa.Column(sa.JSON))


class DaemonRow(TableModel, table=True):
    """One row per daemon process: its heartbeat and health, for `status` and for lease take-over."""

    __tablename__ = "daemon"

    id: str = Field(primary_key=True, max_length=40)
    host: str
    pid: int
    started_at: datetime = Field(sa_type=UTCDateTime)
    heartbeat_at: datetime = Field(sa_type=UTCDateTime)
    stopped_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    health: dict[str, Any] | None = Field(default=None, sa_column=sa.Column(sa.JSON))


class LeaseRow(TableModel, table=True):
    """Named leases (for example the poller's) so that one daemon at a time does shared work."""

    __tablename__ = "lease"

    name: str = Field(primary_key=True, max_length=60)
    holder: str = Field(max_length=40)
    expires_at: datetime = Field(sa_type=UTCDateTime)


class StepRunRow(TableModel, table=True):
    """One step run of a multi-step (`steps:`) attempt: written with the chain call's answer, in the transaction
    that records the attempt's creation, and moved by news about its run like an attempt by its own."""

    __tablename__ = "step_run"
    __table_args__ = (
        sa.Index("ux_step_run_attempt_index", "attempt_id", "step_index", unique=True),
        # Open step runs (polls, cancels of the steps left after a failed one).
        sa.Index("ix_step_run_status", "status"),
    )

    id: str = Field(primary_key=True, max_length=40)
    attempt_id: str = Field(max_length=40)
    step_index: int
    alias: str | None = Field(default=None, max_length=64)
    workflow_id: str = Field(max_length=36)
    #: The step's workflow as the job file names it.
    workflow: str
    run_id: str = Field(max_length=36, sa_column_kwargs={"unique": True})
    #: scheduling | running | running_checks | success | task_failed | error | cancelled
    status: str = Field(max_length=16)
    created_at: datetime = Field(sa_type=UTCDateTime)
    updated_at: datetime = Field(sa_type=UTCDateTime)
    started_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    ended_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    error: list[str] | None = Field(default=None, sa_column=sa.Column(sa.JSON))
    output: dict[str, Any] | None = Field(default=None, sa_column=sa.Column(sa.JSON))
    #: The step run's usage_metadata once it ended (the attempt's usage sums its steps': steps.chain_usage).
    usage: dict[str, Any] | None = Field(default=None, sa_column=sa.Column(sa.JSON(none_as_null=True)))


# SQLAlchemy Core handles of the tables, for the store's queries (one definition, shared by store and queries).
job_t = JobRow.__table__  # type: ignore[attr-defined]
fire_t = FireRow.__table__  # type: ignore[attr-defined]
item_t = ItemRow.__table__  # type: ignore[attr-defined]
attempt_t = AttemptRow.__table__  # type: ignore[attr-defined]
event_t = EventRow.__table__  # type: ignore[attr-defined]
daemon_t = DaemonRow.__table__  # type: ignore[attr-defined]
lease_t = LeaseRow.__table__  # type: ignore[attr-defined]
step_run_t = StepRunRow.__table__  # type: ignore[attr-defined]


#: Never two of our runs on one desktop at once, enforced by the database across daemons: unique desktops among
#: the active attempts. A partial index names its WHERE per database, and SQLAlchemy loads a database's dialect
#: to check the options named after it: declared with the others, it loaded PostgreSQL's on a SQLite store too
#: (131 M instructions, 5% of what `runs` did before its first line). So it joins the attempt table when its DDL
#: is made or compared: `migrations.target_metadata()` (Alembic) and before the table is created (create_all).
ACTIVE_DESKTOP_INDEX = "ux_attempt_active_desktop"


def declare_active_desktop_index() -> sa.Index:
    """The index (once: later calls return it)."""
    declared: set[sa.Index] = attempt_t.indexes
    for index in declared:
        if index.name == ACTIVE_DESKTOP_INDEX:
            return index
    active = sa.text("status IN ('creating','scheduling','running','running_checks')")
    return sa.Index(
        ACTIVE_DESKTOP_INDEX,
        attempt_t.c.machine_id,
        unique=True,
        sqlite_where=active,
        postgresql_where=active,
    )


@sa.event.listens_for(attempt_t, "before_create")
def _declare_before_create(*_args: Any, **_kwargs: Any) -> None:
    declare_active_desktop_index()
