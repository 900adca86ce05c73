"""Inspection of an emulator for tests and demos: the run timeline, overlaps (must be none) and counters."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from cyberdesk.emulator.clock import iso
from cyberdesk.emulator.state import World

if TYPE_CHECKING:
    from cyberdesk.emulator.emulator import Emulator


def timeline(world: World) -> list[dict[str, Any]]:
    """Every run with its desktop and timestamps, plus each stay on a desktop (retries add stays)."""
    names = {m.id: m.name for m in world.machines.values()}
    return [
        {
            "id": r.id,
            "workflow_id": r.workflow_id,
            "machine_id": r.machine_id,
            "machine_name": names.get(r.machine_id or ""),
            "status": r.status,
            "is_priority": r.is_priority,
            "session_id": r.session_id,
            # Which create call made the run: a soak tells a run its store never recorded from a stranger's.
            "idempotency_key": r.idempotency_key,
            "created_at": iso(r.created_at),
            "started_at": None if r.started_at is None else iso(r.started_at),
            "ended_at": None if r.ended_at is None else iso(r.ended_at),
            "executions": [
                {
                    "machine_id": e.machine_id,
                    "machine_name": names.get(e.machine_id),
                    "started_at": iso(e.started_at),
                    "ended_at": None if e.ended_at is None else iso(e.ended_at),
                    "status": e.status,
                }
                for e in r.executions
            ],
        }
        for r in world.runs.values()
    ]


def overlaps(world: World) -> list[dict[str, Any]]:
    """Pairs of runs that were on one desktop at the same time: must always be empty."""
    stays: dict[str, list[tuple[float, float, str]]] = {}
    for run in world.runs.values():
        for e in run.executions:
            end = float("inf") if e.ended_at is None else e.ended_at
            stays.setdefault(e.machine_id, []).append((e.started_at, end, run.id))
    found = []
    for machine_id, spans in stays.items():
        spans.sort()
        for (_, end, first), (start, _, second) in zip(spans, spans[1:], strict=False):
            if start < end:
                found.append({"machine_id": machine_id, "runs": [first, second]})
    return found


def snapshot(em: Emulator) -> dict[str, Any]:
    """What `GET /_emulator/stats` shows: counters of requests, runs, desktops, webhooks and faults."""
    machines = em.world.machines.values()
    return {
        "requests": em.stats.request_counts(),
        "runs": {
            "created": em.stats.runs_created,
            "create_replays": em.stats.run_create_replays,
            "in_memory": len(em.world.runs),
            "by_status": {s: len(ids) for s, ids in sorted(em.world.runs_by_status.items())},
        },
        "machines": {
            "total": len(em.world.machines),
            "connected": sum(m.status == "connected" for m in machines),
            "busy": sum(m.current_run_id is not None for m in machines),
            "reserved": sum(m.reserved_session_id is not None for m in machines),
        },
        "webhooks": em.webhooks.counters(),
        "idempotency": em.idempotency.counters(),
        "faults": {**em.faults.counts, "settings": em.faults.settings.as_dict()},
        "duplicates": em.stats.duplicates(),
        "overlaps": len(overlaps(em.world)),
        "clock": {"now": iso(em.now()), "speed": em.options.speed},
    }
