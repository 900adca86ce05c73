"""Batches news about runs into store transactions, so a burst of webhooks costs a few commits, not hundreds."""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Callable, Sequence
from datetime import datetime

from cyberdesk_runner.clock import Clock
from cyberdesk_runner.store import Store
from cyberdesk_runner.store.records import FinishedAttempt, ItemOutcome, RunObservation, Transition

_EARLY_NEWS_KEPT = 10_000


class ObservationSink:
    def __init__(
        self,
        *,
        store: Store,
        clock: Clock,
        outcome: Callable[[datetime], Callable[[FinishedAttempt], ItemOutcome]],
        on_transitions: Callable[[Sequence[Transition]], None],
        max_batch: int = 500,
    ) -> None:
        self._store = store
        self._clock = clock
        self._outcome = outcome
        self._on_transitions = on_transitions
        self._max_batch = max_batch
        self._queue: asyncio.Queue[tuple[RunObservation, asyncio.Future[None]]] = asyncio.Queue()
        #: News about runs we did not know yet. A fast run's webhook can arrive before its create call's answer
        #: is recorded; it is kept here and applied once the run is known (polling would catch it later anyway).
        self._early: OrderedDict[str, RunObservation] = OrderedDict()
        #: Runs recorded recently: news parked for one of these raced its recording and is applied again.
        self._recorded: OrderedDict[str, None] = OrderedDict()

    async def record(self, observations: Sequence[RunObservation]) -> None:
        """Record observations; returns once they are committed to the store."""
        if not observations:
            return
        loop = asyncio.get_running_loop()
        futures = []
        for obs in observations:
            future: asyncio.Future[None] = loop.create_future()
            self._queue.put_nowait((obs, future))
            futures.append(future)
        await asyncio.gather(*futures)

    async def run(self) -> None:
        """Drain the queue forever, one store transaction per batch."""
        while True:
            batch = [await self._queue.get()]
            while len(batch) < self._max_batch and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            try:
                await self.flush([obs for obs, _ in batch])
            except Exception as exc:  # the store is down: callers (webhook senders) get an error and retry
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                continue
            for _, future in batch:
                if not future.done():
                    future.set_result(None)

    async def flush(self, observations: Sequence[RunObservation]) -> None:
        now = self._clock.now()
        transitions = await asyncio.to_thread(
            self._store.apply_observations, observations, now, self._outcome(now)
        )
        by_run = {o.run_id: o for o in observations}
        raced: list[RunObservation] = []
        for t in transitions:
            if t.kind == "unknown_run" and t.run_id in by_run:
                if t.run_id in self._recorded:
                    raced.append(by_run[t.run_id])  # recorded while this batch was being applied
                    continue
                self._early[t.run_id] = by_run[t.run_id]
                while len(self._early) > _EARLY_NEWS_KEPT:
                    self._early.popitem(last=False)
        self._on_transitions(transitions)
        if raced:
            await self.flush(raced)

    async def runs_recorded(self, run_ids: Sequence[str]) -> None:
        """Runs just became known (their create calls were recorded): apply any news that came first."""
        for run_id in run_ids:
            self._recorded[run_id] = None
        while len(self._recorded) > _EARLY_NEWS_KEPT:
            self._recorded.popitem(last=False)
        early = [self._early.pop(run_id) for run_id in run_ids if run_id in self._early]
        if early:
            await self.record(early)
