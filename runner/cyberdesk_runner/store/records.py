"""What the store hands out and takes in: small frozen records, free of SQL and of secrets."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, Literal

import attrs

from cyberdesk_runner.durations import format_duration

TERMINAL_RUN_STATUSES = frozenset({"success", "task_failed", "error", "cancelled"})
#: Attempt statuses that end an attempt: the run's terminal statuses plus the runner's own verdicts.
FINAL_ATTEMPT_STATUSES = TERMINAL_RUN_STATUSES | {"timed_out", "rejected"}
#: The events of an attempt's end (`attempt_<final status>`): each frees the attempt's desktop.
FINISHED_ATTEMPT_EVENTS = frozenset(f"attempt_{status}" for status in FINAL_ATTEMPT_STATUSES)
FINAL_ITEM_STATUSES = frozenset({"succeeded", "failed", "cancelled"})
FINAL_FIRE_STATUSES = frozenset({"succeeded", "failed", "cancelled", "skipped"})

FireTrigger = Literal["scheduled", "catchup", "manual", "retry", "after"]


@attrs.frozen
class JobDefinition:
    """A job as loaded from its file, as far as the store keeps it."""

    name: str
    definition_hash: str
    definition: Mapping[str, Any]
    source_path: str


@attrs.frozen
class JobState:
    name: str
    definition_hash: str
    definition: Mapping[str, Any]
    source_path: str
    workflow_id: str | None
    paused: bool
    removed: bool
    last_slot_at: datetime | None


@attrs.frozen
class JobMark:
    """What a scheduler tick reads of a stored job: its paused flag and watermark (not its definition)."""

    paused: bool
    #: Up to when the job's slots have been considered (recorded, skipped or failed); None: never yet.
    last_slot_at: datetime | None


@attrs.frozen
class NewItem:
    inputs: Mapping[str, Any]
    machine_id: str | None = None
    machine_name: str | None = None


@attrs.frozen
class NewFire:
    job_name: str
    trigger: FireTrigger
    scheduled_for: datetime | None
    definition_hash: str | None = None
    input_overrides: Mapping[str, Any] | None = None
    retry_of: str | None = None
    priority: bool = False
    #: trigger `after`: the upstream fire; one fire per (upstream fire, job), whoever records it.
    upstream_fire_id: str | None = None


@attrs.frozen
class OverlapRule:
    """How a scheduled fire treats the job's fires still in flight, decided in the transaction that records it."""

    #: allow: start regardless | forbid: record the slot as skipped | replace: cancel their work, then start
    mode: Literal["allow", "forbid", "replace"]
    #: The skip reason of a forbidden slot, given the fires in flight.
    skip_reason: Callable[[Sequence[str]], str] = attrs.field(default=lambda _ids: "")
    #: The reason recorded on the work a replacing fire cancels.
    replace_reason: str = ""


@attrs.frozen
class StartedFire:
    """What `store.fires.start` recorded: the fire (started, or skipped because of overlap) and its transitions."""

    fire_id: str
    skipped: bool
    transitions: list[Transition]


@attrs.frozen
class SlotFire:
    """One decided slot of a job, for `store.fires.record_slots`: run with its items, skipped, or failed."""

    fire: NewFire
    items: Sequence[NewItem] = ()
    #: Recorded as skipped, with this reason (paused, missed, summarised, known to overlap).
    skip_reason: str | None = None
    #: Recorded as failed, with this error (the fire could not be planned).
    error: str | None = None
    #: Recorded as requested, this many items expected: too many for one transaction, a daemon plans them by
    #: chunks from the items file (`planning.plan_fire`), as a manual trigger's.
    requested: int | None = None


@attrs.frozen
class JobSlots:
    """What one scheduler tick records for one job, all or nothing: its decided slots, in slot order, and the
    watermark (`JobState.last_slot_at`) they move it to."""

    job_name: str
    #: Run slots of `forbid` jobs are judged against the fires in flight where they are recorded. `replace` is
    #: not taken here (its cancels lock attempts and items): such fires are recorded by `start`, one each.
    overlap: OverlapRule
    fires: Sequence[SlotFire] = ()
    last_slot_at: datetime | None = None


@attrs.frozen
class RecordedSlots:
    """What `store.fires.record_slots` committed: the transitions of the jobs recorded, and the jobs that were
    not (rolled back, watermark unmoved) with their error."""

    transitions: list[Transition]
    failed: Mapping[str, str]


@attrs.frozen
class FireRequest:
    """A fire recorded without items (manual trigger from the CLI) that a daemon must plan, or whose plan a daemon
    left unfinished (`resumed`: its claim lapsed with part of the items in)."""

    id: str
    job_name: str
    trigger: str
    input_overrides: Mapping[str, Any] | None
    resumed: bool = False
    #: A retry fire whose items are copied from the failed items of the fire it retries (`store.plans`), not
    #: planned from the job's items: a resumed one is continued by `bulk.continue_retry`.
    copies_failed: bool = False
    #: An `after:` fire: the upstream fire whose end made it (a job with `items_from_output` plans its items from
    #: that fire's outputs).
    upstream_fire_id: str | None = None


@attrs.frozen
class AbandonChunk:
    """A chunk of an abandoned plan's pending items cancelled (`store.plans.abandon_chunk`): what it did, the seq
    of the last item it looked at, and whether the fire has no item after it."""

    transitions: list[Transition]
    last_seq: int
    done: bool


@attrs.frozen
class PlanClaim:
    """A fire this store plans now (`store.fires.claim_plan`): its items go in from `next_seq` on, and `digest`
    says what the plan was started from (a continued plan must read the same items, desktops and overrides)."""

    fire_id: str
    job_name: str
    next_seq: int
    digest: str | None


@attrs.frozen
class RetryStart:
    """A retry of a fire's failed items (`store.plans.start_retry`): the retry fire, and this store's claim on
    copying its items (None: nothing to copy, or another process copies them now)."""

    fire_id: str
    claim: PlanClaim | None
    #: False: the fire's retry in flight (its items being copied, or not all ended yet) was found instead.
    created: bool = True
    #: The fire it retries failed before it had items: the retry is requested, to be planned like a trigger.
    replan: bool = False
    #: Its items are still being copied (by this store when `claim`, else by another process).
    copying: bool = False


@attrs.frozen
class CopiedChunk:
    """A chunk of a retry fire's items copied from the failed items of the fire it retries."""

    copied: int
    #: Where the next chunk starts (the seq after the last failed item copied: copies keep their seq).
    next_seq: int
    #: No failed item is left after this chunk: the retry fire can be finished (`finish_plan`).
    done: bool


@attrs.frozen
class CancelStart:
    """What asking for a fire's cancel did (`store.control.request_cancel`)."""

    #: fire_cancelled for a fire still requested (cancelled at once); else none yet.
    transitions: list[Transition]
    #: The fire has items left to cancel, by chunks (`store.control.cancel_chunk`).
    chunks: bool
    #: The cancel's reason as recorded (the first one asked, if the fire's cancel was asked before).
    reason: str | None = None


@attrs.frozen
class CancelChunk:
    """A chunk of a fire's cancel: its items' transitions (item_cancelled, cancel_requested, fire_cancelled)."""

    transitions: list[Transition]
    #: The seq of the last item looked at: the next chunk starts after it.
    last_seq: int
    #: No item of the fire is left to cancel or flag: the cancel's chunks are over.
    done: bool


@attrs.frozen
class DueItem:
    id: str
    fire_id: str
    job_name: str
    seq: int
    inputs: Mapping[str, Any]
    machine_id: str | None
    attempts: int
    priority: bool
    #: Since when the item has been due (created, or its retry's backoff ended).
    due_since: datetime | None = None


@attrs.frozen
class DispatchView:
    """What a dispatcher needs to choose desktops, read in the transaction that will record its choices."""

    due: list[DueItem]
    #: Desktops running (or about to run) one of our runs, from any job and any daemon.
    busy_desktops: frozenset[str]
    active_by_job: Mapping[str, int]
    #: Set for a refill by news (`dispatch.assign_due(freed=...)`): only these desktops (free, just freed) may be
    #: chosen, and `busy_desktops` is not read (empty). The store checks it: another choice falls back to a full view.
    only_desktops: frozenset[str] | None = None


@attrs.frozen
class Assignment:
    item_id: str
    workflow_id: str
    machine_id: str
    machine_name: str | None
    deadline_at: datetime


@attrs.frozen
class AttemptRef:
    """An attempt whose create call is to be made (or repeated with the same key)."""

    id: str
    item_id: str
    fire_id: str
    job_name: str
    number: int
    idempotency_key: str
    workflow_id: str
    machine_id: str
    machine_name: str | None
    inputs: Mapping[str, Any]
    priority: bool
    create_tries: int


@attrs.frozen
class AssignRequest:
    """What `store.dispatch.assign` needs, handed to a transaction that frees desktops so that it fills them itself
    (`store.tracking.record_news(..., assign=...)`): a freed desktop's next item costs no transaction of its own."""

    now: datetime
    #: Picks desktops for due items (`store.dispatch.Chooser`); runs inside the transaction.
    choose: Callable[[DispatchView], list[Assignment]]
    lease: timedelta
    limit: int
    #: How many of a job's due items are worth reading (`store.dispatch.DispatchWindow`); None: `limit`.
    window: Callable[[str, frozenset[str], int], int] | None = None
    #: Decide over every desktop, not just those the news frees: desktops were left to a round since the last
    #: decision (the dispatcher had no room to offer), and a refill may reach them first.
    sweep: bool = False


@attrs.frozen
class InFlightAttempt:
    id: str
    job_name: str
    run_id: str | None
    workflow_id: str
    machine_id: str
    status: str
    created_at: datetime
    deadline_at: datetime
    cancel_requested: bool


@attrs.define
class RunsToPoll:
    """One workflow's runs in flight as polls reconcile them (`store.tracking.runs_to_poll`): only what a poll
    compares, run id -> status in the store, and when the oldest was created (the listing starts there).
    10,000 runs in flight hold about 1 MB this way; the poller takes each run out of `statuses` as the
    listing shows it."""

    workflow_id: str
    oldest: datetime
    statuses: dict[str, str]


@attrs.frozen
class RunObservation:
    """What the API (webhook, poll, create or cancel response) says about one run."""

    run_id: str
    status: str
    started_at: datetime | None = None
    ended_at: datetime | None = None
    error: list[str] | None = None
    output: Mapping[str, Any] | None = None
    source: str = "poll"
    #: The run's `usage_metadata` (free-form: keys differ between the API and the emulator, any may be missing).
    usage: Mapping[str, Any] | None = None


@attrs.frozen
class AttemptVerdict:
    """The runner's own final word on an attempt that has no (usable) run status."""

    attempt_id: str
    status: Literal["timed_out", "rejected", "cancelled", "error"]
    error: list[str]
    source: str


def timed_out_error(limit: timedelta) -> list[str]:
    """The error of an attempt cancelled for outlasting the job's `timeout` (`limit`), however its end is heard;
    the limit is written as job files write durations."""
    return [f"timed out after {format_duration(limit)}; the run was cancelled"]


@attrs.frozen
class FinishedAttempt:
    """Given to the outcome policy when an attempt reaches a final status."""

    attempt_id: str
    item_id: str
    job_name: str
    number: int
    status: str
    error: list[str] | None
    item_cancel_requested: bool


@attrs.frozen
class Retry:
    at: datetime


@attrs.frozen
class Succeed:
    pass


@attrs.frozen
class Fail:
    reason: str


@attrs.frozen
class Cancel:
    reason: str


ItemOutcome = Retry | Succeed | Fail | Cancel


@attrs.frozen
class Transition:
    """A state change the store made, returned so the daemon can log it and count it."""

    kind: str
    job_name: str
    fire_id: str | None = None
    item_id: str | None = None
    attempt_id: str | None = None
    run_id: str | None = None
    data: Mapping[str, Any] = attrs.field(factory=dict)


@attrs.frozen
class RecordedNews:
    """What `store.tracking.record_news` did: its transitions, the runs it did not know (nothing was recorded of
    them), and the attempts it assigned to the desktops it freed (None: it assigned nothing, as it was not asked,
    freed no desktop, or another transaction was deciding dispatch; see `Tracking.record_news`)."""

    transitions: list[Transition]
    unknown: list[RunObservation]
    assigned: list[AttemptRef] | None = None


@attrs.frozen
class WorkCounts:
    requested_fires: int
    pending_items: int
    running_items: int
    creating_attempts: int
    in_flight_attempts: int

    @property
    def idle(self) -> bool:
        return not (
            self.requested_fires or self.pending_items or self.running_items or self.in_flight_attempts
        )


@attrs.frozen
class JobSummary:
    job_name: str
    items_succeeded: int
    items_failed: int
    items_cancelled: int
    items_retried: int
    #: Cyberdesk runs created: each step of a multi-step item's chain counts.
    runs_created: int
    #: Fires that could not run at all (unknown workflow, no desktop selected, unreadable items file).
    fires_failed: int = 0
    #: Steps per item of a multi-step job (0 for a single workflow).
    steps: int = 0
    #: The job it runs after (`after.job`), if any.
    after: str | None = None


@attrs.frozen
class FireSummary:
    """One fire as listings show it (`jobs`, tests): what triggered it, for which slot, and how it ended."""

    id: str
    job_name: str
    trigger: str
    status: str
    scheduled_for: datetime | None
    created_at: datetime
    finished_at: datetime | None
    skip_reason: str | None
    error: str | None
    items_total: int


@attrs.frozen
class NewStepRun:
    """One run of a chain call's answer: step `index` (0-based) of an attempt of a multi-step job."""

    index: int
    alias: str | None
    workflow_id: str
    #: The step's workflow as the job file names it.
    workflow: str
    run_id: str


@attrs.frozen
class OpenStepRun:
    """A step run not final yet: watched by polls while its attempt is in flight, cancelled once it is final."""

    attempt_id: str
    job_name: str
    index: int
    run_id: str
    workflow_id: str
    status: str
    created_at: datetime
    deadline_at: datetime
    cancel_requested: bool
