"""Step runs of multi-step (`steps:`) attempts: one Cyberdesk chain per attempt, one row per step (`store.steps`).

An attempt of a multi-step job is one chain call. Its answer (the run ids, in step order) is recorded with the
attempt's creation, in one transaction (`insert_step_runs`, called by `tracking`); the attempt's own `run_id` is
the first step's. News about a step run moves its row (`apply_step_news`) and then the attempt, by what the
steps say together (`chain_status`): the first step that ended other than `success`, once every step before it
is heard, ends the attempt with its status and an error naming it; every step succeeded -> success, with the
last step's output; either way with the usage of the steps that ran, summed (`chain_usage`). Steps left open when their attempt is final (the steps after a failed one, a timed-out
chain) are cancelled by the reaper (`open_after_end`, `close`).

Locks: `apply_step_news` locks the attempts first (`attempts_by_id`), then their step rows: the one order
attempt -> item -> fire, with step runs right after their attempts.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from cyberdesk_runner.store.core import Aggregate, StoreCore, chunks, new_id
from cyberdesk_runner.store.records import (
    FINAL_ATTEMPT_STATUSES,
    NewStepRun,
    OpenStepRun,
    RunObservation,
    Transition,
)
from cyberdesk_runner.store.tables import ACTIVE_ATTEMPT_STATUSES, attempt_t, step_run_t
from cyberdesk_runner.store.usage import usage_figures

__all__ = ["OPEN_STEP", "Steps", "apply_step_news", "chain_status", "insert_step_runs", "step_label"]

_PROGRESS = {"scheduling": 1, "running": 2, "running_checks": 3}
#: A step run not final yet (polls watch it while its attempt is in flight).
OPEN_STEP = step_run_t.c.status.not_in(sorted(FINAL_ATTEMPT_STATUSES))


class Steps(Aggregate):
    def in_flight(self) -> list[OpenStepRun]:
        """Open step runs of attempts in flight (polls watch these instead of the attempts' first runs)."""
        with self.core.read() as conn:
            return _open(conn, attempt_t.c.status.in_(ACTIVE_ATTEMPT_STATUSES))

    def open_after_end(self, limit: int = 200) -> list[OpenStepRun]:
        """Open step runs of attempts already final: the steps after a failed one, or of a chain cancelled or
        timed out. The reaper cancels them in Cyberdesk."""
        with self.core.read() as conn:
            return _open(conn, attempt_t.c.status.in_(sorted(FINAL_ATTEMPT_STATUSES)), limit)

    def close(self, run_ids: Sequence[str], status: str, error: str, now: datetime) -> list[Transition]:
        """Record open step runs as ended (`status`, `error`) after the reaper cancelled them."""
        if not run_ids:
            return []
        with self.core.write() as conn:
            rows = conn.execute(
                sa.update(step_run_t)
                .where(step_run_t.c.run_id.in_(list(run_ids)), OPEN_STEP)
                .values(status=status, error=[error], ended_at=now, updated_at=now)
                .returning(step_run_t.c.attempt_id, step_run_t.c.step_index, step_run_t.c.run_id)
            ).all()
            if not rows:
                return []
            attempts = {
                r.id: r
                for r in conn.execute(
                    sa.select(
                        attempt_t.c.id, attempt_t.c.job_name, attempt_t.c.fire_id, attempt_t.c.item_id
                    ).where(attempt_t.c.id.in_(sorted({r.attempt_id for r in rows})))
                )
            }
            transitions = [
                Transition(
                    f"step_{status}",
                    attempts[r.attempt_id].job_name,
                    attempts[r.attempt_id].fire_id,
                    attempts[r.attempt_id].item_id,
                    r.attempt_id,
                    r.run_id,
                    data={"step": r.step_index + 1, "error": [error], "source": "reaper"},
                )
                for r in rows
                if r.attempt_id in attempts
            ]
            self.core.append_events(conn, now, transitions)
        return transitions

    def of_attempts(self, attempt_ids: Sequence[str]) -> dict[str, list[dict[str, Any]]]:
        """Each attempt's step runs in step order (CLI `show`, `runs`): alias, workflow, run, status, times,
        output, error."""
        found: dict[str, list[dict[str, Any]]] = {}
        with self.core.read() as conn:
            for chunk in chunks(list(attempt_ids)):
                rows = conn.execute(
                    sa.select(step_run_t)
                    .where(step_run_t.c.attempt_id.in_(list(chunk)))
                    .order_by(step_run_t.c.attempt_id, step_run_t.c.step_index)
                )
                for r in rows:
                    found.setdefault(r.attempt_id, []).append(
                        {
                            "step": r.step_index + 1,
                            "alias": r.alias,
                            "workflow": r.workflow,
                            "run_id": r.run_id,
                            "status": r.status,
                            "started_at": r.started_at,
                            "ended_at": r.ended_at,
                            "output": r.output,
                            "error": r.error,
                        }
                    )
        return found


def _open(conn: Connection, attempt_filter: Any, limit: int | None = None) -> list[OpenStepRun]:
    query = (
        sa.select(
            step_run_t.c.attempt_id,
            attempt_t.c.job_name,
            step_run_t.c.step_index,
            step_run_t.c.run_id,
            step_run_t.c.workflow_id,
            step_run_t.c.status,
            step_run_t.c.created_at,
            attempt_t.c.deadline_at,
            attempt_t.c.cancel_requested,
        )
        .join(attempt_t, attempt_t.c.id == step_run_t.c.attempt_id)
        .where(OPEN_STEP, attempt_filter)
        .order_by(step_run_t.c.attempt_id, step_run_t.c.step_index)
    )
    if limit is not None:
        query = query.limit(limit)
    return [OpenStepRun(*r) for r in conn.execute(query)]


def step_label(index: int, alias: str | None, workflow: str) -> str:
    """How messages name a step: 'step 2 (lookup: Look up patient)'."""
    return f"step {index + 1} ({alias + ': ' if alias else ''}{workflow})"


def insert_step_runs(
    core: StoreCore, conn: Connection, steps: Mapping[str, Sequence[NewStepRun]], now: datetime
) -> None:
    """Record chain answers (attempt id -> its step runs), in the caller's transaction; a repeat is a no-op."""
    rows = [
        {
            "id": new_id("step"),
            "attempt_id": attempt_id,
            "step_index": s.index,
            "alias": s.alias,
            "workflow_id": s.workflow_id,
            "workflow": s.workflow,
            "run_id": s.run_id,
            "status": "scheduling",
            "created_at": now,
            "updated_at": now,
        }
        for attempt_id, runs in steps.items()
        for s in runs
    ]
    if rows:
        conn.execute(core.insert_or_nothing(step_run_t, ["attempt_id", "step_index"]), rows)


def apply_step_news(
    core: StoreCore, conn: Connection, runs: Sequence[RunObservation], now: datetime
) -> tuple[list[RunObservation], list[Transition]]:
    """Apply news about step runs to their rows; returns the news for the attempts (the news not about step runs
    as it came, and for each chain touched what its steps say together) and the steps' transitions."""
    by_run = {r.run_id: r for r in runs}
    if not by_run:
        return list(runs), []
    touched = sorted(
        {
            r.attempt_id
            for chunk in chunks(list(by_run))
            for r in core.sql.step_attempts_by_run.rows(conn, {"ids": list(chunk)})
        }
    )
    if not touched:
        return list(runs), []
    # Attempts first (the one lock order), then their steps.
    attempts = {r.id: r for r in core.sql.attempts_by_id.rows(conn, {"ids": touched})}
    steps_query = (
        sa.select(step_run_t)
        .where(step_run_t.c.attempt_id.in_(touched))
        .order_by(step_run_t.c.attempt_id, step_run_t.c.step_index)
    )
    by_attempt: dict[str, list[dict[str, Any]]] = {}
    step_runs: set[str] = set()
    updates: list[dict[str, Any]] = []
    transitions: list[Transition] = []
    for row in conn.execute(core.lock(steps_query)):
        step = dict(row._mapping)
        step_runs.add(row.run_id)
        by_attempt.setdefault(row.attempt_id, []).append(step)
        news = by_run.get(row.run_id)
        if news is None or row.status in FINAL_ATTEMPT_STATUSES or news.status == row.status:
            continue
        final = news.status in FINAL_ATTEMPT_STATUSES
        if not final and _PROGRESS.get(news.status, -1) <= _PROGRESS.get(row.status, -1):
            continue
        step.update(
            status=news.status,
            started_at=news.started_at or row.started_at,
            ended_at=(news.ended_at or now) if final else None,
            error=list(news.error) if final and news.error else None,
            output=dict(news.output) if final and news.output is not None else None,
            usage=dict(news.usage) if final and news.usage is not None else None,
        )
        updates.append(
            {
                "b_id": row.id,
                "b_status": step["status"],
                "b_started": step["started_at"],
                "b_ended": step["ended_at"],
                "b_error": step["error"],
                "b_output": step["output"],
                "b_usage": step["usage"],
                "b_now": now,
            }
        )
        attempt = attempts.get(row.attempt_id)
        transitions.append(
            Transition(
                f"step_{news.status}",
                attempt.job_name if attempt is not None else "",
                attempt.fire_id if attempt is not None else None,
                attempt.item_id if attempt is not None else None,
                row.attempt_id,
                row.run_id,
                data={
                    "step": row.step_index + 1,
                    "alias": row.alias,
                    "workflow": row.workflow,
                    "error": step["error"],
                    "source": news.source,
                },
            )
        )
    if updates:
        conn.execute(_UPDATE_STEP, updates)
    chains = [
        chain_status(steps, attempts[attempt_id].run_id, _source(steps, by_run))
        for attempt_id, steps in by_attempt.items()
        if attempt_id in attempts and attempts[attempt_id].run_id
    ]
    return [r for r in runs if r.run_id not in step_runs] + chains, transitions


def chain_status(steps: Sequence[Mapping[str, Any]], run_id: str, source: str) -> RunObservation:
    """What a chain's steps (in order) say of its attempt, as news about the attempt's run (`run_id`).

    The first step that ended other than `success` ends the chain, once every step before it is heard (the
    steps after a failed one are cancelled by the API, and that news may come first). Every step succeeded ->
    success with the last step's output; otherwise still running (or scheduling before the first step starts).
    """
    started = steps[0].get("started_at") if steps else None
    for index, step in enumerate(steps):
        status = step["status"]
        if status not in FINAL_ATTEMPT_STATUSES:
            running = index > 0 or status in ("running", "running_checks")
            return RunObservation(run_id, "running" if running else "scheduling", started, source=source)
        if status != "success":
            label = step_label(index, step.get("alias"), step.get("workflow", ""))
            error = [f"{label} ended {status}", *(step.get("error") or [])]
            usage = chain_usage(steps[: index + 1])
            return RunObservation(
                run_id, status, started, step.get("ended_at"), error, source=source, usage=usage
            )
    last = steps[-1]
    return RunObservation(
        run_id,
        "success",
        started,
        last.get("ended_at"),
        None,
        last.get("output"),
        source=source,
        usage=chain_usage(steps),
    )


def chain_usage(steps: Sequence[Mapping[str, Any]]) -> dict[str, Any] | None:
    """What a chain's ended steps cost, as one usage for its attempt: their tokens and billed seconds summed
    (`store.usage` reads these keys), each step's own usage_metadata kept under `steps`."""
    said = [s["usage"] for s in steps if s.get("usage")]
    if not said:
        return None
    figures = [usage_figures(u) for u in said]
    usage: dict[str, Any] = {"steps": said}
    if any(t is not None for t, _ in figures):
        usage["total_tokens"] = sum(t for t, _ in figures if t is not None)
    if any(b is not None for _, b in figures):
        usage["billed_seconds"] = sum(b for _, b in figures if b is not None)
    return usage


def _source(steps: Sequence[Mapping[str, Any]], by_run: Mapping[str, RunObservation]) -> str:
    return next((by_run[s["run_id"]].source for s in steps if s["run_id"] in by_run), "poll")


_UPDATE_STEP = (
    sa.update(step_run_t)
    .where(step_run_t.c.id == sa.bindparam("b_id"))
    .values(
        status=sa.bindparam("b_status"),
        started_at=sa.bindparam("b_started"),
        ended_at=sa.bindparam("b_ended"),
        error=sa.bindparam("b_error"),
        output=sa.bindparam("b_output"),
        usage=sa.bindparam("b_usage"),
        updated_at=sa.bindparam("b_now"),
    )
)
