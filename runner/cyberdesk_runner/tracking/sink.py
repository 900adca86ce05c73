"""One writer for news about runs: create calls' answers, webhooks, polls. Batched into store transactions, so a
burst of webhooks costs a few commits, not hundreds, and a run's creation is recorded before its later news.

A batch that ends runs also fills the desktops it frees, in its own transaction (`refill`: the dispatcher), so a
run's end costs no dispatch round of its own however slowly the news comes. Create calls' answers alone (no news
of an end with them) wait up to CREATED_GATHER for news to ride along with: slow news then costs one transaction
per run, not two. News of an end is not held back, unless `tracking.news_window` says to: see NewsWindow.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Protocol

from cyberdesk_runner.clock import Clock
from cyberdesk_runner.metrics import Metrics
from cyberdesk_runner.store import Store
from cyberdesk_runner.store.records import (
    AssignRequest,
    AttemptRef,
    FinishedAttempt,
    ItemOutcome,
    RecordedNews,
    RunObservation,
    Transition,
)
from cyberdesk_runner.tracking.news import CreatedRun, News

#: News about runs we do not know yet, kept at most this many (the oldest are checked against the store first).
_EARLY_NEWS_KEPT = 10_000
#: How long news about an unknown run waits for its create call's answer before it is recorded as a stranger's.
UNKNOWN_AFTER = timedelta(seconds=30)
#: How often parked news is tried again alongside a batch (a run another daemon created becomes known), in seconds;
#: the reap loop's sweep tries it too, when no batches come.
RETRY_PARKED_EVERY = 0.25
_RETRY_AT_ONCE = 500
#: Seconds that create calls' answers, alone in the queue, wait for more news to share their transaction.
CREATED_GATHER = 0.02
#: A batch of at least this much news goes at once.
_FULL_ENOUGH = 16
#: Why a news window exists, in short: each batch wakes the store thread and then the event loop, and on a small
#: virtual machine a thread woken from sleep runs its first tens of microseconds several times slower than a warm
#: one (`bench/wakeup_cost.py`). News arriving a few milliseconds apart (webhooks at 200/s) therefore costs about
#: twice the CPU per run of news arriving in bursts. A window of 20-30 ms gathers such news into shared
#: transactions, at the price of that much tracking latency; the default is no window.


class Refill(Protocol):
    """Who fills the desktops a batch frees (the dispatcher): asked before the batch, told what was assigned."""

    def refill_request(self) -> AssignRequest | None: ...

    def refilled(self, request: AssignRequest | None, assigned: Sequence[AttemptRef] | None) -> bool: ...


class TransitionsHandler(Protocol):
    """Told every batch's transitions; `refilled`: the desktops the batch freed are seen to already."""

    def __call__(self, transitions: Sequence[Transition], *, refilled: bool = False) -> None: ...


class ObservationSink:
    def __init__(
        self,
        *,
        store: Store,
        clock: Clock,
        outcome: Callable[[datetime], Callable[[FinishedAttempt], ItemOutcome]],
        on_transitions: TransitionsHandler,
        metrics: Metrics,
        max_batch: int = 500,
        refill: Refill | None = None,
        created_gather: float = CREATED_GATHER,
        news_window: float = 0.0,
    ) -> None:
        self._metrics = metrics
        self._store = store
        self._clock = clock
        self._outcome = outcome
        self._on_transitions = on_transitions
        self._max_batch = max_batch
        self.refill = refill
        self._created_gather = created_gather
        #: Seconds that news of an end waits for more news to share its transaction (0: it goes at once).
        self._news_window = news_window
        self._queue: asyncio.Queue[tuple[News, asyncio.Future[None]]] = asyncio.Queue()
        #: News about runs not known when it came, by run id, with when it came. A fast run's webhook can arrive
        #: before its create call's answer is recorded: it is applied right after that answer, in order.
        self._early: OrderedDict[str, tuple[RunObservation, datetime]] = OrderedDict()
        #: Early news pushed out by newer news, to be checked against the store on the next sweep.
        self._overflow: list[RunObservation] = []
        self._retried = time.monotonic()

    async def record(self, news: Sequence[News]) -> None:
        """Record news; returns once it is committed to the store."""
        if not news:
            return
        loop = asyncio.get_running_loop()
        futures = []
        for one in news:
            future: asyncio.Future[None] = loop.create_future()
            self._queue.put_nowait((one, future))
            futures.append(future)
        if len(futures) == 1:  # one run's news (a create call's answer, a webhook): no gathering needed
            await futures[0]
        else:
            await asyncio.gather(*futures)

    async def run(self) -> None:
        """Drain the queue forever, one store transaction per batch."""
        while True:
            batch = await self._next_batch()
            try:
                await self.flush([news for news, _ in batch])
            except Exception as exc:  # the store is down: callers (webhook senders) get an error and retry
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
            else:
                for _, future in batch:
                    if not future.done():
                        future.set_result(None)
            finally:
                for _ in batch:
                    self._queue.task_done()

    async def _next_batch(self) -> list[tuple[News, asyncio.Future[None]]]:
        """What is queued (up to max_batch). Create calls' answers alone wait a moment for company; news of an
        end waits only as long as the news window (none by default)."""
        batch = [await self._queue.get()]
        loop = asyncio.get_running_loop()
        started = loop.time()
        while len(batch) < self._max_batch:
            if not self._queue.empty():
                batch.append(self._queue.get_nowait())
                continue
            if len(batch) >= _FULL_ENOUGH:
                break
            ends = any(not isinstance(n, CreatedRun) for n, _ in batch)
            wait = self._news_window if ends else max(self._created_gather, self._news_window)
            left = started + wait - loop.time()
            if left <= 0:
                break
            try:
                batch.append(await asyncio.wait_for(self._queue.get(), left))
            except TimeoutError:
                break
        return batch

    async def drain(self) -> None:
        """Wait until every piece of news queued so far is committed (or has failed); `run` must be running."""
        await self._queue.join()

    async def flush(self, batch: Sequence[News]) -> None:
        created = [(n.attempt_id, n.run) for n in batch if isinstance(n, CreatedRun)]
        steps = {n.attempt_id: n.steps for n in batch if isinstance(n, CreatedRun) and n.steps}
        observations = [n for n in batch if isinstance(n, RunObservation)]
        now = self._clock.now()
        # Parked news rides along now and then: another daemon may have recorded its run meanwhile. First in the
        # list, and never beside newer news of its run, so the newer news wins.
        fresh = {run.run_id for run in observations}
        retry = [run for run in self._due_for_retry() if run.run_id not in fresh]
        self._metrics.news_batches.observe(len(batch))
        refill = self.refill
        request = refill.refill_request() if refill is not None and observations else None
        try:
            recorded = await asyncio.to_thread(
                functools.partial(
                    self._store.tracking.record_news,
                    created,
                    retry + observations,
                    now,
                    self._outcome(now),
                    steps,
                    assign=request,
                )
            )
        except BaseException:
            if refill is not None and request is not None:
                refill.refilled(request, None)
            raise
        refilled = refill is not None and refill.refilled(request, recorded.assigned)
        self._unpark_applied(retry, recorded)
        for run in recorded.unknown:
            if not self._parked(run):  # retried news keeps its place and its age
                self._early[run.run_id] = (run, now)
                self._early.move_to_end(run.run_id)
        while len(self._early) > _EARLY_NEWS_KEPT:
            self._overflow.append(self._early.popitem(last=False)[1][0])
        self._on_transitions(recorded.transitions, refilled=refilled)
        run_ids = [run.run_id for _, run in created] + [s.run_id for runs in steps.values() for s in runs]
        early = [self._early.pop(run_id)[0] for run_id in run_ids if run_id in self._early]
        if early:
            await self.flush(early)

    def _unpark_applied(self, retried: Sequence[RunObservation], recorded: RecordedNews) -> None:
        """Parked news that was retried and is now about a run of ours leaves the park, unless newer news about
        that run replaced it there meanwhile."""
        unknown = {id(run) for run in recorded.unknown}
        for run in retried:
            if id(run) not in unknown and self._parked(run):
                del self._early[run.run_id]

    def _parked(self, run: RunObservation) -> bool:
        parked = self._early.get(run.run_id)
        return parked is not None and parked[0] is run

    def _due_for_retry(self) -> list[RunObservation]:
        """The oldest parked news, at most every RETRY_PARKED_EVERY (monotonic time: a batching pace)."""
        if not self._early or time.monotonic() - self._retried < RETRY_PARKED_EVERY:
            return []
        self._retried = time.monotonic()
        return [run for run, _ in itertools.islice(self._early.values(), _RETRY_AT_ONCE)]

    async def sweep(self) -> None:
        """Look again at news about runs that were not ours when it came (the reap loop calls this every few
        seconds): another daemon may have recorded the run's creation since, as webhooks reach whichever daemon
        the endpoint points at. News that waited longer than UNKNOWN_AFTER is recorded as news about an unknown
        run if its run is still not ours."""
        now = self._clock.now()
        stale = self._overflow
        self._overflow = []
        waiting: list[RunObservation] = []
        for run_id, (run, since) in list(self._early.items()):
            if now - since >= UNKNOWN_AFTER:
                stale.append(run)
                del self._early[run_id]
            else:
                waiting.append(run)
        if waiting:
            recorded = await asyncio.to_thread(
                self._store.tracking.record_news, [], waiting, now, self._outcome(now)
            )
            self._unpark_applied(waiting, recorded)
            self._on_transitions(recorded.transitions)
        if stale:
            transitions = await asyncio.to_thread(
                self._store.tracking.apply_observations, stale, now, self._outcome(now)
            )
            self._on_transitions(transitions)
