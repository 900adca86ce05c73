"""The outbox's tables and what state changes record in them: alerts to send and result files to write.

`record_consequences` runs inside `StoreCore.append_events`, so the row for "item X failed for good" or "fire Y
ended, write its result file" commits with that state change or not at all: none is lost, none is invented.
Rows are unique by a stable key (an alert's id, a fire's id), so recording the same cause twice adds nothing.

The store never holds an alert's URL or secret: a row names its destination and carries the rendered event
(inputs masked). Senders claim due rows by moving `next_try_at` forward under `FOR UPDATE SKIP LOCKED`
(SQLite has one writer at a time), so with several daemons each row has one sender at a time.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

import attrs
import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlmodel import Field

from cyberdesk_runner.store.records import Transition
from cyberdesk_runner.store.tables import attempt_t, item_t
from cyberdesk_runner.store.types import TableModel, UTCDateTime

#: Alert events that come from the store's own transitions (the others, `store.watch`'s, are raised by the
#: daemons; the config's `AlertEventName` lists them all).
TRANSITION_EVENTS = frozenset({"item_failed", "fire_failed", "fire_succeeded", "fire_skipped"})
#: A fire ending this way gets its result file.
_FIRE_ENDS = frozenset({"fire_succeeded", "fire_failed", "fire_cancelled"})
MASK = "***"


class AlertRow(TableModel, table=True):
    __tablename__ = "alert"
    __table_args__ = (
        sa.Index("ix_alert_due", "status", "next_try_at"),
        sa.Index("ix_alert_destination_sent", "destination", "sent_at"),
    )

    #: Stable per (destination, event): the `webhook-id` of every try.
    id: str = Field(primary_key=True, max_length=40)
    destination: str = Field(max_length=100)
    type: str = Field(max_length=40)
    job_name: str | None = Field(default=None, max_length=100)
    #: pending | sent | failed (gave up after 24 h) | digested (folded into a digest)
    status: str = Field(max_length=16)
    payload: dict[str, Any] = Field(sa_column=sa.Column(sa.JSON, nullable=False))
    created_at: datetime = Field(sa_type=UTCDateTime)
    next_try_at: datetime = Field(sa_type=UTCDateTime)
    tries: int = 0
    sent_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    #: Why the last try failed: a status code or an exception class, never a URL.
    last_error: str | None = None


class ResultFileRow(TableModel, table=True):
    __tablename__ = "result_file"
    __table_args__ = (sa.Index("ix_result_file_status", "status"),)

    fire_id: str = Field(primary_key=True, max_length=40)
    job_name: str = Field(max_length=100)
    format: str = Field(max_length=8)
    #: pending | written | existed (the file was there already: not rewritten) | failed
    status: str = Field(max_length=16)
    created_at: datetime = Field(sa_type=UTCDateTime)
    path: str | None = None
    written_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    error: str | None = None


class DesktopDownRow(TableModel, table=True):
    """A desktop in some job's target seen disconnected, since when (one row per disconnection: deleted when it
    is seen connected again). The first daemon to see it writes `since`; every daemon then names the
    disconnection by it, so its alert has one id however many daemons watch."""

    __tablename__ = "desktop_down"

    machine_id: str = Field(primary_key=True, max_length=36)
    since: datetime = Field(sa_type=UTCDateTime)


alert_t = AlertRow.__table__  # type: ignore[attr-defined]
result_file_t = ResultFileRow.__table__  # type: ignore[attr-defined]
desktop_down_t = DesktopDownRow.__table__  # type: ignore[attr-defined]


@attrs.frozen
class AlertRoute:
    """Which events go to a destination (by name: its URL and secret stay with the daemon)."""

    name: str
    on: frozenset[str]
    #: None: every job.
    jobs: frozenset[str] | None = None

    def wants(self, event: str, jobs: Iterable[str] | None) -> bool:
        """`jobs`: those the event concerns; None for an event that concerns no job (a lost daemon), which goes
        to every route that asks for its type whatever its `jobs`."""
        if event not in self.on:
            return False
        return self.jobs is None or jobs is None or not self.jobs.isdisjoint(jobs)


@attrs.frozen
class OutboxRules:
    """What the outbox records, set by the daemon from its config and job files."""

    routes: tuple[AlertRoute, ...] = ()
    #: job name -> format of its result file (csv | jsonl).
    result_files: Mapping[str, str] = attrs.field(factory=dict)
    #: job name -> names of its sensitive inputs (masked in alerts).
    sensitive: Mapping[str, tuple[str, ...]] = attrs.field(factory=dict)


@attrs.frozen
class AlertEvent:
    """An event to alert on: `subject` (an item, fire, desktop or daemon id) makes its id stable."""

    type: str
    subject: str
    job: str | None = None
    fire: str | None = None
    item: str | None = None
    desktop: str | None = None
    error: str | None = None
    inputs: Mapping[str, Any] | None = None
    extra: Mapping[str, Any] = attrs.field(factory=dict)
    #: For an event of no one job: the jobs it concerns (a desktop: the jobs whose target includes it), for
    #: routes with `jobs:`; None: it concerns no job in particular.
    jobs: tuple[str, ...] | None = None

    @property
    def concerns(self) -> tuple[str, ...] | None:
        return (self.job,) if self.job is not None else self.jobs


def alert_id(destination: str, event_type: str, subject: str) -> str:
    digest = hashlib.sha256(f"{destination}\0{event_type}\0{subject}".encode()).hexdigest()
    return f"alrt_{digest[:32]}"


def alert_payload(event: AlertEvent, alert: str, at: datetime) -> dict[str, Any]:
    return {
        "type": event.type,
        "id": alert,
        "at": at.isoformat(),
        "job": event.job,
        "fire": event.fire,
        "item": event.item,
        "desktop": event.desktop,
        "error": event.error,
        "inputs": dict(event.inputs) if event.inputs is not None else None,
        **event.extra,
    }


InsertOrNothing = Callable[[sa.Table, list[str]], Any]


def insert_alerts(
    conn: Connection,
    now: datetime,
    events: Sequence[AlertEvent],
    routes: Sequence[AlertRoute],
    insert_or_nothing: InsertOrNothing,
) -> int:
    """One row per (event, destination that wants it); an event already recorded adds nothing. Returns rows
    offered."""
    rows = []
    for event in events:
        for route in routes:
            if route.wants(event.type, event.concerns):
                ident = alert_id(route.name, event.type, event.subject)
                rows.append(
                    {
                        "id": ident,
                        "destination": route.name,
                        "type": event.type,
                        "job_name": event.job,
                        "status": "pending",
                        "payload": alert_payload(event, ident, now),
                        "created_at": now,
                        "next_try_at": now,
                        "tries": 0,
                    }
                )
    if rows:
        conn.execute(insert_or_nothing(alert_t, ["id"]), rows)
    return len(rows)


def record_consequences(
    conn: Connection,
    now: datetime,
    transitions: Sequence[Transition],
    rules: OutboxRules,
    insert_or_nothing: InsertOrNothing,
) -> None:
    """Alerts and result-file claims caused by `transitions`, in their transaction."""
    ended = [
        t for t in transitions if t.kind in _FIRE_ENDS and t.fire_id and t.job_name in rules.result_files
    ]
    if ended:
        conn.execute(
            insert_or_nothing(result_file_t, ["fire_id"]),
            [
                {
                    "fire_id": t.fire_id,
                    "job_name": t.job_name,
                    "format": rules.result_files[t.job_name],
                    "status": "pending",
                    "created_at": now,
                }
                for t in ended
            ],
        )
    if not rules.routes:
        return
    wanted = [
        t
        for t in transitions
        if t.kind in TRANSITION_EVENTS
        and any(r.wants(t.kind, (t.job_name,) if t.job_name else None) for r in rules.routes)
    ]
    if not wanted:
        return
    item_ids = sorted({t.item_id for t in wanted if t.item_id})
    items = {}
    if item_ids:
        final = sa.and_(attempt_t.c.item_id == item_t.c.id, attempt_t.c.number == item_t.c.attempts)
        items = {
            r.id: r
            for r in conn.execute(
                sa.select(
                    item_t.c.id,
                    item_t.c.inputs,
                    item_t.c.last_error,
                    sa.func.coalesce(
                        attempt_t.c.machine_name, item_t.c.machine_name, item_t.c.machine_id
                    ).label("desktop"),
                )
                .select_from(item_t.outerjoin(attempt_t, final))
                .where(item_t.c.id.in_(item_ids))
            )
        }
    events = []
    for t in wanted:
        data = t.data or {}
        item = items.get(t.item_id or "")
        sensitive = rules.sensitive.get(t.job_name or "", ())
        inputs = None
        if item is not None:
            inputs = {k: (MASK if k in sensitive else v) for k, v in (item.inputs or {}).items()}
            inputs |= dict.fromkeys(sensitive, MASK)
        error = data.get("reason") or data.get("error")
        if item is not None and item.last_error:
            error = item.last_error
        extra = {k: data[k] for k in ("succeeded", "failed", "cancelled") if k in data}
        events.append(
            AlertEvent(
                t.kind,
                t.item_id or t.fire_id or t.job_name,
                job=t.job_name or None,
                fire=t.fire_id,
                item=t.item_id,
                desktop=item.desktop if item is not None else None,
                error=str(error) if error else None,
                inputs=inputs,
                extra={"items": extra} if extra else {},
            )
        )
    insert_alerts(conn, now, events, rules.routes, insert_or_nothing)


@attrs.frozen
class DueAlert:
    id: str
    destination: str
    type: str
    job_name: str | None
    payload: Mapping[str, Any]
    created_at: datetime
    tries: int


@attrs.frozen
class AlertView:
    id: str
    destination: str
    type: str
    job_name: str | None
    status: str
    created_at: datetime
    tries: int
    sent_at: datetime | None
    next_try_at: datetime
    last_error: str | None


def due_alert(row: Any) -> DueAlert:
    return DueAlert(row.id, row.destination, row.type, row.job_name, row.payload, row.created_at, row.tries)


def alert_view(row: Any) -> AlertView:
    return AlertView(
        row.id,
        row.destination,
        row.type,
        row.job_name,
        row.status,
        row.created_at,
        row.tries,
        row.sent_at,
        row.next_try_at,
        row.last_error,
    )


def backoff(tries: int) -> timedelta:
    """Delay after the `tries`-th failed try: 5 s doubling, at most an hour (24 h of tries is ~30 of them)."""
    return timedelta(seconds=min(5 * 2 ** max(tries - 1, 0), 3600))
