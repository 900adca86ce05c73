"""The sink's batches: create calls' answers alone wait for news to share their transaction; news of a run's end
is never held back."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from cyberdesk_runner.clock import ManualClock
from cyberdesk_runner.metrics import Metrics
from cyberdesk_runner.store.records import RecordedNews, RunObservation, Transition
from cyberdesk_runner.tracking.news import CreatedRun
from cyberdesk_runner.tracking.sink import ObservationSink

T0 = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


class FakeTracking:
    def __init__(self) -> None:
        self.batches: list[tuple[list[str], list[str]]] = []

    def record_news(
        self,
        created: Sequence[tuple[str, RunObservation]],
        observations: Sequence[RunObservation],
        *_: Any,
        **__: Any,
    ) -> RecordedNews:
        self.batches.append(([a for a, _ in created], [o.run_id for o in observations]))
        return RecordedNews([], [])


class FakeStore:
    def __init__(self) -> None:
        self.tracking = FakeTracking()


def _sink(store: FakeStore, created_gather: float) -> ObservationSink:
    def on_transitions(transitions: Sequence[Transition], *, refilled: bool = False) -> None:
        pass

    return ObservationSink(
        store=store,  # type: ignore[arg-type]
        clock=ManualClock(T0),
        outcome=lambda _now: lambda _attempt: None,  # type: ignore[arg-type,return-value]
        on_transitions=on_transitions,
        metrics=Metrics(),
        created_gather=created_gather,
    )


async def test_a_create_answer_waits_for_news_and_news_ends_the_wait_at_once() -> None:
    store = FakeStore()
    sink = _sink(store, created_gather=3600.0)  # an hour: only news can end this wait within the test
    running = asyncio.create_task(sink.run())
    try:
        answer = asyncio.create_task(
            sink.record([CreatedRun("att-1", RunObservation("run-1", "scheduling", source="create"))])
        )
        for _ in range(5):  # the sink takes the answer and waits with it
            await asyncio.sleep(0)
        assert store.tracking.batches == [] and not answer.done()
        await asyncio.wait_for(sink.record([RunObservation("run-0", "success", source="webhook")]), 10)
        await asyncio.wait_for(answer, 10)
        assert store.tracking.batches == [(["att-1"], ["run-0"])]  # one transaction for both
    finally:
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)


async def test_news_alone_goes_at_once() -> None:
    store = FakeStore()
    sink = _sink(store, created_gather=3600.0)
    running = asyncio.create_task(sink.run())
    try:
        await asyncio.wait_for(sink.record([RunObservation("run-0", "success", source="webhook")]), 10)
        assert store.tracking.batches == [([], ["run-0"])]
    finally:
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)
