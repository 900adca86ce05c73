"""Tracking: news about runs (create answers, webhooks, polls) and the runner's own verdicts (`store.tracking`).

Applying news moves an attempt forward (never backwards: repeats and stale news are no-ops); a final attempt
frees its desktop, gets its item's outcome from the runner's policy (a callback run inside the transaction that
records it), and may settle its fire. Also the attempts in flight, which polls and the reaper watch.

Locks, in the one order attempt -> item -> fire: the attempts (by id, or by run id in attempt id order), then
their items by id, then their fires by id (`items.settle_fires`). Two daemons applying the same webhooks wait for
each other, never deadlock. `record_news` asked to assign freed desktops then only tries dispatch's advisory lock
(`dispatch.assign_due`) and takes due items with SKIP LOCKED: it waits for nothing more.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

import attrs
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from cyberdesk_runner.store.core import Aggregate, StoreCore, chunks
from cyberdesk_runner.store.dispatch import assign_due
from cyberdesk_runner.store.items import item_outcome, settle_fires
from cyberdesk_runner.store.records import (
    FINAL_ATTEMPT_STATUSES,
    FINAL_ITEM_STATUSES,
    AssignRequest,
    AttemptVerdict,
    FinishedAttempt,
    InFlightAttempt,
    ItemOutcome,
    NewStepRun,
    RecordedNews,
    RunObservation,
    RunsToPoll,
    Transition,
    timed_out_error,
)
from cyberdesk_runner.store.steps import OPEN_STEP, apply_step_news, insert_step_runs
from cyberdesk_runner.store.tables import ACTIVE_ATTEMPT_STATUSES, attempt_t, step_run_t
from cyberdesk_runner.store.usage import stop_fires_over_budget, usage_figures

__all__ = ["OutcomePolicy", "Tracking"]

OutcomePolicy = Callable[[FinishedAttempt], ItemOutcome]

# Non-final run statuses in the order a run moves through them; news never moves an attempt backwards.
_PROGRESS = {"creating": 0, "scheduling": 1, "running": 2, "running_checks": 3}


#: The columns InFlightAttempt takes, in its order: polls read every attempt in flight (thousands).
_IN_FLIGHT_COLUMNS = (
    attempt_t.c.id,
    attempt_t.c.job_name,
    attempt_t.c.run_id,
    attempt_t.c.workflow_id,
    attempt_t.c.machine_id,
    attempt_t.c.status,
    attempt_t.c.created_at,
    attempt_t.c.deadline_at,
    attempt_t.c.cancel_requested,
)


class Tracking(Aggregate):
    def record_created(
        self, created: Sequence[tuple[str, RunObservation]], now: datetime, outcome: OutcomePolicy
    ) -> list[Transition]:
        """Record the runs that create calls returned (attempt id, run). Runs already final are finished."""
        return self.record_news(created, [], now, outcome).transitions

    def record_news(
        self,
        created: Sequence[tuple[str, RunObservation]],
        observations: Sequence[RunObservation],
        now: datetime,
        outcome: OutcomePolicy,
        steps: Mapping[str, Sequence[NewStepRun]] | None = None,
        *,
        assign: AssignRequest | None = None,
    ) -> RecordedNews:
        """Record create calls' answers (attempt id, run), then news about runs, in one transaction.

        A chain call's answer also gives its step runs (`steps`, attempt id -> runs in step order): they are
        recorded with the attempt's creation (the attempt's run is the first step's).
        News about a run that is not (yet) ours changes nothing and is handed back: a fast run's webhook can
        beat its create call's answer, and the caller decides when such news is really about a stranger.
        With `assign`, news that ends attempts also assigns the desktops it frees (`dispatch.assign_due`), in the
        same transaction: the new attempts are in `RecordedNews.assigned`, committed with the news or not at all.
        Nothing is assigned (None) when no attempt ended, or when another transaction is deciding dispatch
        (PostgreSQL; this one never waits for it): the caller then leaves the freed desktops to a dispatch round.
        """
        with self.core.write() as conn:
            freed: dict[str, str] = {}  # desktop -> job of the attempt that ended there
            transitions = _record_created(self.core, conn, created, now, outcome, steps or {}, freed)
            applied, unknown = _apply_observations(self.core, conn, observations, now, outcome, freed)
            transitions += applied
            assigned, created_events = None, list[Transition]()
            if assign is not None and freed:
                # After this transaction's row locks (attempt -> item -> fire).
                assigned = assign_due(
                    self.core,
                    conn,
                    assign,
                    wait_for_lock=False,
                    events=created_events,
                    freed=None if assign.sweep else freed,
                )
            self.core.append_events(conn, now, transitions + created_events)
        return RecordedNews(transitions, unknown, assigned)

    def apply_observations(
        self, runs: Sequence[RunObservation], now: datetime, outcome: OutcomePolicy
    ) -> list[Transition]:
        """Record what the API says about runs. Repeats and stale news are no-ops; unknown runs are logged."""
        with self.core.write() as conn:
            transitions, unknown = _apply_observations(self.core, conn, runs, now, outcome)
            transitions += [
                Transition(
                    "unknown_run", "", run_id=run.run_id, data={"status": run.status, "source": run.source}
                )
                for run in unknown
            ]
            self.core.append_events(conn, now, transitions)
        return transitions

    def apply_verdicts(
        self, verdicts: Sequence[AttemptVerdict], now: datetime, outcome: OutcomePolicy
    ) -> list[Transition]:
        """Finish attempts by the runner's own verdict (timed out, rejected by the API, cancelled)."""
        by_attempt = {v.attempt_id: v for v in verdicts}
        if not by_attempt:
            return []
        with self.core.write() as conn:
            rows = self.core.sql.attempts_by_id.rows(conn, {"ids": list(by_attempt)})
            finishing = [
                _Finish(
                    row,
                    by_attempt[row.id].status,
                    None,
                    None,
                    by_attempt[row.id].error,
                    None,
                    by_attempt[row.id].source,
                    None,
                )
                for row in rows
                if row.status not in FINAL_ATTEMPT_STATUSES
            ]
            transitions = _finish_attempts(self.core, conn, finishing, now, outcome)
            self.core.append_events(conn, now, transitions)
        return transitions

    def in_flight(self) -> list[InFlightAttempt]:
        """Attempts that hold (or may hold) a desktop."""
        with self.core.read() as conn:
            rows = conn.execute(
                sa.select(*_IN_FLIGHT_COLUMNS).where(attempt_t.c.status.in_(ACTIVE_ATTEMPT_STATUSES))
            )
            return [InFlightAttempt(*r) for r in rows]

    def runs_to_poll(self) -> list[RunsToPoll]:
        """Every run polls reconcile, by workflow: the run of each attempt in flight, or for a multi-step attempt
        with steps open, those step runs instead. Rows are read one at a time into a dict per workflow, run id ->
        status (one string per status): 10,000 runs in flight are not 10,000 records, nor 10,000 rows at once."""
        active = attempt_t.c.status.in_(ACTIVE_ATTEMPT_STATUSES)
        has_open_steps = sa.exists().where(step_run_t.c.attempt_id == attempt_t.c.id, OPEN_STEP)
        queries = (
            sa.select(
                attempt_t.c.workflow_id, attempt_t.c.run_id, attempt_t.c.status, attempt_t.c.created_at
            ).where(active, attempt_t.c.run_id.is_not(None), ~has_open_steps),
            sa.select(
                step_run_t.c.workflow_id, step_run_t.c.run_id, step_run_t.c.status, step_run_t.c.created_at
            )
            .join(attempt_t, attempt_t.c.id == step_run_t.c.attempt_id)
            .where(active, OPEN_STEP),
        )
        by_workflow: dict[str, RunsToPoll] = {}
        statuses: dict[str, str] = {}
        with self.core.read() as conn:
            for query in queries:
                for workflow_id, run_id, status, created_at in conn.execute(query):
                    runs = by_workflow.get(workflow_id)
                    if runs is None:
                        runs = by_workflow[workflow_id] = RunsToPoll(workflow_id, created_at, {})
                    elif created_at < runs.oldest:
                        runs.oldest = created_at
                    runs.statuses[run_id] = statuses.setdefault(status, status)
        return list(by_workflow.values())

    def to_reap(self, now: datetime) -> list[InFlightAttempt]:
        """Attempts in flight with a run that are past their deadline or asked to be cancelled: the reaper's
        round, every 2 s, reads these few rather than every attempt in flight (thousands of rows made into
        objects, a few MB each time)."""
        with self.core.read() as conn:
            rows = conn.execute(
                sa.select(*_IN_FLIGHT_COLUMNS).where(
                    attempt_t.c.status.in_(ACTIVE_ATTEMPT_STATUSES),
                    attempt_t.c.run_id.is_not(None),
                    sa.or_(attempt_t.c.cancel_requested, attempt_t.c.deadline_at <= now),
                )
            )
            return [InFlightAttempt(*r) for r in rows]

    def in_flight_by_job(self) -> dict[str, int]:
        """Runs in flight per job: attempts that hold (or may hold) a desktop."""
        with self.core.read() as conn:
            rows = conn.execute(
                sa.select(attempt_t.c.job_name, sa.func.count())
                .where(attempt_t.c.status.in_(ACTIVE_ATTEMPT_STATUSES))
                .group_by(attempt_t.c.job_name)
            ).all()
        return {name: count for name, count in rows}


@attrs.frozen
class _Finish:
    """An attempt to finish: its locked row and what ended it."""

    row: Any
    status: str
    started_at: datetime | None
    ended_at: datetime | None
    error: list[str] | None
    output: Mapping[str, Any] | None
    source: str
    usage: Mapping[str, Any] | None


def _record_created(
    core: StoreCore,
    conn: Connection,
    created: Sequence[tuple[str, RunObservation]],
    now: datetime,
    outcome: OutcomePolicy,
    steps: Mapping[str, Sequence[NewStepRun]],
    freed: dict[str, str] | None = None,
) -> list[Transition]:
    transitions: list[Transition] = []
    runs = dict(created)
    if not runs:
        return transitions
    rows = core.sql.attempts_by_id.rows(conn, {"ids": list(runs)})
    recorded: list[dict[str, Any]] = []
    for row in rows:
        run = runs[row.id]
        if row.status != "creating":
            continue  # another daemon repeated the call and recorded its (same) run first
        # A run that is already final is recorded as scheduling first, then finished below with
        # the item's outcome, through the same path as any other news about runs.
        recorded.append(
            {
                "b_id": row.id,
                "b_run": run.run_id,
                "b_status": _non_final(run.status),
                "b_started": run.started_at,
                "b_now": now,
            }
        )
        transitions.append(
            Transition(
                "run_created",
                row.job_name,
                row.fire_id,
                row.item_id,
                row.id,
                run.run_id,
                data={"machine": row.machine_name or row.machine_id, "number": row.number},
            )
        )
    if recorded:
        core.sql.attempt_created.many(conn, recorded)
        insert_step_runs(
            core, conn, {r["b_id"]: steps[r["b_id"]] for r in recorded if r["b_id"] in steps}, now
        )
    final = [run for _, run in created if run.status in FINAL_ATTEMPT_STATUSES]
    if final:
        transitions += _apply_observations(core, conn, final, now, outcome, freed)[0]
    return transitions


def _apply_observations(
    core: StoreCore,
    conn: Connection,
    runs: Sequence[RunObservation],
    now: datetime,
    outcome: OutcomePolicy,
    freed: dict[str, str] | None = None,
) -> tuple[list[Transition], list[RunObservation]]:
    """Apply news about our runs; returns the transitions and the news about runs that are not ours. The
    desktops of the attempts it ends go to `freed` (desktop -> job).

    News about step runs moves their rows first, and becomes news about their attempts (`steps.py`)."""
    runs, transitions = apply_step_news(core, conn, runs, now)
    by_run = {r.run_id: r for r in runs}
    if not by_run:
        return transitions, []
    # Attempts in id order: two daemons applying the same webhooks wait for each other, never deadlock.
    rows = core.sql.attempts_by_run.rows(conn, {"ids": list(by_run)})
    known = {r.run_id for r in rows}
    unknown = [by_run[run_id] for run_id in sorted(by_run.keys() - known)]
    finishing: list[_Finish] = []
    progressed: list[dict[str, Any]] = []
    for row in rows:
        run = by_run[row.run_id]
        if row.status in FINAL_ATTEMPT_STATUSES or run.status == row.status:
            continue
        if run.status in FINAL_ATTEMPT_STATUSES:
            status, error = run.status, run.error
            if status == "cancelled" and not row.cancel_requested and row.deadline_at <= now:
                # A reaper's cancel of an overdue run, heard (webhook, poll) before the reaper recorded it
                # or after it died: a timeout, retried by the job's policy, not a cancel meant by someone.
                status, error = "timed_out", timed_out_error(row.deadline_at - row.created_at)
            finishing.append(
                _Finish(row, status, run.started_at, run.ended_at, error, run.output, run.source, run.usage)
            )
        elif _progresses(row.status, run.status):
            progressed.append(
                {
                    "b_id": row.id,
                    "b_status": run.status,
                    "b_started": run.started_at or row.started_at,
                    "b_now": now,
                }
            )
            transitions.append(
                Transition(
                    f"run_{run.status}",
                    row.job_name,
                    row.fire_id,
                    row.item_id,
                    row.id,
                    row.run_id,
                    data={"source": run.source},
                )
            )
    if progressed:
        core.sql.attempt_progressed.many(conn, progressed)
    if freed is not None:
        freed.update((f.row.machine_id, f.row.job_name) for f in finishing)
    transitions += _finish_attempts(core, conn, finishing, now, outcome)
    return transitions, unknown


def _finish_attempts(
    core: StoreCore, conn: Connection, finishing: Sequence[_Finish], now: datetime, outcome: OutcomePolicy
) -> list[Transition]:
    """Finish attempts (locked by the caller), decide their items, settle their fires.

    A few statements per batch, however large: a burst of webhooks costs one transaction of a handful of
    round trips, not three per run. Locks follow the one order: the attempts (caller), then their items by
    id, then the fires by id (`settle_fires`).
    """
    if not finishing:
        return []
    core.work_due(conn)  # their desktops are free again: any daemon may dispatch there now
    figures = {f.row.id: usage_figures(f.usage) for f in finishing}
    core.sql.attempt_finished.many(
        conn,
        [
            {
                "b_id": f.row.id,
                "b_status": f.status,
                "b_started": f.started_at or f.row.started_at,
                "b_ended": f.ended_at or now,
                "b_error": list(f.error) if f.error else None,
                "b_output": dict(f.output) if f.output is not None else None,
                "b_usage": dict(f.usage) if f.usage is not None else None,
                "b_tokens": figures[f.row.id][0],
                "b_billed": figures[f.row.id][1],
                "b_now": now,
            }
            for f in finishing
        ],
    )
    item_ids = sorted({f.row.item_id for f in finishing})
    items = {
        r.id: r for chunk in chunks(item_ids) for r in core.sql.items_by_id.rows(conn, {"ids": list(chunk)})
    }
    transitions: list[Transition] = []
    item_updates: list[dict[str, Any]] = []
    settle: set[str] = set()
    for f in finishing:
        row = f.row
        tokens, billed = figures[row.id]
        cost = {k: v for k, v in (("tokens", tokens), ("billed_seconds", billed)) if v is not None}
        transitions.append(
            Transition(
                f"attempt_{f.status}",
                row.job_name,
                row.fire_id,
                row.item_id,
                row.id,
                row.run_id,
                data={"number": row.number, "error": f.error, "source": f.source, **cost},
            )
        )
        item = items.pop(row.item_id, None)  # popped: one outcome per item, even if two attempts end at once
        if item is None or item.status in FINAL_ITEM_STATUSES:
            continue
        decision = outcome(
            FinishedAttempt(
                row.id, row.item_id, row.job_name, row.number, f.status, f.error, item.cancel_requested
            )
        )
        values, item_transitions = item_outcome(item, decision, f.error, now)
        item_updates.append(values)
        transitions += item_transitions
        if values["b_status"] != "pending":
            settle.add(item.fire_id)
    if item_updates:
        core.sql.item_outcome.many(conn, item_updates)
    costly = {f.row.fire_id for f in finishing if figures[f.row.id][0]}
    transitions += stop_fires_over_budget(core, conn, costly, now, settle)
    return transitions + settle_fires(core, conn, settle, now)


def _non_final(status: str) -> str:
    return status if status in _PROGRESS else "scheduling"


def _progresses(current: str, new: str) -> bool:
    return _PROGRESS.get(new, -1) > _PROGRESS.get(current, -1)
