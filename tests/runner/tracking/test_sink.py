"""The sink's batches: create calls' answers alone wait for news to share their transaction; news of a run's end
is held back only within the news window (none by default)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
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


@asynccontextmanager
async def _running_sink(
    store: FakeStore, created_gather: float, news_window: float = 0.0
) -> AsyncIterator[ObservationSink]:
    """A sink draining its queue into `store` for the duration of the block (then stopped, with what it holds)."""
    sink = _sink(store, created_gather, news_window)
    running = asyncio.create_task(sink.run())
    try:
        yield sink
    finally:
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)


async def _settle() -> None:
    """Lets the sink take what is queued (and start waiting with it)."""
    for _ in range(5):
        await asyncio.sleep(0)


def _sink(store: FakeStore, created_gather: float, news_window: float = 0.0) -> ObservationSink:
    def on_transitions(transitions: Sequence[Transition], *, refilled: bool = False) -> None:
        pass

    return ObservationSink(
        store=store,  # type: ignore[arg-type]
        clock=ManualClock(T0),
        outcome=lambda _now: lambda _attempt: None,  # type: ignore[arg-type,return-value]
        on_transitions=on_transitions,
        metrics=Metrics(),
        created_gather=created_gather,
        news_window=news_window,
    )


async def test_a_create_answer_waits_for_news_and_news_ends_the_wait_at_once() -> None:
    store = FakeStore()
    async with _running_sink(store, created_gather=3600.0) as sink:  # an hour: only news ends this wait here
        answer = asyncio.create_task(
            sink.record([CreatedRun("att-1", RunObservation("run-1", "scheduling", source="create"))])
        )
        await _settle()
        assert store.tracking.batches == [] and not answer.done()
        await asyncio.wait_for(sink.record([RunObservation("run-0", "success", source="webhook")]), 10)
        await asyncio.wait_for(answer, 10)
        assert store.tracking.batches == [(["att-1"], ["run-0"])]  # one transaction for both


async def test_news_alone_goes_at_once() -> None:
    store = FakeStore()
    async with _running_sink(store, created_gather=3600.0) as sink:
        await asyncio.wait_for(sink.record([RunObservation("run-0", "success", source="webhook")]), 10)
        assert store.tracking.batches == [([], ["run-0"])]


async def test_within_a_news_window_news_shares_a_transaction_until_the_batch_is_full_enough() -> None:
    store = FakeStore()
    async with _running_sink(store, created_gather=0.0, news_window=3600.0) as sink:  # only company ends it
        first = asyncio.create_task(sink.record([RunObservation("run-0", "success", source="webhook")]))
        await _settle()
        assert store.tracking.batches == [] and not first.done()  # held for company
        rest = [RunObservation(f"run-{n}", "success", source="webhook") for n in range(1, 16)]
        await asyncio.wait_for(asyncio.gather(first, *(sink.record([run]) for run in rest)), 10)
        assert store.tracking.batches == [([], [f"run-{n}" for n in range(16)])]  # sixteen: one transaction


async def test_a_short_news_window_lets_lone_news_go_when_it_ends() -> None:
    store = FakeStore()
    async with _running_sink(store, created_gather=0.0, news_window=0.001) as sink:
        await asyncio.wait_for(sink.record([RunObservation("run-0", "success", source="webhook")]), 10)
        assert store.tracking.batches == [([], ["run-0"])]


async def test_a_create_answer_waits_the_longer_of_its_gather_and_the_news_window() -> None:
    store = FakeStore()
    async with _running_sink(store, created_gather=0.0, news_window=3600.0) as sink:
        answer = asyncio.create_task(
            sink.record([CreatedRun("att-1", RunObservation("run-1", "scheduling", source="create"))])
        )
        await _settle()
        assert store.tracking.batches == [] and not answer.done()
    answer.cancel()
    await asyncio.gather(answer, return_exceptions=True)
