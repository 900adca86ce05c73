"""The statements run for every batch of runs (dispatch, create answers, news), built once per store.

Building a SQLAlchemy statement and computing its cache key costs about as much as executing it on SQLite; a
statement object that is reused has its key memoized. Values that change per call are bind parameters: `ids`
(expanding IN lists) and the `b_`-prefixed ones, which never clash with column names.
"""

from __future__ import annotations

from typing import Any

import attrs
import sqlalchemy as sa

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

_IDS: sa.BindParameter[Any] = sa.bindparam("ids", expanding=True)
_ACTIVE = attempt_t.c.status.in_(ACTIVE_ATTEMPT_STATUSES)


def _update_by_id(table: sa.Table, **values: Any) -> sa.Update:
    """An UPDATE of the row whose id is bound as `b_id`."""
    return sa.update(table).where(table.c.id == sa.bindparam("b_id")).values(**values)


@attrs.frozen
class HotStatements:
    #: Rows of `ATTEMPT_STATE` by attempt id (`ids`), locked, in id order.
    attempts_by_id: sa.Select[Any]
    #: Rows of `ATTEMPT_STATE` by run id (`ids`), locked, in attempt id order.
    attempts_by_run: sa.Select[Any]
    #: Rows of `ITEM_STATE` by item id (`ids`), locked, in id order.
    items_by_id: sa.Select[Any]
    #: Running fires (id, job_name) by id (`ids`), locked, in id order.
    running_fires: sa.Select[Any]
    #: A job's (b_job) due items of one priority (b_priority) at b_now, in queue order, at most b_limit; taken
    #: with SKIP LOCKED (PostgreSQL).
    due_queue: sa.Select[Any]
    #: Desktop and job of every attempt that holds (or may hold) a desktop.
    active_attempts: sa.Select[Any] = sa.select(attempt_t.c.machine_id, attempt_t.c.job_name).where(_ACTIVE)
    #: Which of some desktops (`ids`) hold an active attempt (the partial unique index on an active desktop).
    active_on_desktops: sa.Select[Any] = sa.select(attempt_t.c.machine_id).where(
        _ACTIVE, attempt_t.c.machine_id.in_(_IDS)
    )
    #: Active attempts counted per job (a count in SQL: no row of the busy set is made in Python).
    active_per_job: sa.Select[Any] = (
        sa.select(attempt_t.c.job_name, sa.func.count()).where(_ACTIVE).group_by(attempt_t.c.job_name)
    )
    #: Every job's name, in name order.
    job_names: sa.Select[Any] = sa.select(job_t.c.name).order_by(job_t.c.name)
    #: Running fires by id (`ids`): id, job_name, error and their job's `budget.tokens_per_fire` (JSON, as
    #: written), read from the definition in SQL rather than the whole definition parsed per batch of news.
    fire_budgets: sa.Select[Any] = (
        sa.select(
            fire_t.c.id,
            fire_t.c.job_name,
            fire_t.c.error,
            job_t.c.definition["budget"]["tokens_per_fire"].label("tokens_per_fire"),
        )
        .join(job_t, job_t.c.name == fire_t.c.job_name)
        .where(fire_t.c.id.in_(_IDS), fire_t.c.status == "running")
    )
    #: The attempts of step runs by run id (`ids`).
    step_attempts_by_run: sa.Select[Any] = sa.select(step_run_t.c.attempt_id).where(
        step_run_t.c.run_id.in_(_IDS)
    )
    insert_attempts: sa.Insert = sa.insert(attempt_t)
    insert_events: sa.Insert = sa.insert(event_t)
    #: An item handed to an attempt: b_id, b_attempts.
    item_running: sa.Update = _update_by_id(item_t, status="running", attempts=sa.bindparam("b_attempts"))
    #: A create call's answer: b_id, b_run, b_status, b_started, b_now.
    attempt_created: sa.Update = _update_by_id(
        attempt_t,
        run_id=sa.bindparam("b_run"),
        status=sa.bindparam("b_status"),
        started_at=sa.bindparam("b_started"),
        retry_create_at=None,
        owner=None,
        updated_at=sa.bindparam("b_now"),
    )
    #: A run that moved on but is not final: b_id, b_status, b_started, b_now.
    attempt_progressed: sa.Update = _update_by_id(
        attempt_t,
        status=sa.bindparam("b_status"),
        started_at=sa.bindparam("b_started"),
        updated_at=sa.bindparam("b_now"),
    )
    #: A final attempt: b_id, b_status, b_started, b_ended, b_error, b_output, b_usage, b_tokens, b_billed, b_now.
    attempt_finished: sa.Update = _update_by_id(
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
    )
    #: An item's outcome: b_id, b_status, b_next, b_finished, b_error.
    item_outcome: sa.Update = _update_by_id(
        item_t,
        status=sa.bindparam("b_status"),
        next_attempt_at=sa.bindparam("b_next"),
        finished_at=sa.bindparam("b_finished"),
        last_error=sa.bindparam("b_error"),
    )
    #: Whether a fire (b_fire) has an item still open.
    fire_open_item: sa.Select[Any] = (
        sa.select(item_t.c.id)
        .where(item_t.c.fire_id == sa.bindparam("b_fire"))
        .where(item_t.c.status.in_(OPEN_ITEM_STATUSES))
        .limit(1)
    )
    #: A fire's (b_fire) items counted by status.
    fire_item_counts: sa.Select[Any] = (
        sa.select(item_t.c.status, sa.func.count())
        .where(item_t.c.fire_id == sa.bindparam("b_fire"))
        .group_by(item_t.c.status)
    )
    #: A fire settled: b_fire, b_status, b_now.
    fire_finished: sa.Update = (
        sa.update(fire_t)
        .where(fire_t.c.id == sa.bindparam("b_fire"))
        .values(status=sa.bindparam("b_status"), finished_at=sa.bindparam("b_now"))
    )


def hot_statements(*, row_locks: bool) -> HotStatements:
    """The statements of one store; `row_locks` adds FOR UPDATE to its locking reads (PostgreSQL)."""

    def locked(query: sa.Select[Any]) -> sa.Select[Any]:
        return query.with_for_update() if row_locks else query

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

    return HotStatements(
        attempts_by_id=locked(
            sa.select(*ATTEMPT_STATE).where(attempt_t.c.id.in_(_IDS)).order_by(attempt_t.c.id)
        ),
        attempts_by_run=locked(
            sa.select(*ATTEMPT_STATE).where(attempt_t.c.run_id.in_(_IDS)).order_by(attempt_t.c.id)
        ),
        items_by_id=locked(sa.select(*ITEM_STATE).where(item_t.c.id.in_(_IDS)).order_by(item_t.c.id)),
        running_fires=locked(
            sa.select(fire_t.c.id, fire_t.c.job_name, fire_t.c.error)
            .where(fire_t.c.id.in_(_IDS))
            .where(fire_t.c.status == "running")
            .where(fire_t.c.planned_at.is_not(None))  # a fire still being planned has more items to come
            .order_by(fire_t.c.id)
        ),
        due_queue=due_queue.with_for_update(skip_locked=True, of=item_t) if row_locks else due_queue,
    )
