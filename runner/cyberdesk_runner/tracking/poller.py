"""Polling reconciliation: every in-flight run's status, with a few paged list calls per workflow.

Webhooks are hints; this is the truth. A lost webhook costs at most one poll interval.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime, timedelta

from cyberdesk import CyberdeskClient, RunField, RunListSortMode
from cyberdesk_runner.clock import Clock
from cyberdesk_runner.metrics import Metrics
from cyberdesk_runner.store import Store
from cyberdesk_runner.store.records import InFlightAttempt, RunObservation
from cyberdesk_runner.tracking.news import is_news, observation
from cyberdesk_runner.tracking.sink import ObservationSink

#: With this many runs in flight or fewer, one GET per run is cheaper than listing.
_GET_EACH_UP_TO = 3
_PAGE = 100
#: Runs are listed from a little before the oldest in-flight run was created (clock skew with the API).
_SKEW = timedelta(minutes=2)
_FIELDS = [
    RunField.STARTED_AT,
    RunField.ENDED_AT,
    RunField.ERROR,
    RunField.OUTPUT_DATA,
    RunField.USAGE_METADATA,
]


class Poller:
    def __init__(
        self, *, store: Store, client: CyberdeskClient, sink: ObservationSink, clock: Clock, metrics: Metrics
    ) -> None:
        self._store = store
        self._client = client
        self._sink = sink
        self._clock = clock
        self._metrics = metrics
        self.last_poll_at: datetime | None = None

    async def poll_once(self) -> int:
        """Hand on every run in flight whose status moved; returns the number of API requests made."""
        attempts = await asyncio.to_thread(self._store.tracking.in_flight)
        # A multi-step attempt is watched through its open step runs, each against its own workflow.
        steps = await asyncio.to_thread(self._store.steps.in_flight)
        chained = {s.attempt_id for s in steps}
        in_flight = [a for a in attempts if a.run_id and a.id not in chained] + [
            InFlightAttempt(
                s.attempt_id,
                s.job_name,
                s.run_id,
                s.workflow_id,
                "",
                s.status,
                s.created_at,
                s.deadline_at,
                s.cancel_requested,
            )
            for s in steps
        ]
        requests = 0
        observations: list[RunObservation] = []
        if len(in_flight) <= _GET_EACH_UP_TO:
            for attempt in in_flight:
                requests += 1
                response = await self._client.runs.get(attempt.run_id or "")
                if response.data is not None and is_news(response.data, attempt.status):
                    observations.append(observation(response.data, "poll"))
        else:
            by_workflow: dict[str, list[InFlightAttempt]] = defaultdict(list)
            for attempt in in_flight:
                by_workflow[attempt.workflow_id].append(attempt)
            for workflow_id, attempts in by_workflow.items():
                found, made = await self._list_workflow(workflow_id, attempts)
                observations += found
                requests += made
        self._metrics.poll_requests.inc(requests)
        await self._sink.record(observations)
        self.last_poll_at = self._clock.now()
        return requests

    async def _list_workflow(
        self, workflow_id: str, attempts: Sequence[InFlightAttempt]
    ) -> tuple[list[RunObservation], int]:
        # Only runs whose status moved become observations: with thousands in flight, most have not.
        known = {a.run_id: a.status for a in attempts}
        since = min(a.created_at for a in attempts) - _SKEW
        found: list[RunObservation] = []
        seen: set[str] = set()
        skip, requests = 0, 0
        while True:
            requests += 1
            response = await self._client.runs.list(
                workflow_id=workflow_id,
                created_at_from=since,
                sort_mode=RunListSortMode.CREATED_AT_DESC,
                fields=_FIELDS,
                skip=skip,
                limit=_PAGE,
            )
            page = response.data
            if page is None:
                break
            for run in page.items:
                run_id = str(run.id)
                if run_id in known:
                    seen.add(run_id)
                    if is_news(run, known[run_id]):
                        found.append(observation(run, "poll"))
            skip += len(page.items)
            if not page.items or skip >= page.total or len(seen) >= len(known):
                break
        return found, requests
