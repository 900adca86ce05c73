"""The JSON shape of each thing the CLI prints (fire, item, attempt, event), and the table columns over it.

These shapes are the `--json` contract for scripts: keys are only ever added, never renamed or removed.
Sensitive inputs are masked here, in one place: their names are shown with the value `***`.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from datetime import datetime
from typing import Any

from cyberdesk_runner.cli.render import Column, ago, iso, plain, seconds_between, short, span, when
from cyberdesk_runner.store.usage import UsageSum
from cyberdesk_runner.store.views import AttemptView, EventView, FireView, ItemView

MASK = "***"


def usage_json(usage: UsageSum | None) -> dict[str, Any]:
    """What runs cost, as `jobs`, `fires` and `show` print it: runs that reported usage, tokens, billed minutes."""
    usage = usage or UsageSum()
    return {"runs": usage.runs, "tokens": usage.tokens, "billed_minutes": round(usage.billed_minutes, 2)}


def usage_text(usage: Any) -> str:
    if not usage or not usage.get("runs"):
        return ""
    return f"{usage['tokens']:,} tokens, {usage['billed_minutes']:g} billed min"


def fire_json(fire: FireView, usage: UsageSum | None = None) -> dict[str, Any]:
    counts = fire.counts
    return {
        "id": fire.id,
        "job": fire.job_name,
        "trigger": fire.trigger,
        "status": fire.status,
        "scheduled_for": iso(fire.scheduled_for),
        "created_at": iso(fire.created_at),
        "finished_at": iso(fire.finished_at),
        "retry_of": fire.retry_of,
        "after_fire": fire.upstream_fire_id,
        "items": {
            "total": max(fire.items_total, counts.total),
            "succeeded": counts.succeeded,
            "failed": counts.failed,
            "running": counts.running,
            "pending": counts.pending,
            "cancelled": counts.cancelled,
        },
        # Why the fire was skipped or failed: its own reason, else the error of one of its failed items.
        "reason": fire.skip_reason or fire.error or fire.item_error,
        "usage": usage_json(usage),
    }


def with_steps(
    rows: list[dict[str, Any]], steps: dict[str, list[dict[str, Any]]], now: datetime
) -> list[dict[str, Any]]:
    """Attempt rows with their step runs (multi-step jobs): `step` says where the chain is ("2/3 Update"),
    `steps` lists each step run; single-run attempts have neither (`step` None, `steps` [])."""
    for row in rows:
        chain = steps.get(row["id"], [])
        row["steps"] = [
            {
                **s,
                "started_at": iso(s["started_at"]),
                "ended_at": iso(s["ended_at"]),
                "duration_s": seconds_between(s["started_at"], s["ended_at"] or now)
                if s["started_at"]
                else None,
            }
            for s in chain
        ]
        current = next((s for s in chain if s["status"] != "success"), chain[-1] if chain else None)
        row["step"] = f"{current['step']}/{len(chain)} {current['workflow']}" if current else None
    return rows


def attempt_json(attempt: AttemptView, now: datetime, *, with_output: bool = False) -> dict[str, Any]:
    data = {
        "id": attempt.id,
        "job": attempt.job_name,
        "fire_id": attempt.fire_id,
        "item_id": attempt.item_id,
        "attempt": attempt.number,
        "run_id": attempt.run_id,
        "desktop": attempt.machine_name or attempt.machine_id,
        "desktop_id": attempt.machine_id,
        "status": attempt.status,
        "created_at": iso(attempt.created_at),
        "started_at": iso(attempt.started_at),
        "ended_at": iso(attempt.ended_at),
        # Running attempts count up to now; attempts never started count from their creation.
        "duration_s": seconds_between(attempt.started_at or attempt.created_at, attempt.ended_at or now),
        "age_s": seconds_between(attempt.created_at, now),
        "cancel_requested": attempt.cancel_requested,
        "errors": list(attempt.error or []),
    }
    if with_output:
        data["workflow_id"] = attempt.workflow_id
        data["deadline_at"] = iso(attempt.deadline_at)
        data["create_tries"] = attempt.create_tries
        data["output"] = dict(attempt.output) if attempt.output is not None else None
        data["usage"] = dict(attempt.usage) if attempt.usage is not None else None
    return data


def item_json(item: ItemView, sensitive: Collection[str]) -> dict[str, Any]:
    return {
        "id": item.id,
        "job": item.job_name,
        "fire_id": item.fire_id,
        "seq": item.seq,
        "status": item.status,
        "attempts": item.attempts,
        "desktop": item.machine_name or item.machine_id,
        "desktop_id": item.machine_id,
        "created_at": iso(item.created_at),
        "next_attempt_at": iso(item.next_attempt_at) if item.status == "pending" else None,
        "finished_at": iso(item.finished_at),
        "cancel_requested": item.cancel_requested,
        "last_error": item.last_error,
        "inputs": inputs_json(item.inputs, sensitive),
    }


def event_json(event: EventView) -> dict[str, Any]:
    return {
        "at": iso(event.at),
        "kind": event.kind,
        "fire_id": event.fire_id,
        "item_id": event.item_id,
        "attempt_id": event.attempt_id,
        "run_id": event.run_id,
        "data": dict(event.data) if event.data else {},
    }


def inputs_json(inputs: Mapping[str, Any] | None, sensitive: Collection[str]) -> dict[str, Any]:
    """An item's inputs with the job's sensitive inputs added by name: their values are never in the store,
    and should one turn up under such a name (an override, a run's output) it is masked too."""
    shown = mask(dict(inputs or {}), sensitive)
    return {**shown, **dict.fromkeys(sorted(sensitive), MASK)}


def mask(value: Any, names: Collection[str]) -> Any:
    """`value` with every mapping entry named in `names` replaced by `***`, at any depth."""
    if isinstance(value, Mapping):
        return {k: MASK if k in names else mask(v, names) for k, v in value.items()}
    if isinstance(value, list):
        return [mask(v, names) for v in value]
    return value


def items_text(value: Any) -> str:
    """`{"total": 12, "succeeded": 9, ...}` as `9/12 ok, 2 failed, 1 running`."""
    if not isinstance(value, Mapping) or not value.get("total"):
        return "-"
    parts = [f"{value['succeeded']}/{value['total']} ok"]
    parts += [f"{value[k]} {k}" for k in ("failed", "running", "pending", "cancelled") if value.get(k)]
    return ", ".join(parts)


FIRE_COLUMNS = [
    Column("id", is_id=True),
    Column("job"),
    Column("trigger"),
    Column("status", style_by_value=True),
    Column("scheduled_for", when),
    Column("created_at", when),
    Column("items", items_text),
    Column("retry_of", is_id=True),
    Column("after_fire", is_id=True),
    Column("usage", usage_text),
    Column("reason", short(80)),
]

RUN_COLUMNS = [
    Column("id", is_id=True),
    Column("job"),
    Column("attempt", justify="right"),
    Column("desktop"),
    Column("run_id", is_id=True),
    Column("step"),
    Column("status", style_by_value=True),
    Column("created_at", when),
    Column("duration_s", span, justify="right"),
    Column("errors", short(80)),
]

ITEM_COLUMNS = [
    Column("id", is_id=True),
    Column("seq", justify="right"),
    Column("desktop"),
    Column("status", style_by_value=True),
    Column("attempts", justify="right"),
    Column("last_error", short(80)),
]

EVENT_COLUMNS = [
    Column("at", when),
    Column("kind"),
    Column("item_id", is_id=True),
    Column("attempt_id", is_id=True),
    Column("data", lambda d: short(100)(", ".join(f"{k}={plain(v)}" for k, v in (d or {}).items() if v))),
]

WATCH_COLUMNS = [
    Column("job"),
    Column("desktop"),
    Column("run_id", is_id=True),
    Column("status", style_by_value=True),
    Column("attempt", justify="right"),
    Column("age_s", ago, justify="right"),
    Column("id", is_id=True),
]
