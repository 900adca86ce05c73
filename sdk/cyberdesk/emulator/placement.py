"""The waiting room of `scheduling` runs, bucketed so a free desktop only looks at a few queue heads.

Buckets: runs pinned to a desktop, runs of a session, and runs constrained by a set of pools (the empty
set means "any desktop"). Each bucket is a heap; entries of runs that left the queue are skipped lazily
(their `generation` no longer matches), so removing a run is O(1).
"""

from __future__ import annotations

import heapq
from collections.abc import Mapping
from typing import TypeVar

from cyberdesk.emulator.records import Machine, Run

# (0 for priority runs else 1, created_at, seq): priority first, then FIFO.
Rank = tuple[int, float, int]
_Entry = tuple[Rank, str, int]
_K = TypeVar("_K")


def rank(run: Run) -> Rank:
    return (0 if run.is_priority else 1, run.created_at, run.seq)


def _session_rank(run: Run) -> Rank:
    # Within a session, order is creation order: priority never reorders a session's steps.
    return (0, run.created_at, run.seq)


def fits(run: Run, machine: Machine) -> bool:
    """Whether a run that is not bound to a session may go to this desktop."""
    if run.requested_machine_id is not None:
        return run.requested_machine_id == machine.id
    return not run.pool_ids or machine.pool_ids.issuperset(run.pool_ids)


class RunQueue:
    def __init__(self, runs: Mapping[str, Run], session_machines: Mapping[str, str]) -> None:
        self._runs = runs
        self._session_machines = session_machines
        self._pinned: dict[str, list[_Entry]] = {}
        self._pooled: dict[frozenset[str], list[_Entry]] = {}
        self._sessions: dict[str, list[_Entry]] = {}

    def push(self, run: Run) -> None:
        if run.session_id is not None:
            heapq.heappush(
                self._sessions.setdefault(run.session_id, []), (_session_rank(run), run.id, run.generation)
            )
        elif run.requested_machine_id is not None:
            heapq.heappush(
                self._pinned.setdefault(run.requested_machine_id, []), (rank(run), run.id, run.generation)
            )
        else:
            key = frozenset(run.pool_ids or ())
            heapq.heappush(self._pooled.setdefault(key, []), (rank(run), run.id, run.generation))

    def bound_desktops(self) -> set[str] | None:
        """The desktops the waiting runs are bound to (pinned runs, sessions with a desktop), or None when some
        waiting run may go to any desktop that fits (pool-constrained runs, a session's first run). A free
        desktop outside this set has nothing to take: with thousands of idle desktops, placement looks only
        at these instead of at every free one."""
        if self._pooled or any(s not in self._session_machines for s in self._sessions):
            return None
        bound = set(self._pinned)
        bound.update(self._session_machines[s] for s in self._sessions)
        return bound

    def best_for(self, machine: Machine) -> Run | None:
        """The run this free desktop should take now, or None."""
        if machine.reserved_session_id is not None:
            return self._head(self._sessions, machine.reserved_session_id)
        best: Run | None = None
        for run in self._candidates(machine):
            if best is None or rank(run) < rank(best):
                best = run
        return best

    def _candidates(self, machine: Machine) -> list[Run]:
        found: list[Run] = []
        pinned = self._head(self._pinned, machine.id)
        if pinned is not None:
            found.append(pinned)
        for pools in list(self._pooled):
            if pools <= machine.pool_ids:
                head = self._head(self._pooled, pools)
                if head is not None:
                    found.append(head)
        # A session with no desktop yet: its first waiting run reserves one under its own constraints.
        for session_id in list(self._sessions):
            if session_id not in self._session_machines:
                head = self._head(self._sessions, session_id)
                if head is not None and fits(head, machine):
                    found.append(head)
        return found

    def _head(self, buckets: dict[_K, list[_Entry]], key: _K) -> Run | None:
        heap = buckets.get(key)
        while heap:
            _, run_id, generation = heap[0]
            run = self._runs.get(run_id)
            if run is not None and run.generation == generation and run.status == "scheduling":
                return run
            heapq.heappop(heap)
        buckets.pop(key, None)
        return None
