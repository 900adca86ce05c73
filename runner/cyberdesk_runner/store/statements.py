"""The statements run for every batch of runs (dispatch, create answers, news), built once per store.

They are `Prepared`: compiled once, then run on the DB-API cursor (see prepared.py for why and what they may
hold). Values that change per call are bind parameters: `ids` (a list of ids, one SQL string for any length)
and the `b_`-prefixed ones, which never clash with column names.
"""

from __future__ import annotations

from typing import Any

import attrs
import sqlalchemy as sa

from cyberdesk_runner.store.prepared import Prepared, ids_in, one_of
from cyberdesk_runner.store.tables import (
    ACTIVE_ATTEMPT_STATUSES,
    OPEN_ITEM_STATUSES,
    attempt_t,
    event_t,
    fire_t,
    item_t,
    job_t,
    step_run_t,
)

#: What recording news about an attempt reads of it: not its output or error (JSON, possibly large).
ATTEMPT_STATE = (
    attempt_t.c.id,
    attempt_t.c.item_id,
    attempt_t.c.fire_id,
    attempt_t.c.job_name,
    attempt_t.c.number,
    attempt_t.c.run_id,
    attempt_t.c.machine_id,
    attempt_t.c.machine_name,
    attempt_t.c.status,
    attempt_t.c.started_at,
    # A run cancelled past its deadline was cancelled by a reaper, whichever news of its end comes first.
    attempt_t.c.created_at,
    attempt_t.c.deadline_at,
    attempt_t.c.cancel_requested,
)
#: What deciding an item's outcome reads of it: not its inputs.
ITEM_STATE = (
    item_t.c.id,
    item_t.c.fire_id,
    item_t.c.job_name,
    item_t.c.status,
    item_t.c.cancel_requested,
    item_t.c.last_error,
    item_t.c.next_attempt_at,
)

#: What dispatch reads of a due item.
DUE_ITEM = (
    item_t.c.id,
    item_t.c.fire_id,
    item_t.c.job_name,
    item_t.c.seq,
    item_t.c.inputs,
    item_t.c.machine_id,
    item_t.c.attempts,
    item_t.c.priority,
    item_t.c.next_attempt_at,
)

_ACTIVE = one_of(attempt_t.c.status, ACTIVE_ATTEMPT_STATUSES)


def _update_by_id(table: sa.Table, **values: Any) -> Prepared:
    """An UPDATE of the row whose id is bound as `b_id`."""
    return Prepared(sa.update(table).where(table.c.id == sa.bindparam("b_id")).values(**values))


@attrs.frozen
class HotStatements:
    """Every statement takes its parameters by name: `ids` (a list of ids) and the `b_`-prefixed ones."""

    #: Rows of `ATTEMPT_STATE` by attempt id (`ids`), locked, in id order.
    attempts_by_id: Prepared
    #: Rows of `ATTEMPT_STATE` by run id (`ids`), locked, in attempt id order.
    attempts_by_run: Prepared
    #: Rows of `ITEM_STATE` by item id (`ids`), locked, in id order.
    items_by_id: Prepared
    #: Running fires (id, job_name, error) by id (`ids`), locked, in id order.
    running_fires: Prepared
    #: A job's (b_job) due items of one priority (b_priority) at b_now, in queue order, at most b_limit; taken
    #: with SKIP LOCKED (PostgreSQL).
    due_queue: Prepared
    #: Desktop and job of every attempt that holds (or may hold) a desktop.
    active_attempts: Prepared
    #: Which of some desktops (`ids`) hold an active attempt (the partial unique index on an active desktop).
    active_on_desktops: Prepared
    #: Active attempts counted per job (a count in SQL: no row of the busy set is made in Python).
    active_per_job: Prepared
    #: Every job's name, in name order.
    job_names: Prepared
    #: Running fires by id (`ids`): id, job_name, error and their job's `budget.tokens_per_fire` (JSON, as
    #: written), read from the definition in SQL rather than the whole definition parsed per batch of news.
    fire_budgets: Prepared
    #: The attempts of step runs by run id (`ids`).
    step_attempts_by_run: Prepared
    #: New attempts: every column but the run's (run id, times, outcome, usage).
    insert_attempts: Prepared
    #: Events: at, kind, job_name, fire_id, item_id, attempt_id, run_id, data.
    insert_events: Prepared
    #: An item handed to an attempt: b_id, b_attempts.
    item_running: Prepared
    #: A create call's answer: b_id, b_run, b_status, b_started, b_now.
    attempt_created: Prepared
    #: A run that moved on but is not final: b_id, b_status, b_started, b_now.
    attempt_progressed: Prepared
    #: A final attempt: b_id, b_status, b_started, b_ended, b_error, b_output, b_usage, b_tokens, b_billed, b_now.
    attempt_finished: Prepared
    #: An item's outcome: b_id, b_status, b_next, b_finished, b_error.
    item_outcome: Prepared
    #: Whether a fire (b_fire) has an item still open.
    fire_open_item: Prepared
    #: A fire's (b_fire) items counted by status.
    fire_item_counts: Prepared
    #: A fire settled: b_fire, b_status, b_now.
    fire_finished: Prepared
    #: Fires waiting to be planned, oldest first (b_limit): what every dispatch round asks first.
    fires_requested: Prepared
    #: The same, with fires whose plan stopped midway (running, not planned, plan lease ended by b_now).
    fires_requested_or_stalled: Prepared
    #: One attempt whose create call is due to be repeated (b_now), if any: every dispatch round asks.
    a_create_to_settle: Prepared


#: The columns an attempt is inserted with (`HotStatements.insert_attempts`).
NEW_ATTEMPT = (
    "id",
    "item_id",
    "fire_id",
    "job_name",
    "number",
    "idempotency_key",
    "workflow_id",
    "machine_id",
    "machine_name",
    "status",
    "created_at",
    "updated_at",
    "deadline_at",
    "retry_create_at",
    "create_tries",
    "owner",
    "cancel_requested",
)
#: The columns an event is inserted with (`HotStatements.insert_events`).
NEW_EVENT = ("at", "kind", "job_name", "fire_id", "item_id", "attempt_id", "run_id", "data")


def hot_statements(*, postgres: bool) -> HotStatements:
    """The statements of one store; on PostgreSQL its locking reads take FOR UPDATE."""

    def locked(query: sa.Select[Any]) -> sa.Select[Any]:
        return query.with_for_update() if postgres else query

    def by_ids(column: sa.ColumnElement[Any]) -> sa.ColumnElement[bool]:
        return ids_in(column, "ids", postgres=postgres)

    due_queue = (
        sa.select(*DUE_ITEM)
        .where(
            item_t.c.job_name == sa.bindparam("b_job"),
            item_t.c.priority == sa.bindparam("b_priority"),
            item_t.c.status == "pending",
            item_t.c.next_attempt_at <= sa.bindparam("b_now"),
            item_t.c.cancel_requested.is_(False),
            # A fire whose cancel was asked gets no new run while its items are cancelled by chunks.
            item_t.c.fire_id.not_in(
                sa.select(fire_t.c.id).where(
                    fire_t.c.status == "running", fire_t.c.cancel_reason.is_not(None)
                )
            ),
            sa.or_(
                item_t.c.machine_id.is_(None),
                item_t.c.machine_id.not_in(sa.select(attempt_t.c.machine_id).where(_ACTIVE)),
            ),
        )
        .order_by(item_t.c.next_attempt_at, item_t.c.seq, item_t.c.id)
        .limit(sa.bindparam("b_limit"))
    )
    fire_id: sa.BindParameter[str] = sa.bindparam("b_fire")
    stalled = sa.and_(
        fire_t.c.status == "running",
        fire_t.c.planned_at.is_(None),
        fire_t.c.plan_lease_until <= sa.bindparam("b_now"),
    )
    return HotStatements(
        attempts_by_id=Prepared(
            locked(sa.select(*ATTEMPT_STATE).where(by_ids(attempt_t.c.id)).order_by(attempt_t.c.id))
        ),
        attempts_by_run=Prepared(
            locked(sa.select(*ATTEMPT_STATE).where(by_ids(attempt_t.c.run_id)).order_by(attempt_t.c.id))
        ),
        items_by_id=Prepared(locked(sa.select(*ITEM_STATE).where(by_ids(item_t.c.id)).order_by(item_t.c.id))),
        running_fires=Prepared(
            locked(
                sa.select(fire_t.c.id, fire_t.c.job_name, fire_t.c.error)
                .where(by_ids(fire_t.c.id))
                .where(fire_t.c.status == "running")
                .where(fire_t.c.planned_at.is_not(None))  # a fire still being planned has more items to come
                .order_by(fire_t.c.id)
            )
        ),
        due_queue=Prepared(due_queue.with_for_update(skip_locked=True, of=item_t) if postgres else due_queue),
        active_attempts=Prepared(sa.select(attempt_t.c.machine_id, attempt_t.c.job_name).where(_ACTIVE)),
        active_on_desktops=Prepared(
            sa.select(attempt_t.c.machine_id).where(_ACTIVE, by_ids(attempt_t.c.machine_id))
        ),
        active_per_job=Prepared(
            sa.select(attempt_t.c.job_name, sa.func.count()).where(_ACTIVE).group_by(attempt_t.c.job_name)
        ),
        job_names=Prepared(sa.select(job_t.c.name).order_by(job_t.c.name)),
        fire_budgets=Prepared(
            sa.select(
                fire_t.c.id,
                fire_t.c.job_name,
                fire_t.c.error,
                # One path (one JSON_EXTRACT of the definition on SQLite), not one index after another (two).
                job_t.c.definition[("budget", "tokens_per_fire")].label("tokens_per_fire"),
            )
            .join(job_t, job_t.c.name == fire_t.c.job_name)
            .where(by_ids(fire_t.c.id), fire_t.c.status == "running")
        ),
        step_attempts_by_run=Prepared(sa.select(step_run_t.c.attempt_id).where(by_ids(step_run_t.c.run_id))),
        insert_attempts=Prepared(sa.insert(attempt_t), keys=NEW_ATTEMPT),
        insert_events=Prepared(sa.insert(event_t), keys=NEW_EVENT),
        item_running=_update_by_id(item_t, status="running", attempts=sa.bindparam("b_attempts")),
        attempt_created=_update_by_id(
            attempt_t,
            run_id=sa.bindparam("b_run"),
            status=sa.bindparam("b_status"),
            started_at=sa.bindparam("b_started"),
            retry_create_at=None,
            owner=None,
            updated_at=sa.bindparam("b_now"),
        ),
        attempt_progressed=_update_by_id(
            attempt_t,
            status=sa.bindparam("b_status"),
            started_at=sa.bindparam("b_started"),
            updated_at=sa.bindparam("b_now"),
        ),
        attempt_finished=_update_by_id(
            attempt_t,
            status=sa.bindparam("b_status"),
            started_at=sa.bindparam("b_started"),
            ended_at=sa.bindparam("b_ended"),
            error=sa.bindparam("b_error"),
            output=sa.bindparam("b_output"),
            usage=sa.bindparam("b_usage"),
            tokens=sa.bindparam("b_tokens"),
            billed_seconds=sa.bindparam("b_billed"),
            retry_create_at=None,
            owner=None,
            updated_at=sa.bindparam("b_now"),
        ),
        item_outcome=_update_by_id(
            item_t,
            status=sa.bindparam("b_status"),
            next_attempt_at=sa.bindparam("b_next"),
            finished_at=sa.bindparam("b_finished"),
            last_error=sa.bindparam("b_error"),
        ),
        fire_open_item=Prepared(
            sa.select(item_t.c.id)
            .where(item_t.c.fire_id == fire_id)
            .where(one_of(item_t.c.status, OPEN_ITEM_STATUSES))
            .limit(1)
        ),
        fire_item_counts=Prepared(
            sa.select(item_t.c.status, sa.func.count())
            .where(item_t.c.fire_id == fire_id)
            .group_by(item_t.c.status)
        ),
        fire_finished=Prepared(
            sa.update(fire_t)
            .where(fire_t.c.id == fire_id)
            .values(status=sa.bindparam("b_status"), finished_at=sa.bindparam("b_now"))
        ),
        fires_requested=Prepared(_fire_requests(fire_t.c.status == "requested")),
        fires_requested_or_stalled=Prepared(_fire_requests(sa.or_(fire_t.c.status == "requested", stalled))),
        a_create_to_settle=Prepared(
            sa.select(attempt_t.c.id)
            .where(attempt_t.c.status == "creating", attempt_t.c.retry_create_at <= sa.bindparam("b_now"))
            .limit(1)
        ),
    )


def _fire_requests(waiting: sa.ColumnElement[bool]) -> sa.Select[Any]:
    """What planning reads of the fires it is to plan (`store.fires.requested`), oldest first."""
    return (
        sa.select(
            fire_t.c.id,
            fire_t.c.job_name,
            fire_t.c.trigger,
            fire_t.c.input_overrides,
            fire_t.c.status,
            fire_t.c.plan_digest,
            fire_t.c.upstream_fire_id,
        )
        .where(waiting)
        .order_by(fire_t.c.created_at)
        .limit(sa.bindparam("b_limit"))
    )
