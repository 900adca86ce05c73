"""Jobs after jobs (`after:`): which upstream fires still wait for their downstream fire, and their outputs.

A downstream fire is recorded by the ordinary fire inserts with `NewFire.upstream_fire_id` set: its dedup key
"<job>@after:<upstream fire>" and the UNIQUE index (upstream_fire_id, job_name) make a second insert (a restart,
another daemon seeing the same end) a no-op. So these reads need no lock: whoever asks and acts second finds
the key taken, and an upstream fire that ended while no daemon ran is found here on the next start.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import attrs
import sqlalchemy as sa

from cyberdesk_runner.store.core import Aggregate, chunks
from cyberdesk_runner.store.tables import attempt_t, fire_t, item_t, step_run_t

__all__ = ["Lineage", "UpstreamFire", "UpstreamOutput"]


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

    def succeeded_outputs(self, fire_id: str) -> list[UpstreamOutput]:
        """The output of each succeeded item of a fire (its succeeded attempt's), in item order, with the outputs
        of its aliased steps when it has steps."""
        query = (
            sa.select(item_t.c.id, item_t.c.seq, attempt_t.c.id.label("attempt_id"), attempt_t.c.output)
            .join(attempt_t, attempt_t.c.item_id == item_t.c.id)
            .where(
                item_t.c.fire_id == fire_id, item_t.c.status == "succeeded", attempt_t.c.status == "success"
            )
            .order_by(item_t.c.seq, attempt_t.c.number.desc())
        )
        found: dict[str, tuple[int, str, Any]] = {}
        by_alias: dict[str, dict[str, Any]] = {}
        with self.core.read() as conn:
            for row in conn.execute(query):
                found.setdefault(row.id, (row.seq, row.attempt_id, row.output))
            for chunk in chunks([attempt_id for _seq, attempt_id, _output in found.values()]):
                steps = conn.execute(
                    sa.select(step_run_t.c.attempt_id, step_run_t.c.alias, step_run_t.c.output).where(
                        step_run_t.c.attempt_id.in_(list(chunk)), step_run_t.c.alias.is_not(None)
                    )
                )
                for step in steps:
                    by_alias.setdefault(step.attempt_id, {})[step.alias] = step.output
        return [
            UpstreamOutput(item_id, seq, output, by_alias.get(attempt_id, {}))
            for item_id, (seq, attempt_id, output) in found.items()
        ]

    def downstream_fires(self, fire_id: str) -> list[tuple[str, str, str]]:
        """(fire id, job, status) of the fires made after `fire_id`."""
        query = (
            sa.select(fire_t.c.id, fire_t.c.job_name, fire_t.c.status)
            .where(fire_t.c.upstream_fire_id == fire_id)
            .order_by(fire_t.c.job_name)
        )
        with self.core.read() as conn:
            return [(r.id, r.job_name, r.status) for r in conn.execute(query)]
