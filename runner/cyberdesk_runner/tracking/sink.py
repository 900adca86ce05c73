"""Batches news about runs into store transactions, so a burst of webhooks costs a few commits, not hundreds."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from datetime import datetime

from cyberdesk_runner.clock import Clock
from cyberdesk_runner.store import Store
from cyberdesk_runner.store.records import FinishedAttempt, ItemOutcome, RunObservation, Transition


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
        self._on_transitions(transitions)
