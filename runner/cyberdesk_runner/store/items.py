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
from cyberdesk_runner.store.tables import ACTIVE_ATTEMPT_STATUSES, OPEN_ITEM_STATUSES, attempt_t, item_t

__all__ = ["apply_item_outcome", "cancel_items", "insert_items", "item_outcome", "settle_fires"]


def insert_items(
    core: StoreCore,
    conn: Connection,
    fire_id: str,
    fire: NewFire,
    items: Sequence[NewItem],
    now: datetime,
    *,
    first_seq: int = 0,
) -> None:
    """Insert a fire's items, pending and due now (work for every daemon), numbered from `first_seq` (a fire
    planned in chunks: unique per fire, so no chunk goes in twice)."""
    if not items:
        return
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
            for seq, item in enumerate(items, start=first_seq)
        ],
    )


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
    items = conn.execute(core.lock(sa.select(item_t).where(*chosen).order_by(item_t.c.id))).all()
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
