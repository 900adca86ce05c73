"""The read-only questions of the CLI (`fires`, `runs`, `show`, `watch`, `status`): `store.queries`.

Each method is one read transaction; none locks anything. Listings are bounded: they read the newest `limit` rows
in the order of an index ((job_name, created_at), (created_at), (status, created_at), (fire_id, created_at),
item_id; a fire's items by (fire_id, seq)), and aggregate item counts only for the fires they return, so they
stay fast with millions of attempts in the store.

Why one module and not a part of each aggregate module: these reads answer the CLI's questions in the CLI's
shapes (`views`), and most cross the aggregates (a fire with its items' counts and an item's error, an id that
may name a fire, an item, an attempt or a run). They hold no rules of their own, so they live together, apart
from the transactions whose rules the aggregate modules hold. Reads the daemon relies on stay with their
aggregate (`fires.of_job`, `tracking.in_flight`, ...).
"""

from __future__ import annotations

import heapq
import re
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from cyberdesk_runner.store.core import Aggregate
from cyberdesk_runner.store.tables import OPEN_ITEM_STATUSES, attempt_t, daemon_t, event_t, fire_t, item_t
from cyberdesk_runner.store.views import (
    AttemptQuery,
    AttemptView,
    DaemonView,
    EventPage,
    EventView,
    FireView,
    ItemCounts,
    ItemView,
    Ref,
)

_RUN_ID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_ITEM_STATUSES = ("pending", "running", "succeeded", "failed", "cancelled")


class Queries(Aggregate):
    # -- ids -------------------------------------------------------------------------------------------

    def resolve(self, ref: str) -> Ref | None:
        """What `ref` names: a fire, item or attempt id, or a Cyberdesk run id (its attempt). None if nothing."""
        ref = ref.strip()
        with self.core.read() as conn:
            if ref.startswith("fire_"):
                row = conn.execute(
                    sa.select(fire_t.c.id, fire_t.c.job_name, fire_t.c.status).where(fire_t.c.id == ref)
                ).first()
                return Ref("fire", row.id, row.job_name, row.id, status=row.status) if row else None
            if ref.startswith("item_"):
                row = conn.execute(
                    sa.select(item_t.c.id, item_t.c.job_name, item_t.c.fire_id, item_t.c.status).where(
                        item_t.c.id == ref
                    )
                ).first()
                return Ref("item", row.id, row.job_name, row.fire_id, row.id, row.status) if row else None
            columns = (
                attempt_t.c.id,
                attempt_t.c.job_name,
                attempt_t.c.fire_id,
                attempt_t.c.item_id,
                attempt_t.c.status,
            )
            if ref.startswith("att_"):
                row = conn.execute(sa.select(*columns).where(attempt_t.c.id == ref)).first()
            elif _RUN_ID.match(ref):
                row = conn.execute(sa.select(*columns).where(attempt_t.c.run_id == ref.lower())).first()
            else:
                return None
        return Ref("attempt", row.id, row.job_name, row.fire_id, row.item_id, row.status) if row else None

    # -- fires -----------------------------------------------------------------------------------------

    def fire_views(
        self, *, job: str | None = None, since: datetime | None = None, limit: int = 20
    ) -> list[FireView]:
        """The newest fires (of one job, created since `since`), newest first, with their item counts."""
        query = sa.select(fire_t)
        if job is not None:
            query = query.where(fire_t.c.job_name == job)
        if since is not None:
            query = query.where(fire_t.c.created_at >= since)
        query = query.order_by(fire_t.c.created_at.desc(), fire_t.c.id.desc()).limit(limit)
        with self.core.read() as conn:
            rows = conn.execute(query).all()
            return self._with_counts(conn, rows)

    def fire_view(self, fire_id: str) -> FireView | None:
        with self.core.read() as conn:
            rows = conn.execute(sa.select(fire_t).where(fire_t.c.id == fire_id)).all()
            views = self._with_counts(conn, rows)
        return views[0] if views else None

    def _with_counts(self, conn: Connection, rows: Sequence[Any]) -> list[FireView]:
        ids = [r.id for r in rows]
        if not ids:
            return []
        counts: dict[str, dict[str, int]] = {fire_id: {} for fire_id in ids}
        for fire_id, status, count in conn.execute(
            sa.select(item_t.c.fire_id, item_t.c.status, sa.func.count())
            .where(item_t.c.fire_id.in_(ids))
            .group_by(item_t.c.fire_id, item_t.c.status)
        ):
            counts[fire_id][status] = count
        errors: dict[str, str] = dict(
            conn.execute(
                sa.select(item_t.c.fire_id, sa.func.max(item_t.c.last_error))
                .where(item_t.c.fire_id.in_(ids))
                .where(item_t.c.status == "failed")
                .group_by(item_t.c.fire_id)
            ).all()
        )
        return [_fire_view(r, _counts(counts[r.id]), errors.get(r.id)) for r in rows]

    # -- items -----------------------------------------------------------------------------------------

    def item_views(self, fire_id: str, *, limit: int | None = None, offset: int = 0) -> list[ItemView]:
        """A fire's items in order: `limit` of them after the first `offset` (a page of `show F`), read in the
        order of ux_item_fire_seq, so a page of a 100,000-item fire costs no sort."""
        query = sa.select(item_t).where(item_t.c.fire_id == fire_id).order_by(item_t.c.seq, item_t.c.id)
        if limit is not None:
            query = query.limit(limit)
        if offset:
            query = query.offset(offset)
        with self.core.read() as conn:
            return [_item_view(r) for r in conn.execute(query)]

    def item_view(self, item_id: str) -> ItemView | None:
        with self.core.read() as conn:
            row = conn.execute(sa.select(item_t).where(item_t.c.id == item_id)).first()
        return _item_view(row) if row else None

    def open_items_by_job(self, job: str | None = None) -> dict[str, ItemCounts]:
        """Items pending or running, per job (for `watch`)."""
        query = (
            sa.select(item_t.c.job_name, item_t.c.status, sa.func.count())
            .where(item_t.c.status.in_(OPEN_ITEM_STATUSES))
            .group_by(item_t.c.job_name, item_t.c.status)
        )
        if job is not None:
            query = query.where(item_t.c.job_name == job)
        per_job: dict[str, dict[str, int]] = {}
        with self.core.read() as conn:
            for name, status, count in conn.execute(query):
                per_job.setdefault(name, {})[status] = count
        return {name: _counts(c) for name, c in sorted(per_job.items())}

    # -- attempts --------------------------------------------------------------------------------------

    def attempt_views(self, query: AttemptQuery) -> list[AttemptView]:
        """The newest attempts that match `query`, newest first."""
        base = sa.select(attempt_t)
        if query.job is not None:
            base = base.where(attempt_t.c.job_name == query.job)
        if query.fire_id is not None:
            base = base.where(attempt_t.c.fire_id == query.fire_id)
        if query.item_id is not None:
            base = base.where(attempt_t.c.item_id == query.item_id)
        if query.since is not None:
            base = base.where(attempt_t.c.created_at >= query.since)
        # Alternatives (several statuses; a desktop's id or name) become one bounded query each, merged:
        # `status IN (...) ORDER BY created_at LIMIT n` would read every row of those statuses, while
        # `status = ? ORDER BY created_at LIMIT n` walks the (status, created_at) index and stops after n.
        statuses = (
            [attempt_t.c.status == s for s in dict.fromkeys(query.statuses)] if query.statuses else [None]
        )
        machines = (
            [attempt_t.c.machine_id == query.machine, attempt_t.c.machine_name == query.machine]
            if query.machine is not None
            else [None]
        )
        newest = (attempt_t.c.created_at.desc(), attempt_t.c.id.desc())
        with self.core.read() as conn:
            groups = [
                conn.execute(
                    base.where(*(c for c in (status, machine) if c is not None))
                    .order_by(*newest)
                    .limit(query.limit)
                ).all()
                for status in statuses
                for machine in machines
            ]
        rows = groups[0] if len(groups) == 1 else _newest_first(groups, query.limit)
        return [_attempt_view(r) for r in rows]

    def attempt_view(self, attempt_id: str) -> AttemptView | None:
        with self.core.read() as conn:
            row = conn.execute(sa.select(attempt_t).where(attempt_t.c.id == attempt_id)).first()
        return _attempt_view(row) if row else None

    # -- events ----------------------------------------------------------------------------------------

    def event_page(
        self,
        *,
        fire_id: str | None = None,
        item_id: str | None = None,
        attempt_id: str | None = None,
        limit: int | None = 100,
    ) -> EventPage:
        """The newest `limit` events of one fire, item or attempt (exactly one given), oldest first."""
        given = [
            (c, v)
            for c, v in (
                (event_t.c.fire_id, fire_id),
                (event_t.c.item_id, item_id),
                (event_t.c.attempt_id, attempt_id),
            )
            if v is not None
        ]
        if len(given) != 1:
            raise ValueError("give exactly one of fire_id, item_id or attempt_id")
        column, value = given[0]
        query = sa.select(event_t).where(column == value).order_by(event_t.c.id.desc())
        if limit is not None:
            query = query.limit(limit)
        with self.core.read() as conn:
            rows = conn.execute(query).all()
            total = len(rows)
            if limit is not None and total == limit:
                total = conn.execute(
                    sa.select(sa.func.count()).select_from(event_t).where(column == value)
                ).scalar_one()
        return EventPage([_event_view(r) for r in reversed(rows)], total)

    # -- daemons ---------------------------------------------------------------------------------------

    def daemon_views(self, *, limit: int = 10) -> list[DaemonView]:
        """Daemons by latest heartbeat: the running ones first, then the most recently stopped."""
        query = (
            sa.select(daemon_t)
            .order_by(daemon_t.c.stopped_at.is_not(None), daemon_t.c.heartbeat_at.desc())
            .limit(limit)
        )
        with self.core.read() as conn:
            return [
                DaemonView(r.id, r.host, r.pid, r.started_at, r.heartbeat_at, r.stopped_at, r.health)
                for r in conn.execute(query)
            ]


def _newest_first(groups: Iterable[Sequence[Any]], limit: int) -> list[Any]:
    """The newest `limit` rows of groups that are each newest first; a row in two groups counts once."""
    merged = heapq.merge(*groups, key=lambda r: (r.created_at, r.id), reverse=True)
    rows: dict[str, Any] = {}
    for row in merged:
        if len(rows) == limit:
            break
        rows.setdefault(row.id, row)
    return list(rows.values())


def _counts(by_status: dict[str, int]) -> ItemCounts:
    return ItemCounts(**{s: by_status.get(s, 0) for s in _ITEM_STATUSES})


def _fire_view(row: Any, counts: ItemCounts, item_error: str | None) -> FireView:
    return FireView(
        id=row.id,
        job_name=row.job_name,
        trigger=row.trigger,
        status=row.status,
        scheduled_for=row.scheduled_for,
        created_at=row.created_at,
        planned_at=row.planned_at,
        finished_at=row.finished_at,
        skip_reason=row.skip_reason,
        error=row.error,
        retry_of=row.retry_of,
        upstream_fire_id=row.upstream_fire_id,
        input_overrides=row.input_overrides,
        items_total=row.items_total,
        counts=counts,
        item_error=item_error,
    )


def _item_view(row: Any) -> ItemView:
    return ItemView(
        id=row.id,
        fire_id=row.fire_id,
        job_name=row.job_name,
        seq=row.seq,
        inputs=row.inputs,
        machine_id=row.machine_id,
        machine_name=row.machine_name,
        status=row.status,
        attempts=row.attempts,
        next_attempt_at=row.next_attempt_at,
        created_at=row.created_at,
        finished_at=row.finished_at,
        last_error=row.last_error,
        cancel_requested=row.cancel_requested,
    )


def _attempt_view(row: Any) -> AttemptView:
    return AttemptView(
        id=row.id,
        item_id=row.item_id,
        fire_id=row.fire_id,
        job_name=row.job_name,
        number=row.number,
        run_id=row.run_id,
        workflow_id=row.workflow_id,
        machine_id=row.machine_id,
        machine_name=row.machine_name,
        status=row.status,
        created_at=row.created_at,
        started_at=row.started_at,
        ended_at=row.ended_at,
        deadline_at=row.deadline_at,
        cancel_requested=row.cancel_requested,
        create_tries=row.create_tries,
        error=row.error,
        output=row.output,
        usage=getattr(row, "usage", None),
    )


def _event_view(row: Any) -> EventView:
    return EventView(
        id=row.id,
        at=row.at,
        kind=row.kind,
        job_name=row.job_name,
        fire_id=row.fire_id,
        item_id=row.item_id,
        attempt_id=row.attempt_id,
        run_id=row.run_id,
        data=row.data,
    )
