"""Polling reconciliation: every in-flight run's status, with a few paged list calls per workflow.

Webhooks are hints; this is the truth. A lost webhook costs at most one poll interval.

A round holds only what it compares: run id -> status in the store, per workflow (`store.tracking.runs_to_poll`),
and one page of the listing at a time. What a page shows moved is recorded before the next page is asked for.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

from cyberdesk import CyberdeskClient, Page, RunField, RunListSortMode, RunResponse
from cyberdesk_runner.clock import Clock
from cyberdesk_runner.metrics import Metrics
from cyberdesk_runner.store import Store
from cyberdesk_runner.store.records import RunObservation, RunsToPoll
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
        watched = await asyncio.to_thread(self._store.tracking.runs_to_poll)
        requests = 0
        try:
            if sum(len(runs.statuses) for runs in watched) <= _GET_EACH_UP_TO:
                requests = await self._get_each(watched)
            else:
                for runs in watched:
                    requests += await self._list_workflow(runs)
        finally:
            self._metrics.poll_requests.inc(requests)
        self.last_poll_at = self._clock.now()
        return requests

    async def _get_each(self, watched: list[RunsToPoll]) -> int:
        requests = 0
        observations: list[RunObservation] = []
        for runs in watched:
            for run_id, stored in runs.statuses.items():
                requests += 1
                response = await self._client.runs.get(run_id)
                if response.data is not None and is_news(response.data, stored):
                    observations.append(observation(response.data, "poll"))
        await self._sink.record(observations)
        return requests

    async def _list_workflow(self, runs: RunsToPoll) -> int:
        """List the workflow's runs, newest first, until each of `runs` was seen (or the listing ends: a run
        Cyberdesk lost is looked for to the end, and left to its timeout). Returns the requests made."""
        since = runs.oldest - _SKEW
        skip, requests = 0, 0
        while runs.statuses:
            requests += 1
            response = await self._client.runs.list(
                workflow_id=runs.workflow_id,
                created_at_from=since,
                sort_mode=RunListSortMode.CREATED_AT_DESC,
                fields=_FIELDS,
                skip=skip,
                limit=_PAGE,
            )
            page = response.data
            if page is None:
                break
            listed, total = len(page.items), page.total
            found = _moved(page, runs.statuses)
            del response, page  # only what moved outlives the page, while it is recorded
            await self._sink.record(found)
            skip += listed
            if not listed or skip >= total:
                break
        return requests


def _moved(page: Page[RunResponse], statuses: dict[str, str]) -> list[RunObservation]:
    """What the page says about runs in `statuses` whose status moved; each run it shows leaves `statuses`
    (shown again on a later page, when the listing shifted meanwhile, it is not looked at twice)."""
    found: list[RunObservation] = []
    for run in page.items:
        stored = statuses.pop(str(run.id), None)
        if stored is not None and is_news(run, stored):
            found.append(observation(run, "poll"))
    return found
