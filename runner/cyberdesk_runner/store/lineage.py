"""Jobs after jobs (`after:`): which upstream fires still wait for their downstream fire, and their outputs.

A downstream fire is recorded by the ordinary fire inserts with `NewFire.upstream_fire_id` set: its dedup key
"<job>@after:<upstream fire>" and the UNIQUE index (upstream_fire_id, job_name) make a second insert (a restart,
another daemon seeing the same end) a no-op. So these reads need no lock: whoever asks and acts second finds
the key taken, and an upstream fire that ended while no daemon ran is found here on the next start.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any

import attrs
import sqlalchemy as sa

from cyberdesk_runner.store.core import Aggregate, chunks
from cyberdesk_runner.store.items import fire_window
from cyberdesk_runner.store.tables import attempt_t, fire_t, step_run_t

__all__ = ["Lineage", "UpstreamFire", "UpstreamOutput"]

#: Upstream items read per page of `Lineage.succeeded_outputs`.
OUTPUTS_PAGE = 1_000


@attrs.frozen
class UpstreamFire:
    id: str
    status: str
    finished_at: datetime


@attrs.frozen
class UpstreamOutput:
    """The output of one succeeded item of an upstream fire (its succeeded attempt's), in item order. For a
    multi-step item, `output` is the last step's and `by_alias` holds each aliased step's output."""

    item_id: str
    seq: int
    output: Any
    by_alias: Mapping[str, Any] = attrs.field(factory=dict)


class Lineage(Aggregate):
    """Read-only questions of the `after:` follow-up (`store.lineage`)."""

    def upstream_fires_waiting(
        self,
        job_name: str,
        upstream_job: str,
        statuses: Sequence[str],
        since: datetime,
        limit: int = 50,
    ) -> list[UpstreamFire]:
        """Fires of `upstream_job` that ended in one of `statuses` at or after `since` and have no fire of
        `job_name` after them yet, oldest end first."""
        downstream = fire_t.alias("downstream")
        query = (
            sa.select(fire_t.c.id, fire_t.c.status, fire_t.c.finished_at)
            .where(
                fire_t.c.job_name == upstream_job,
                fire_t.c.status.in_(list(statuses)),
                fire_t.c.finished_at >= since,
                ~sa.exists().where(
                    downstream.c.upstream_fire_id == fire_t.c.id, downstream.c.job_name == job_name
                ),
            )
            .order_by(fire_t.c.finished_at, fire_t.c.id)
            .limit(limit)
        )
        with self.core.read() as conn:
            return [UpstreamFire(r.id, r.status, r.finished_at) for r in conn.execute(query)]

    def succeeded_outputs(self, fire_id: str, *, page: int | None = None) -> Iterator[UpstreamOutput]:
        """The output of each succeeded item of a fire (its succeeded attempt's), in item order, with the outputs
        of its aliased steps when it has steps.

        Read `page` items at a time, each page in a short read of its own (an upstream fire of 100,000 items
        is never held in memory, nor a read transaction kept open while the caller writes): a window of the
        fire's items in seq order (`items.fire_window`), their statuses looked at here, then their attempts by
        item."""
        page = page or OUTPUTS_PAGE
        after = -1
        while True:
            with self.core.read() as conn:
                window = fire_window(conn, fire_id, after, page)
                succeeded = [r for r in window if r.status == "succeeded"]
                found = _succeeded_attempts(conn, [r.id for r in succeeded]) if succeeded else {}
                by_alias = _aliased_steps(conn, [attempt_id for attempt_id, _ in found.values()])
            for row in succeeded:
                if row.id in found:
                    attempt_id, output = found[row.id]
                    yield UpstreamOutput(row.id, row.seq, output, by_alias.get(attempt_id, {}))
            if len(window) < page:
                return
            after = window[-1].seq

    def downstream_fires(self, fire_id: str) -> list[tuple[str, str, str]]:
        """(fire id, job, status) of the fires made after `fire_id`."""
        query = (
            sa.select(fire_t.c.id, fire_t.c.job_name, fire_t.c.status)
            .where(fire_t.c.upstream_fire_id == fire_id)
            .order_by(fire_t.c.job_name)
        )
        with self.core.read() as conn:
            return [(r.id, r.job_name, r.status) for r in conn.execute(query)]


def _succeeded_attempts(conn: sa.Connection, item_ids: Sequence[str]) -> dict[str, tuple[str, Any]]:
    """item id -> (attempt id, output) of each item's last succeeded attempt."""
    found: dict[str, tuple[str, Any]] = {}
    rows = conn.execute(
        sa.select(attempt_t.c.item_id, attempt_t.c.id, attempt_t.c.output)
        .where(attempt_t.c.item_id.in_(list(item_ids)), attempt_t.c.status == "success")
        .order_by(attempt_t.c.item_id, attempt_t.c.number.desc())
    )
    for row in rows:
        found.setdefault(row.item_id, (row.id, row.output))
    return found


def _aliased_steps(conn: sa.Connection, attempt_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
    """attempt id -> {alias: output} of its aliased steps (none for an attempt without steps)."""
    by_alias: dict[str, dict[str, Any]] = {}
    for chunk in chunks(list(attempt_ids)):
        steps = conn.execute(
            sa.select(step_run_t.c.attempt_id, step_run_t.c.alias, step_run_t.c.output).where(
                step_run_t.c.attempt_id.in_(list(chunk)), step_run_t.c.alias.is_not(None)
            )
        )
        for step in steps:
            by_alias.setdefault(step.attempt_id, {})[step.alias] = step.output
    return by_alias
