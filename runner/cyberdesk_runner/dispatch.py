"""Item -> attempt -> Cyberdesk run, exactly once.

1. In one store transaction, due items get desktops and attempts (with fresh idempotency keys) are recorded.
2. Only then are the create calls made, each with its attempt's key as `Idempotency-Key`.
3. A create whose outcome is unknown (timeout, dropped connection, 5xx, crash) leaves the attempt in `creating`;
   it is repeated later with the same key, so the API replays the first answer instead of making a second run.
"""

from __future__ import annotations

import asyncio
import random
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

import attrs

from cyberdesk import ApiError, CyberdeskClient, RunCreate, RunResponse
from cyberdesk_runner.catalog import JobCatalog
from cyberdesk_runner.clock import Clock
from cyberdesk_runner.fleet import Desktop, Fleet
from cyberdesk_runner.metrics import Metrics
from cyberdesk_runner.spec import JobFileError, resolve_sensitive_inputs
from cyberdesk_runner.store import Store
from cyberdesk_runner.store.records import (
    Assignment,
    AttemptRef,
    AttemptVerdict,
    DispatchView,
    FinishedAttempt,
    ItemOutcome,
    RunObservation,
    Transition,
)

#: Longest wait before repeating a create call whose outcome is unknown.
_MAX_SETTLE_DELAY = timedelta(seconds=60)


@attrs.define
class CreateResults:
    created: list[tuple[str, RunObservation]] = attrs.Factory(list)
    rejected: list[AttemptVerdict] = attrs.Factory(list)
    unknown: list[tuple[AttemptRef, str]] = attrs.Factory(list)


class Dispatcher:
    def __init__(
        self,
        *,
        store: Store,
        client: CyberdeskClient,
        catalog: JobCatalog,
        fleet: Callable[[], Fleet],
        clock: Clock,
        metrics: Metrics,
        outcome: Callable[[datetime], Callable[[FinishedAttempt], ItemOutcome]],
        on_transitions: Callable[[Sequence[Transition]], None],
        runs_recorded: Callable[[Sequence[str]], Awaitable[None]] | None = None,
        max_in_flight_requests: int = 32,
        lease: timedelta = timedelta(seconds=30),
        batch_size: int = 200,
        rng: random.Random | None = None,
    ) -> None:
        self._store = store
        self._client = client
        self._catalog = catalog
        self._fleet = fleet
        self._clock = clock
        self._metrics = metrics
        self._outcome = outcome
        self._on_transitions = on_transitions
        self._runs_recorded = runs_recorded
        self._requests = asyncio.Semaphore(max_in_flight_requests)
        self._lease = lease
        self._batch_size = batch_size
        self._rng = rng or random.Random()
        #: When each desktop last got work from us, to spread items evenly over a target's desktops.
        self._last_used: dict[str, datetime] = {}
        #: Items pinned to a desktop that has been gone for longer than the job's timeout -> why.
        self._stranded: dict[str, str] = {}

    async def dispatch_once(self) -> int:
        """Start attempts for due items; returns how many create calls were made."""
        now = self._clock.now()
        self._stranded = {}
        refs = await asyncio.to_thread(
            self._store.dispatch, now, self._choose, limit=self._batch_size, lease=self._lease
        )
        if refs:
            await self._create_all(refs, now)
        if self._stranded:
            for reason, item_ids in _group(self._stranded).items():
                transitions = await asyncio.to_thread(self._store.fail_pending_items, item_ids, reason, now)
                self._on_transitions(transitions)
        return len(refs)

    async def settle_once(self) -> int:
        """Repeat create calls whose outcome is unknown, with their original keys."""
        now = self._clock.now()
        refs = await asyncio.to_thread(self._store.attempts_to_settle, now, lease=self._lease)
        if refs:
            await self._create_all(refs, now)
        return len(refs)

    # -- choosing desktops -------------------------------------------------------------------------------

    def _choose(self, view: DispatchView) -> list[Assignment]:
        """Runs inside the dispatch transaction: pick a free desktop for as many due items as limits allow."""
        now = self._clock.now()
        fleet = self._fleet()
        busy = set(view.busy_desktops)
        active = dict(view.active_by_job)
        candidates: dict[str, deque[Desktop]] = {}
        chosen: list[Assignment] = []
        for item in view.due:
            job = self._catalog.get(item.job_name)
            if job is None or job.workflow_id is None:
                continue
            spec = job.loaded.spec
            if active.get(job.name, 0) >= spec.concurrency:
                continue
            if item.machine_id is not None:
                desktop = fleet.get(item.machine_id)
                if desktop is None or not desktop.connected:
                    # Waiting for its own desktop to come back, but not for ever: a job's timeout bounds it.
                    if item.due_since is not None and now - item.due_since > spec.timeout:
                        state = "no longer exists" if desktop is None else "is disconnected"
                        self._stranded[item.id] = (
                            f"its desktop {desktop.label if desktop else item.machine_id} {state} "
                            f"(waited longer than the job's timeout)"
                        )
                    continue
                if desktop.id in busy:
                    continue
            else:
                free = candidates.get(job.name)
                if free is None:
                    # Once per job and round: its free desktops, least recently given work first.
                    never = datetime.min.replace(tzinfo=now.tzinfo)
                    ordered = [d for d in fleet.select(job.target) if d.connected and d.id not in busy]
                    ordered.sort(key=lambda d: self._last_used.get(d.id, never))
                    free = candidates[job.name] = deque(ordered)
                while free and free[0].id in busy:  # taken meanwhile by another job's item
                    free.popleft()
                if not free:
                    continue
                desktop = free.popleft()
            busy.add(desktop.id)
            active[job.name] = active.get(job.name, 0) + 1
            self._last_used[desktop.id] = now
            chosen.append(Assignment(item.id, job.workflow_id, desktop.id, desktop.name, now + spec.timeout))
        return chosen

    # -- create calls ----------------------------------------------------------------------------------

    async def _create_all(self, refs: Sequence[AttemptRef], now: datetime) -> None:
        results = CreateResults()
        await asyncio.gather(*(self._create(ref, results) for ref in refs))
        done = self._clock.now()
        transitions: list[Transition] = []
        policy = self._outcome(done)
        if results.created:
            transitions += await asyncio.to_thread(self._store.record_created, results.created, done, policy)
            if self._runs_recorded is not None:
                await self._runs_recorded([run.run_id for _, run in results.created])
        if results.rejected:
            transitions += await asyncio.to_thread(self._store.apply_verdicts, results.rejected, done, policy)
        for ref, error in results.unknown:
            delay = min(timedelta(seconds=2 ** min(ref.create_tries, 6)), _MAX_SETTLE_DELAY)
            await asyncio.to_thread(self._store.defer_create, ref.id, done + delay, error, done)
        self._metrics.dispatch_lag.observe(max((done - now).total_seconds(), 0.0))
        self._on_transitions(transitions)

    async def _create(self, ref: AttemptRef, results: CreateResults) -> None:
        job = self._catalog.find(ref.job_name)
        try:
            sensitive = dict(resolve_sensitive_inputs(job.loaded)) if job is not None else {}
        except JobFileError as exc:
            results.rejected.append(AttemptVerdict(ref.id, "rejected", [str(exc)], "dispatch"))
            return
        body = _run_create(ref, sensitive)
        async with self._requests:
            response = await self._client.runs.create(body, idempotency_key=ref.idempotency_key)
        if response.data is not None:
            results.created.append((ref.id, observation(response.data, "create")))
        elif response.error is not None and response.error.is_definite_failure:
            results.rejected.append(AttemptVerdict(ref.id, "rejected", [_describe(response.error)], "create"))
        else:
            self._metrics.api_errors.labels("runs.create").inc()
            results.unknown.append((ref, _describe(response.error)))


def _group(reasons: dict[str, str]) -> dict[str, list[str]]:
    grouped: dict[str, list[str]] = {}
    for item_id, reason in reasons.items():
        grouped.setdefault(reason, []).append(item_id)
    return grouped


def _run_create(ref: AttemptRef, sensitive: dict[str, str]) -> RunCreate:
    # The body must be the same on every repeat of one attempt: the API refuses a known key with another body.
    fields: dict[str, Any] = {
        "workflow_id": ref.workflow_id,
        "machine_id": ref.machine_id,
        "input_values": dict(ref.inputs),
        "is_priority": ref.priority,
    }
    if sensitive:
        fields["sensitive_input_values"] = sensitive
    return RunCreate(**fields)


def observation(run: RunResponse, source: str) -> RunObservation:
    """What a RunResponse (from any call or webhook) says, in the store's terms."""
    error = run.error if isinstance(run.error, list) else None
    output = run.output_data if isinstance(run.output_data, dict) else None
    return RunObservation(
        run_id=str(run.id),
        status=str(run.status.value if hasattr(run.status, "value") else run.status),
        started_at=run.started_at if isinstance(run.started_at, datetime) else None,
        ended_at=run.ended_at if isinstance(run.ended_at, datetime) else None,
        error=[str(e) for e in error] if error else None,
        output=output,
        source=source,
    )


def _describe(error: ApiError | None) -> str:
    return str(error) if error is not None else "no answer"
