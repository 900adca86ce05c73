"""Items, and the fires they settle: steps that run inside another aggregate's transaction.

An item is one unit of a fire's fan-out. Items have no transactions of their own: fires create them
(`fires`), runs decide them (`tracking`), users cancel and fail them (`control`). The rules every one of those
follows live here: how items are inserted, what an outcome writes, how a cancel treats pending and running
items, and when a fire is settled (all its items final). Each function takes `(core, conn, ...)` and leaves the
event log to its caller.

Locks, in the one order attempt -> item -> fire: `cancel_items` locks the running items' active attempts (by
id), then the items (by id); `settle_fires` locks the fires (by id) last. A caller that locked attempts or items
itself does so before calling these.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from cyberdesk_runner.store.core import StoreCore, chunks, new_id
from cyberdesk_runner.store.records import Fail, ItemOutcome, NewFire, NewItem, Retry, Succeed, Transition
from cyberdesk_runner.store.tables import (
    ACTIVE_ATTEMPT_STATUSES,
    OPEN_ITEM_STATUSES,
    attempt_t,
    fire_t,
    item_t,
)

__all__ = [
    "apply_item_outcome",
    "ask_cancels",
    "cancel_item_ids",
    "cancel_items",
    "end_plan",
    "insert_items",
    "item_outcome",
    "settle_fires",
]


def insert_items(
    core: StoreCore,
    conn: Connection,
    fire_id: str,
    fire: NewFire,
    items: Sequence[NewItem],
    now: datetime,
    *,
    first_seq: int = 0,
    seqs: Sequence[int] | None = None,
) -> None:
    """Insert a fire's items, pending and due now (work for every daemon), numbered from `first_seq` (a fire
    planned in chunks: unique per fire, so no chunk goes in twice), or numbered `seqs` (a retry's copies keep
    the seq of the item they copy)."""
    if not items:
        return
    numbers = range(first_seq, first_seq + len(items)) if seqs is None else seqs
    core.work_due(conn)
    conn.execute(
        sa.insert(item_t),
        [
            {
                "id": new_id("item"),
                "fire_id": fire_id,
                "job_name": fire.job_name,
                "seq": seq,
                "inputs": dict(item.inputs),
                "machine_id": item.machine_id,
                "machine_name": item.machine_name,
                "status": "pending",
                "priority": fire.priority,
                "attempts": 0,
                "next_attempt_at": now,
                "created_at": now,
                "cancel_requested": False,
            }
            for seq, item in zip(numbers, items, strict=True)
        ],
    )


def fire_window(conn: Connection, fire_id: str, after_seq: int, limit: int) -> Sequence[Any]:
    """The next `limit` items of a fire after seq `after_seq`, in seq order (id, seq, status, cancel_requested): a
    chunk of a big operation over a fire. Read by the fire's (fire, seq) index, their statuses looked at by the
    caller: a condition on status let PostgreSQL, on a table not analyzed since the fire's items went in, plan a
    read of every such item of the fire at each chunk."""
    return conn.execute(
        sa.select(item_t.c.id, item_t.c.seq, item_t.c.status, item_t.c.cancel_requested)
        .where(item_t.c.fire_id == fire_id, item_t.c.seq > after_seq)
        .order_by(item_t.c.seq)
        .limit(limit)
    ).all()


def cancel_items(
    core: StoreCore,
    conn: Connection,
    chosen: Sequence[Any],
    reason: str,
    now: datetime,
    *,
    only_pending: bool,
) -> list[Transition]:
    """Cancel the open items matching `chosen`: pending ones at once, running ones by asking for their runs to be
    cancelled (unless `only_pending`), which the reaper carries out. The caller appends the events."""
    statuses = ("pending",) if only_pending else OPEN_ITEM_STATUSES
    chosen = [item_t.c.status.in_(statuses), *chosen]
    if not only_pending:
        # The one lock order: the running items' attempts first, then the items, each by id.
        conn.execute(
            core.lock(
                sa.select(attempt_t.c.id)
                .where(attempt_t.c.status.in_(ACTIVE_ATTEMPT_STATUSES))
                .where(attempt_t.c.item_id.in_(sa.select(item_t.c.id).where(*chosen)))
                .order_by(attempt_t.c.id)
            )
        ).all()
    items = conn.execute(core.lock(sa.select(*_CANCEL_READ).where(*chosen).order_by(item_t.c.id))).all()
    return _cancel_rows(core, conn, items, reason, now)


def cancel_item_ids(
    core: StoreCore, conn: Connection, ids: Sequence[str], reason: str, now: datetime
) -> list[Transition]:
    """Cancel these items (a chunk of a whole fire's cancel) where still pending, or running and not flagged yet:
    every other is left alone, so a chunk done twice does nothing twice. Rows are read by id only (the primary key
    and the attempts' item index), never by status: a big fire's other open items are not scanned, whatever the
    database believes of the table's size. The caller appends the events."""
    # The one lock order: the items' active attempts first, then the items, each by id.
    conn.execute(
        core.lock(
            sa.select(attempt_t.c.id)
            .where(attempt_t.c.item_id.in_(list(ids)), attempt_t.c.status.in_(ACTIVE_ATTEMPT_STATUSES))
            .order_by(attempt_t.c.id)
        )
    ).all()
    rows = conn.execute(
        core.lock(
            sa.select(*_CANCEL_READ, item_t.c.cancel_requested)
            .where(item_t.c.id.in_(list(ids)))
            .order_by(item_t.c.id)
        )
    ).all()
    due = [r for r in rows if r.status == "pending" or (r.status == "running" and not r.cancel_requested)]
    return _cancel_rows(core, conn, due, reason, now)


#: What a cancel reads of an item: not its inputs (JSON).
_CANCEL_READ = (item_t.c.id, item_t.c.status, item_t.c.job_name, item_t.c.fire_id)


def _cancel_rows(
    core: StoreCore, conn: Connection, items: Sequence[Any], reason: str, now: datetime
) -> list[Transition]:
    """Cancel these open items (locked): pending ones at once, running ones flagged for the reaper."""
    transitions: list[Transition] = []
    running = [i.id for i in items if i.status == "running"]
    for chunk in chunks(running):
        conn.execute(sa.update(item_t).where(item_t.c.id.in_(chunk)).values(cancel_requested=True))
        conn.execute(
            sa.update(attempt_t)
            .where(attempt_t.c.item_id.in_(chunk))
            .where(attempt_t.c.status.in_(ACTIVE_ATTEMPT_STATUSES))
            .values(cancel_requested=True, updated_at=now)
        )
    if running:
        core.work_due(conn)  # the reaper (on whichever daemon holds its lease) cancels the runs
    pending = [i for i in items if i.status == "pending"]
    for chunk in chunks([i.id for i in pending]):
        conn.execute(
            sa.update(item_t).where(item_t.c.id.in_(chunk)).values(status="cancelled", finished_at=now)
        )
    for item in items:
        if item.status == "pending":
            transitions.append(
                Transition("item_cancelled", item.job_name, item.fire_id, item.id, data={"reason": reason})
            )
        else:
            transitions.append(
                Transition("cancel_requested", item.job_name, item.fire_id, item.id, data={"reason": reason})
            )
    transitions += settle_fires(core, conn, {i.fire_id for i in pending}, now)
    return transitions


def apply_item_outcome(
    core: StoreCore,
    conn: Connection,
    item: Any,
    decision: ItemOutcome,
    error: list[str] | None,
    now: datetime,
    settle: set[str],
) -> list[Transition]:
    """Record one item's outcome; a final one adds its fire to `settle` (settled once, at the end)."""
    values, transitions = item_outcome(item, decision, error, now)
    conn.execute(
        sa.update(item_t)
        .where(item_t.c.id == item.id)
        .values(
            status=values["b_status"],
            next_attempt_at=values["b_next"],
            finished_at=values["b_finished"],
            last_error=values["b_error"],
        )
    )
    if values["b_status"] == "pending":
        core.work_due(conn)
    else:
        settle.add(item.fire_id)
    return transitions


def item_outcome(
    item: Any, decision: ItemOutcome, error: list[str] | None, now: datetime
) -> tuple[dict[str, Any], list[Transition]]:
    """The item's new values (as `b_*` parameters of one UPDATE shape) and the transitions the decision makes."""
    last_error = "; ".join(error) if error else item.last_error
    base = {"job_name": item.job_name, "fire_id": item.fire_id, "item_id": item.id}
    if isinstance(decision, Retry):
        values = {
            "b_id": item.id,
            "b_status": "pending",
            "b_next": decision.at,
            "b_finished": None,
            "b_error": last_error,
        }
        return values, [Transition("item_retry_scheduled", data={"at": decision.at.isoformat()}, **base)]
    if isinstance(decision, Succeed):
        status, data = "succeeded", {}
    elif isinstance(decision, Fail):
        status, data = "failed", {"reason": decision.reason}
    else:
        status, data = "cancelled", {"reason": decision.reason}
    values = {
        "b_id": item.id,
        "b_status": status,
        "b_next": item.next_attempt_at,
        "b_finished": now,
        "b_error": last_error,
    }
    return values, [Transition(f"item_{status}", data=data, **base)]


def settle_fires(
    core: StoreCore, conn: Connection, fire_ids: Iterable[str], now: datetime
) -> list[Transition]:
    """Finish fires whose items are all final.

    Each fire row is locked (in id order, after the attempts and items: the one lock order) before its items
    are counted. Without it, two transactions finishing a fire's last two items at once would each still
    see the other's item open under READ COMMITTED, and neither would finish the fire.
    """
    ids = sorted(set(fire_ids))
    if not ids:
        return []
    sql = core.sql
    running = sql.running_fires.rows(conn, {"ids": ids})
    transitions: list[Transition] = []
    for fire in running:
        # Cheap test first (index on fire_id, status), so finishing one item of a big fire stays O(1).
        still_open = sql.fire_open_item.first(conn, {"b_fire": fire.id})
        if still_open is not None:
            continue
        counts: dict[str, int] = dict(sql.fire_item_counts.rows(conn, {"b_fire": fire.id}))
        if counts.get("failed"):
            status = "failed"
        elif counts.get("cancelled"):
            status = "cancelled"
        else:
            status = "succeeded"
        sql.fire_finished.run(conn, {"b_fire": fire.id, "b_status": status, "b_now": now})
        # Why the fire stopped early (a budget), for the fire_failed alert and the log.
        data: dict[str, Any] = {**counts, "reason": fire.error} if fire.error else dict(counts)
        transitions.append(Transition(f"fire_{status}", fire.job_name, fire_id=fire.id, data=data))
    return transitions


def end_plan(conn: Connection, fire_id: str, now: datetime) -> int:
    """A fire's plan ends with the items it has (all in, or stopped): planned now, no planner. Their number."""
    total = int(conn.execute(sa.select(sa.func.count()).where(item_t.c.fire_id == fire_id)).scalar_one())
    conn.execute(
        sa.update(fire_t)
        .where(fire_t.c.id == fire_id)
        .values(planned_at=now, items_total=total, planned_by=None, plan_lease_until=None)
    )
    return total


def ask_cancels(
    conn: Connection, fires: Sequence[Any], reason: str, now: datetime, *, lease_until: datetime
) -> list[Transition]:
    """Ask for the cancel of whole fires (their rows, locked by the caller; fire rows are locked last): a fire still
    requested is cancelled at once; a running one is marked (its plan, if under way, ends with the items it has;
    dispatch takes none of its items any more; its first reason is kept) and claimed until `lease_until`, its items
    cancelled by chunks (`store.control.cancel_chunk`, by whoever holds the claim, or by any daemon once it
    lapsed). The caller appends the events (fire_cancelled of requested fires)."""
    transitions: list[Transition] = []
    for row in fires:
        if row.status == "requested":
            conn.execute(
                sa.update(fire_t).where(fire_t.c.id == row.id).values(status="cancelled", finished_at=now)
            )
            transitions.append(
                Transition("fire_cancelled", row.job_name, fire_id=row.id, data={"reason": reason})
            )
        elif row.status == "running":
            if row.planned_at is None:
                end_plan(conn, row.id, now)
            conn.execute(
                sa.update(fire_t)
                .where(fire_t.c.id == row.id)
                .values(
                    cancel_reason=row.cancel_reason if row.cancel_reason is not None else reason,
                    cancel_lease_until=lease_until,
                )
            )
    return transitions
