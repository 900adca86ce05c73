"""Timeouts and cancel requests: runs past their deadline, or that a user cancelled, are cancelled in Cyberdesk.

A multi-step attempt is cancelled through its open step runs, and the steps still open after their attempt ended
(the steps after a failed one) are cancelled too, each looked at first like any run.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from datetime import datetime

from cyberdesk import CyberdeskClient, RetryConfig, RunStatus, RunUpdate
from cyberdesk_runner.clock import Clock
from cyberdesk_runner.store import Store
from cyberdesk_runner.store.records import (
    FINAL_ATTEMPT_STATUSES,
    AttemptVerdict,
    FinishedAttempt,
    InFlightAttempt,
    ItemOutcome,
    OpenStepRun,
    Transition,
    timed_out_error,
)
from cyberdesk_runner.tracking.news import observation
from cyberdesk_runner.tracking.sink import ObservationSink


class Reaper:
    def __init__(
        self,
        *,
        store: Store,
        client: CyberdeskClient,
        sink: ObservationSink,
        clock: Clock,
        outcome: Callable[[datetime], Callable[[FinishedAttempt], ItemOutcome]],
        on_transitions: Callable[[Sequence[Transition]], None],
    ) -> None:
        self._store = store
        self._client = client
        # A cancel is sent once per round, never repeated later by the SDK: a repeat landing after the run ended
        # would relabel a finished run "cancelled". The next round looks at the run again first.
        self._cancels = client.with_retry(RetryConfig(max_retries=0))
        self._sink = sink
        self._clock = clock
        self._outcome = outcome
        self._on_transitions = on_transitions

    async def reap_once(self) -> int:
        now = self._clock.now()
        due = await asyncio.to_thread(self._store.tracking.to_reap, now)
        chains: dict[str, list[OpenStepRun]] = {}
        if due:
            for step in await asyncio.to_thread(self._store.steps.in_flight):
                chains.setdefault(step.attempt_id, []).append(step)
        verdicts: list[AttemptVerdict] = []
        for attempt in due:
            if attempt.id in chains:
                why = "cancelled on request" if attempt.cancel_requested else "the chain timed out"
                cancelled = await self._cancel_steps(chains[attempt.id], why)
                verdict = self._verdict(attempt) if cancelled else None
            else:
                verdict = await self._cancel(attempt)
            if verdict is not None:
                verdicts.append(verdict)
        if verdicts:
            done = self._clock.now()
            transitions = await asyncio.to_thread(
                self._store.tracking.apply_verdicts, verdicts, done, self._outcome(done)
            )
            self._on_transitions(transitions)
        left = await asyncio.to_thread(self._store.steps.open_after_end)
        if left:
            await self._cancel_steps(left, "its chain ended before this step finished")
        return len(due)

    async def _cancel_steps(self, steps: Sequence[OpenStepRun], why: str) -> bool:
        """Cancel open step runs (each looked at first: one that ended keeps its own outcome); True when none
        is left open in Cyberdesk."""
        closed: list[str] = []
        done = True
        for step in steps:
            current = await self._client.runs.get(step.run_id)
            if current.data is not None:
                heard = observation(current.data, "poll")
                if heard.status in FINAL_ATTEMPT_STATUSES:
                    await self._sink.record([heard])
                    continue
            elif current.error is not None and current.error.status_code != 404:
                done = False
                continue
            response = await self._cancels.runs.update(step.run_id, RunUpdate(status=RunStatus.CANCELLED))
            if response.error is not None:
                if response.error.status_code == 404:
                    closed.append(step.run_id)
                else:
                    done = False
                continue
            seen = observation(response.data, "cancel") if response.data is not None else None
            if seen is not None and seen.status in FINAL_ATTEMPT_STATUSES and seen.status != "cancelled":
                await self._sink.record([seen])
            else:
                closed.append(step.run_id)
        if closed:
            now = self._clock.now()
            transitions = await asyncio.to_thread(self._store.steps.close, closed, "cancelled", why, now)
            self._on_transitions(transitions)
        return done

    async def _cancel(self, attempt: InFlightAttempt) -> AttemptVerdict | None:
        run_id = attempt.run_id or ""
        # Look first: a run that already ended (its news not recorded yet) keeps its own outcome. A cancel sent
        # to it would relabel a finished run "cancelled" in Cyberdesk and leave the store disagreeing.
        current = await self._client.runs.get(run_id)
        if current.data is not None:
            now_seen = observation(current.data, "poll")
            if now_seen.status in FINAL_ATTEMPT_STATUSES:
                await self._sink.record([now_seen])
                return None
        elif current.error is not None and current.error.status_code != 404:
            return None  # try again on the next round
        response = await self._cancels.runs.update(run_id, RunUpdate(status=RunStatus.CANCELLED))
        if response.error is not None:
            if response.error.status_code == 404:
                return AttemptVerdict(
                    attempt.id, "error", ["the run no longer exists in Cyberdesk"], "reaper"
                )
            return None  # try again on the next round
        seen = observation(response.data, "cancel") if response.data is not None else None
        if seen is not None and seen.status in FINAL_ATTEMPT_STATUSES and seen.status != "cancelled":
            # It finished on its own before the cancel arrived: that is its outcome.
            await self._sink.record([seen])
            return None
        return self._verdict(attempt)

    @staticmethod
    def _verdict(attempt: InFlightAttempt) -> AttemptVerdict:
        if attempt.cancel_requested:
            return AttemptVerdict(attempt.id, "cancelled", ["cancelled on request"], "reaper")
        limit = attempt.deadline_at - attempt.created_at
        return AttemptVerdict(attempt.id, "timed_out", timed_out_error(limit), "reaper")
