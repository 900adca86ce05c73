"""What the work cost: each attempt's run usage, summed per fire and per job, and the budget stop (`store.usage`).

An attempt keeps its run's `usage_metadata` as sent (`attempt.usage`, free-form: the real API documents no keys)
and the two figures the runner sums, read from it by `usage_figures`: tokens and billed seconds. A run that
did not say has None, counted as nothing.

The budget stop (`stop_fires_over_budget`) runs inside the transaction that records the usage
(`tracking._finish_attempts`): once a fire's tokens pass its job's `budget.tokens_per_fire`, its pending items
(retries included) fail in that transaction, so no daemon creates another run for it, and the fire records why
(`fire.error`, a `fire_over_budget` event; the `fire_failed` alert carries the reason). Runs already in flight
finish.

Locks: the budget stop locks the fires' pending items (by id, after the attempts the caller holds), and leaves the
fires to `settle_fires` (last, the one order attempt -> item -> fire).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

import attrs
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from cyberdesk_runner.store.core import Aggregate, StoreCore, chunks
from cyberdesk_runner.store.items import apply_item_outcome
from cyberdesk_runner.store.records import Fail, Transition
from cyberdesk_runner.store.tables import attempt_t, fire_t, item_t

__all__ = ["Usage", "UsageSum", "stop_fires_over_budget", "usage_figures"]


@attrs.frozen
class UsageSum:
    """Usage of several runs: how many reported any, their tokens and their billed seconds."""

    runs: int = 0
    tokens: int = 0
    billed_seconds: float = 0.0

    @property
    def billed_minutes(self) -> float:
        return self.billed_seconds / 60


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


def usage_figures(usage: Mapping[str, Any] | None) -> tuple[int | None, float | None]:
    """(tokens, billed seconds) of a run's `usage_metadata`; None for what it does not say.

    Tokens: `total_tokens`, else `input_tokens` + `output_tokens` (whichever are there). Billed seconds:
    `billed_seconds`, else `billed_minutes` x 60. Values that are not finite numbers count as missing.
    """
    if not usage:
        return None, None
    tokens = _number(usage.get("total_tokens"))
    if tokens is None:
        parts = [_number(usage.get(k)) for k in ("input_tokens", "output_tokens")]
        known = [p for p in parts if p is not None]
        tokens = sum(known) if known else None
    billed = _number(usage.get("billed_seconds"))
    if billed is None and (minutes := _number(usage.get("billed_minutes"))) is not None:
        billed = minutes * 60
    return (int(tokens) if tokens is not None else None), billed


_SUMS = (
    sa.func.count(attempt_t.c.usage),
    sa.func.coalesce(sa.func.sum(attempt_t.c.tokens), 0),
    sa.func.coalesce(sa.func.sum(attempt_t.c.billed_seconds), 0.0),
)


def _sum(row: Any) -> UsageSum:
    return UsageSum(int(row[1]), int(row[2]), float(row[3]))


class Usage(Aggregate):
    """Reads of what fires and jobs cost (`store.usage`)."""

    def by_fire(self, fire_ids: Sequence[str]) -> dict[str, UsageSum]:
        """Each fire's usage (fires whose runs reported none are left out)."""
        found: dict[str, UsageSum] = {}
        with self.core.read() as conn:
            for chunk in chunks(list(fire_ids)):
                query = (
                    sa.select(attempt_t.c.fire_id, *_SUMS)
                    .where(attempt_t.c.fire_id.in_(list(chunk)), attempt_t.c.usage.is_not(None))
                    .group_by(attempt_t.c.fire_id)
                )
                found |= {row[0]: _sum(row) for row in conn.execute(query)}
        return found

    def by_job(
        self, job_names: Iterable[str] | None = None, *, since: datetime | None = None
    ) -> dict[str, UsageSum]:
        """Each job's usage (of attempts created since `since`, when given)."""
        query = sa.select(attempt_t.c.job_name, *_SUMS).where(attempt_t.c.usage.is_not(None))
        if job_names is not None:
            query = query.where(attempt_t.c.job_name.in_(list(job_names)))
        if since is not None:
            query = query.where(attempt_t.c.created_at >= since)
        with self.core.read() as conn:
            return {row[0]: _sum(row) for row in conn.execute(query.group_by(attempt_t.c.job_name))}


def _whole_number(limit: Any) -> int | None:
    """A job's `budget.tokens_per_fire` as the store holds it: a budget only when a whole number."""
    return int(limit) if isinstance(limit, int) and not isinstance(limit, bool) else None


def stop_fires_over_budget(
    core: StoreCore, conn: Connection, fire_ids: Iterable[str], now: datetime, settle: set[str]
) -> list[Transition]:
    """Fail the pending items of the running fires among `fire_ids` whose tokens passed their job's budget.

    Runs in the caller's transaction, after the usage it judges is written; idempotent (a fire stopped before
    has no pending items left, and keeps the reason it recorded first). Fires to settle are added to `settle`.
    """
    ids = sorted(set(fire_ids))
    if not ids:
        return []
    fires = core.sql.fire_budgets.rows(conn, {"ids": ids})
    budgets = {f.id: (f, limit) for f in fires if (limit := _whole_number(f.tokens_per_fire)) is not None}
    if not budgets:
        return []
    spent: dict[str, int] = dict(
        conn.execute(
            sa.select(attempt_t.c.fire_id, sa.func.coalesce(sa.func.sum(attempt_t.c.tokens), 0))
            .where(attempt_t.c.fire_id.in_(list(budgets)))
            .group_by(attempt_t.c.fire_id)
        ).all()
    )
    transitions: list[Transition] = []
    for fire_id, (fire, limit) in budgets.items():
        tokens = int(spent.get(fire_id, 0))
        if tokens <= limit:
            continue
        reason = f"budget: {tokens:,} tokens used, over the job's budget of {limit:,} tokens per fire"
        if fire.error is None:
            conn.execute(sa.update(fire_t).where(fire_t.c.id == fire_id).values(error=reason))
            transitions.append(
                Transition(
                    "fire_over_budget",
                    fire.job_name,
                    fire_id=fire_id,
                    data={"tokens": tokens, "tokens_per_fire": limit, "reason": reason},
                )
            )
        pending = conn.execute(
            core.lock(
                sa.select(item_t)
                .where(item_t.c.fire_id == fire_id, item_t.c.status == "pending")
                .order_by(item_t.c.id)
            )
        ).all()
        for item in pending:
            transitions += apply_item_outcome(core, conn, item, Fail(fire.error or reason), None, now, settle)
    return transitions
