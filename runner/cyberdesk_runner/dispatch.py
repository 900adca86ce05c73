"""Item -> attempt -> Cyberdesk run, exactly once.

1. In one store transaction, due items get desktops and attempts (with fresh idempotency keys) are recorded.
2. Only then are the create calls made, each with its attempt's key as `Idempotency-Key`. Calls run side by side
   (at most `max_in_flight_requests` at once) and each answer is recorded as soon as it comes, through the
   tracking sink, so a run's creation is in the store before the news of its end is applied.
   A multi-step job's attempt is one chain call (`POST /v1/runs/chain`) with the same key; its answer (a run per
   step) is recorded with the attempt's creation.
3. A create whose outcome is unknown (timeout, dropped connection, 5xx, crash) leaves the attempt in `creating`;
   it is repeated later with the same key, so the API replays the first answer instead of making a second run.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import heapq
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime, timedelta
from typing import TypeVar

import attrs

from cyberdesk import ApiError, CyberdeskClient, FileInput
from cyberdesk_runner.api_access import is_key_refused
from cyberdesk_runner.catalog import ActiveJob, JobCatalog
from cyberdesk_runner.clock import Clock
from cyberdesk_runner.dispatch_bodies import chain_create, run_create
from cyberdesk_runner.files.inputs import FileInputError, attach_files
from cyberdesk_runner.fleet import Desktop, Fleet
from cyberdesk_runner.logs import get_logger
from cyberdesk_runner.metrics import Metrics
from cyberdesk_runner.spec import JobFileError, resolve_sensitive_inputs
from cyberdesk_runner.store import Store
from cyberdesk_runner.store.records import (
    Assignment,
    AssignRequest,
    AttemptRef,
    AttemptVerdict,
    DispatchView,
    FinishedAttempt,
    ItemOutcome,
    NewStepRun,
    RunObservation,
    Transition,
)
from cyberdesk_runner.tracking.news import CreatedRun, observation, unknown_statuses

log = get_logger(__name__)

_R = TypeVar("_R")

#: Most create calls carrying files at once: each holds its files' bytes several times over (base64, JSON body),
#: so a job of large files is bounded in memory by this, not by max_in_flight_requests (bench/files_bench.py).
_MOST_FILE_BODIES = 8
#: Longest wait before repeating a create call whose outcome is unknown.
_MAX_SETTLE_DELAY = timedelta(seconds=60)


@attrs.frozen
class _Selection:
    """A job's desktops in one fleet snapshot: all of them in a stable order, and the connected ones' ids."""

    desktops: list[Desktop]
    connected: frozenset[str]


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
        record_created: Callable[[Sequence[CreatedRun]], Awaitable[None]],
        on_room: Callable[[], None] = lambda: None,
        max_in_flight_requests: int = 32,
        lease: timedelta = timedelta(seconds=30),
        batch_size: int = 200,
    ) -> None:
        self._store = store
        self._client = client
        self._catalog = catalog
        self._fleet = fleet
        self._clock = clock
        self._metrics = metrics
        self._outcome = outcome
        self._on_transitions = on_transitions
        self._record_created = record_created
        self._on_room = on_room
        self._requests = asyncio.Semaphore(max_in_flight_requests)
        self._file_bodies = asyncio.Semaphore(_MOST_FILE_BODIES)
        #: Attempts claimed but not yet answered, at most: twice the calls in flight keeps the pipe full.
        self._most_claimed = 2 * max_in_flight_requests
        self._lease = lease
        self._batch_size = batch_size
        #: Create calls claimed and not yet recorded (each a task that makes the call and records its answer), with
        #: their attempts' ids: the claims the heartbeat renews (`renew_claims`).
        self._creating: dict[asyncio.Task[None], str] = {}
        #: Set when a round stopped claiming because enough calls were waiting; cleared (with a wake) at half.
        self._throttled = False
        #: Room promised to news transactions that fill the desktops they free (`refill_request`), not yet used.
        self._reserved = 0
        #: Whether a round's own assign transaction is under way (then news leaves freed desktops to the rounds).
        self._assigning = False
        #: Whether freed desktops were left to a round since the last decision over every desktop: the next refill
        #: by news then decides over every desktop too (`AssignRequest.sweep`), not just those it frees.
        self._left_to_rounds = False
        #: Whether the last `dispatch_once` claimed as many as it could ask for: more may be due right away.
        self.more_due = False
        #: When each desktop last got work from us, to spread items evenly over a target's desktops.
        self._last_used: dict[str, datetime] = {}
        self._selections: dict[tuple[str, str], _Selection] = {}
        self._selections_of: Fleet | None = None

    @property
    def creating(self) -> int:
        """Create calls claimed by this daemon and not yet answered and recorded."""
        return len(self._creating)

    @property
    def throttled(self) -> bool:
        return self._throttled

    async def dispatch_once(self) -> int:
        """Claim attempts for due items and start their create calls; returns how many were claimed.

        Returns without waiting for the calls (see `drain`); claims nothing while enough calls are waiting.
        """
        room = self._most_claimed - len(self._creating) - self._reserved
        self.more_due = False
        if room <= 0:
            self._throttled = True
            return 0
        now = self._clock.now()
        stranded: dict[str, str] = {}
        limit = min(self._batch_size, room)
        self._left_to_rounds = False
        self._assigning = True
        try:
            refs = await asyncio.to_thread(
                self._store.dispatch.assign,
                now,
                functools.partial(self._choose, stranded=stranded),
                limit=limit,
                lease=self._lease,
                window=self._window,
            )
        finally:
            self._assigning = False
        self._start(refs, now)
        self.more_due = len(refs) == limit
        for reason, item_ids in _group(stranded).items():
            transitions = await asyncio.to_thread(
                self._store.control.fail_pending_items, item_ids, reason, now
            )
            self._on_transitions(transitions)
        return len(refs)

    def refill_request(self) -> AssignRequest | None:
        """What a news transaction needs to fill the desktops it frees (`store.tracking.record_news(assign=)`),
        with room reserved for it until `refilled`; None while the calls waiting leave no room or a round is
        assigning (then the freed desktops wait for a round)."""
        room = self._most_claimed - len(self._creating) - self._reserved
        if room <= 0 or self._assigning:
            self._throttled = self._throttled or room <= 0
            self._left_to_rounds = True
            return None
        limit = min(self._batch_size, room)
        self._reserved += limit
        now = self._clock.now()
        sweep, self._left_to_rounds = self._left_to_rounds, False
        # Items pinned to a desktop gone for good are failed by the rounds, not here.
        return AssignRequest(now, self._choose, self._lease, limit, self._window, sweep)

    def refilled(self, request: AssignRequest | None, assigned: Sequence[AttemptRef] | None) -> bool:
        """Start the create calls of the attempts a news transaction assigned (`request`: what it was given, if
        anything); returns whether the desktops it freed are seen to. False: nothing was assigned there, or more
        may be due, so a round should look; while throttled the round comes when calls are answered (`on_room`)."""
        if request is None:
            return self._throttled
        self._reserved -= request.limit
        if assigned is not None:
            self._start(assigned, request.now)
        else:
            self._left_to_rounds = self._left_to_rounds or request.sweep
        self._room_again()  # a round throttled by this reservation alone must not wait for an answer
        return assigned is not None and len(assigned) < request.limit

    async def settle_once(self) -> int:
        """Repeat create calls whose outcome is unknown, with their original keys."""
        now = self._clock.now()
        refs = await asyncio.to_thread(self._store.dispatch.attempts_to_settle, now, lease=self._lease)
        self._start(refs, now, fresh=False)
        return len(refs)

    async def renew_claims(self) -> int:
        """Keep the claims on the create calls this daemon is making, however slow (call it every lease / 3).
        Only those: an attempt whose call ended without its answer recorded lapses and is settled."""
        return await asyncio.to_thread(
            self._store.dispatch.renew_creating, self._clock.now(), self._lease, list(self._creating.values())
        )

    async def drain(self) -> None:
        """Wait until every create call started so far is answered and its answer recorded."""
        while self._creating:
            await asyncio.gather(*list(self._creating), return_exceptions=True)

    async def aclose(self) -> None:
        """Abandon the calls still waiting: their attempts stay `creating` and are settled with the same keys."""
        for task in self._creating:
            task.cancel()
        await asyncio.gather(*list(self._creating), return_exceptions=True)

    # -- choosing desktops -------------------------------------------------------------------------------

    def _selection(self, job: ActiveJob) -> _Selection:
        """The job's desktops in the current fleet snapshot, worked out once per snapshot and job version."""
        fleet = self._fleet()
        if fleet is not self._selections_of:
            self._selections, self._selections_of = {}, fleet
        key = (job.name, job.loaded.definition_hash)
        selection = self._selections.get(key)
        if selection is None:
            desktops = fleet.select(job.target)
            selection = _Selection(desktops, frozenset(d.id for d in desktops if d.connected))
            self._selections[key] = selection
        return selection

    def _window(self, job_name: str, busy: frozenset[str], active: int) -> int:
        """Runs inside the dispatch transaction: how many of the job's due items it could start now."""
        job = self._catalog.get(job_name)
        if job is None or job.workflow_id is None:
            return 0
        room = job.loaded.spec.concurrency - active
        if room <= 0:
            return 0
        if job.loaded.spec.fan_out == "machines":
            # Pinned items: those whose desktop is busy are not read at all; the rest can start, or are
            # waiting for their desktop to come back (failed after the job's timeout).
            return room
        selection = self._selection(job)
        return min(room, len(selection.connected) - len(selection.connected & busy))

    def _choose(self, view: DispatchView, *, stranded: dict[str, str] | None = None) -> list[Assignment]:
        """Runs inside the dispatch transaction: pick a free desktop for as many due items as limits allow.

        Items pinned to a desktop gone for longer than their job's timeout go to `stranded` (item id -> why)."""
        now = self._clock.now()
        fleet = self._fleet()
        busy = set(view.busy_desktops)
        only = view.only_desktops
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
                        if stranded is not None:
                            stranded[item.id] = (
                                f"its desktop {desktop.label if desktop else item.machine_id} {state} "
                                f"(waited longer than the job's timeout)"
                            )
                    continue
                if desktop.id in busy or (only is not None and desktop.id not in only):
                    continue
            else:
                free = candidates.get(job.name)
                if free is None:
                    # Once per job and round: its free desktops, least recently given work first. A round
                    # places at most its due items, so only that many (twice, for those another job takes
                    # meanwhile) are picked out: not a sort of 5,000 desktops per round.
                    never = datetime.min.replace(tzinfo=now.tzinfo)
                    selection = self._selection(job)
                    pool = (
                        (d for d in selection.desktops if d.connected and d.id not in busy)
                        if only is None  # a refill by news: just the desktops it freed, not the whole fleet
                        else (
                            d for i in sorted(only & selection.connected) if (d := fleet.get(i)) is not None
                        )
                    )
                    ordered = heapq.nsmallest(
                        2 * len(view.due), pool, key=lambda d: self._last_used.get(d.id, never)
                    )
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

    def _start(self, refs: Sequence[AttemptRef], claimed_at: datetime, *, fresh: bool = True) -> None:
        """Start the create calls of `refs`: `fresh` ones were just assigned (no call made, no files recorded)."""
        for ref in refs:
            task = asyncio.create_task(self._create(ref, claimed_at, fresh), name=f"create {ref.id}")
            self._creating[task] = ref.id
            task.add_done_callback(self._answered)

    def _answered(self, task: asyncio.Task[None]) -> None:
        self._creating.pop(task, None)
        if not task.cancelled() and (exc := task.exception()) is not None:
            # The attempt stays `creating`: no longer renewed, its claim lapses and the call is repeated with the
            # same key (by whichever daemon settles it first).
            log.error("create_not_recorded", error=str(exc), effect="will be settled with the same key")
        self._room_again()

    def _room_again(self) -> None:
        """Wake a throttled dispatcher once half the room is back."""
        if self._throttled and len(self._creating) + self._reserved <= self._most_claimed // 2:
            self._throttled = False
            self._on_room()

    async def _create(self, ref: AttemptRef, claimed_at: datetime, fresh: bool) -> None:
        job = self._catalog.find(ref.job_name)
        if job is not None and job.loaded.spec.steps is not None:
            await self._create_chain(ref, job, claimed_at, fresh)
            return
        try:
            sensitive = dict(resolve_sensitive_inputs(job.loaded)) if job is not None else {}
        except JobFileError as exc:
            await self._finish(AttemptVerdict(ref.id, "rejected", [str(exc)], "dispatch"))
            return
        response = await self._with_files(
            ref,
            job,
            lambda files: self._client.runs.create(
                run_create(ref, sensitive, files), idempotency_key=ref.idempotency_key
            ),
            fresh,
        )
        if isinstance(response, FileInputError):
            await self._finish(AttemptVerdict(ref.id, "rejected", [str(response)], "files"))
            return
        answered = self._clock.now()
        self._metrics.dispatch_lag.observe(max((answered - claimed_at).total_seconds(), 0.0))
        if response.data is not None:
            # A status the SDK does not know is recorded as scheduling (still in flight); warn once per value.
            unknown_statuses.is_known(response.data)
            await self._record_created([CreatedRun(ref.id, observation(response.data, "create"))])
        else:
            await self._unanswered(ref, response.error, answered, "runs.create")

    async def _create_chain(self, ref: AttemptRef, job: ActiveJob, claimed_at: datetime, fresh: bool) -> None:
        """One chain call for the attempt (every step, in order, on its desktop's session), with its key."""
        steps = job.loaded.spec.steps or ()
        if len(job.workflow_ids) != len(steps):
            error = job.workflow_error or f"job {job.name}: its steps' workflows are not resolved"
            await self._finish(AttemptVerdict(ref.id, "rejected", [error], "dispatch"))
            return
        try:
            sensitive = dict(resolve_sensitive_inputs(job.loaded))
            step_sensitive = [dict(resolve_sensitive_inputs(job.loaded, step=i)) for i in range(len(steps))]
        except JobFileError as exc:
            await self._finish(AttemptVerdict(ref.id, "rejected", [str(exc)], "dispatch"))
            return
        fleet = self._fleet()
        response = await self._with_files(
            ref,
            job,
            lambda files: self._client.runs.chain(
                chain_create(ref, job, fleet, sensitive, step_sensitive, files),
                idempotency_key=ref.idempotency_key,
            ),
            fresh,
        )
        if isinstance(response, FileInputError):
            await self._finish(AttemptVerdict(ref.id, "rejected", [str(response)], "files"))
            return
        answered = self._clock.now()
        self._metrics.dispatch_lag.observe(max((answered - claimed_at).total_seconds(), 0.0))
        if response.data is not None and len(response.data.run_ids) == len(steps):
            run_ids = [str(r) for r in response.data.run_ids]
            runs = tuple(
                NewStepRun(i, step.alias, job.workflow_ids[i], step.workflow, run_id)
                for i, (step, run_id) in enumerate(zip(steps, run_ids, strict=True))
            )
            first = RunObservation(run_ids[0], "scheduling", source="create")
            await self._record_created([CreatedRun(ref.id, first, runs)])
        else:
            await self._unanswered(ref, response.error, answered, "runs.chain")

    async def _with_files(
        self,
        ref: AttemptRef,
        job: ActiveJob | None,
        call: Callable[[list[FileInput]], Awaitable[_R]],
        fresh: bool,
    ) -> _R | FileInputError:
        """Make `call` with the attempt's files (`files/inputs.py`) inside the in-flight limits, or hand back
        why the files cannot go (then no call is made).

        Files are read only once the call may go, off the event loop, and on a repeat checked against the first
        read; calls carrying files have a limit of their own, as each holds its files several times over."""
        carries_files = job is None or bool(job.loaded.spec.files)  # no job: a repeat may still have files
        async with self._file_bodies if carries_files else contextlib.nullcontext(), self._requests:
            if fresh and not carries_files:
                # Its first call, for a job without files: nothing to read, nothing recorded to check against.
                return await call([])
            try:
                files = await asyncio.to_thread(
                    attach_files, self._store, job.loaded if job is not None else None, ref
                )
            except FileInputError as exc:
                return exc
            return await call(files)

    async def _unanswered(
        self, ref: AttemptRef, error: ApiError | None, answered: datetime, call: str
    ) -> None:
        """A create or chain call without a run: refused for good (rejected), or repeated later with its key."""
        # A refused key says nothing about the run (perhaps the key is being rotated): not created, so the same
        # call is repeated later like one with an unknown outcome, instead of failing the attempt.
        if error is not None and error.is_definite_failure and not is_key_refused(error):
            await self._finish(AttemptVerdict(ref.id, "rejected", [_describe(error)], "create"))
        else:
            self._metrics.api_errors.labels(call).inc()
            delay = min(timedelta(seconds=2 ** min(ref.create_tries, 6)), _MAX_SETTLE_DELAY)
            await asyncio.to_thread(
                self._store.dispatch.defer_create,
                ref.id,
                answered + delay,
                _describe(error),
                answered,
            )

    async def _finish(self, verdict: AttemptVerdict) -> None:
        now = self._clock.now()
        transitions = await asyncio.to_thread(
            self._store.tracking.apply_verdicts, [verdict], now, self._outcome(now)
        )
        self._on_transitions(transitions)


def _group(reasons: dict[str, str]) -> dict[str, list[str]]:
    grouped: dict[str, list[str]] = {}
    for item_id, reason in reasons.items():
        grouped.setdefault(reason, []).append(item_id)
    return grouped


def _describe(error: ApiError | None) -> str:
    return str(error) if error is not None else "no answer"
