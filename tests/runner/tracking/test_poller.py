"""The poller on a fake API (httpx.MockTransport): paged list calls, stopping once every run in flight is seen,
and only runs whose status moved handed on."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import structlog

from cyberdesk import CyberdeskClient
from cyberdesk_runner.clock import ManualClock
from cyberdesk_runner.metrics import Metrics
from cyberdesk_runner.store.records import InFlightAttempt, RunObservation, RunsToPoll
from cyberdesk_runner.tracking.poller import Poller

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
WORKFLOW = str(uuid.UUID(int=1))
MACHINE = str(uuid.UUID(int=2))


def _attempt(n: int, run_id: str, status: str) -> InFlightAttempt:
    return InFlightAttempt(
        id=f"att_{n}",
        job_name="claims",
        run_id=run_id,
        workflow_id=WORKFLOW,
        machine_id=MACHINE,
        status=status,
        created_at=T0 + timedelta(seconds=n),
        deadline_at=T0 + timedelta(hours=1),
        cancel_requested=False,
    )


def _run(run_id: str, status: str, created_at: datetime) -> dict[str, Any]:
    return {
        "id": run_id,
        "workflow_id": WORKFLOW,
        "machine_id": MACHINE,
        "status": status,
        "created_at": created_at.isoformat(),
        "ended_at": (created_at + timedelta(seconds=30)).isoformat() if status == "success" else None,
    }


class FakeStore:
    def __init__(self, attempts: list[InFlightAttempt]) -> None:
        self.attempts = attempts
        self.tracking = self  # the poller asks `store.tracking.runs_to_poll()`

    def runs_to_poll(self) -> list[RunsToPoll]:
        by_workflow: dict[str, RunsToPoll] = {}
        for a in self.attempts:
            runs = by_workflow.setdefault(a.workflow_id, RunsToPoll(a.workflow_id, a.created_at, {}))
            runs.oldest = min(runs.oldest, a.created_at)
            runs.statuses[a.run_id or ""] = a.status
        return list(by_workflow.values())


class FakeSink:
    def __init__(self, api: FakeApi | None = None) -> None:
        self.recorded: list[RunObservation] = []
        self.api = api
        #: For each call of `record` with news: how many API requests had been made by then.
        self.requests_at_record: list[int] = []

    async def record(self, news: Sequence[RunObservation]) -> None:
        if news and self.api is not None:
            self.requests_at_record.append(len(self.api.requests))
        self.recorded += news


class FakeApi:
    """`GET /v1/runs` over `runs` (newest first), paged by skip/limit like the real API; `GET /v1/runs/{id}`."""

    def __init__(self, runs: list[dict[str, Any]]) -> None:
        self.runs = runs
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        assert request.method == "GET", request.method
        if request.url.path != "/v1/runs":
            run_id = request.url.path.removeprefix("/v1/runs/")
            return httpx.Response(200, json=next(r for r in self.runs if r["id"] == run_id))
        skip, limit = int(request.url.params["skip"]), int(request.url.params["limit"])
        page = self.runs[skip : skip + limit]
        return httpx.Response(
            200, json={"items": page, "total": len(self.runs), "skip": skip, "limit": limit}
        )


async def _poll(attempts: list[InFlightAttempt], api: FakeApi) -> tuple[int, FakeSink]:
    sink = FakeSink(api)
    async with CyberdeskClient("cd_test_key", async_transport=httpx.MockTransport(api)) as client:
        poller = Poller(
            store=FakeStore(attempts),  # type: ignore[arg-type]
            client=client,
            sink=sink,  # type: ignore[arg-type]
            clock=ManualClock(T0),
            metrics=Metrics(),
        )
        requests = await poller.poll_once()
    return requests, sink


async def test_lists_pages_until_every_run_in_flight_is_seen_and_hands_on_only_moved_runs() -> None:
    ours = [(str(uuid.uuid4()), n) for n in range(250)]
    attempts = [_attempt(n, run_id, "running") for run_id, n in ours]
    finished = {ours[n][0] for n in (3, 120, 249)}
    # Newest first: ours (three finished since the last poll), then 300 older runs that are not ours.
    listed = [
        _run(run_id, "success" if run_id in finished else "running", T0 + timedelta(seconds=n))
        for run_id, n in reversed(ours)
    ] + [_run(str(uuid.uuid4()), "success", T0 - timedelta(minutes=1)) for _ in range(300)]
    api = FakeApi(listed)

    requests, sink = await _poll(attempts, api)

    assert {o.run_id for o in sink.recorded} == finished
    assert {o.status for o in sink.recorded} == {"success"}
    assert all(o.source == "poll" and o.ended_at is not None for o in sink.recorded)
    # 250 runs of ours fit in three pages of 100: the 300 older runs are never fetched.
    assert requests == len(api.requests) == 3
    first = api.requests[0].url.params
    assert first["workflow_id"] == WORKFLOW and first["sort_mode"] == "created_at_desc"
    assert datetime.fromisoformat(first["created_at_from"]) < T0  # from before the oldest run, for clock skew


async def test_a_round_over_many_pages_reconciles_each_run_once_and_records_page_by_page() -> None:
    ours = [(str(uuid.uuid4()), n) for n in range(1_050)]
    attempts = [_attempt(n, run_id, "running") for run_id, n in ours]
    moved = {run_id: "success" if n % 3 else "error" for run_id, n in ours if n % 7 == 0 or n == 0}
    # Newest first, ours among as many runs of others (not in flight here): 21 pages of 100.
    listed: list[dict[str, Any]] = []
    for run_id, n in reversed(ours):
        listed.append(_run(run_id, moved.get(run_id, "running"), T0 + timedelta(seconds=n)))
        listed.append(_run(str(uuid.uuid4()), "success", T0 + timedelta(seconds=n)))
    api = FakeApi(listed)

    requests, sink = await _poll(attempts, api)

    assert sorted((o.run_id, o.status) for o in sink.recorded) == sorted(moved.items())  # each once
    assert requests == len(api.requests) == 21
    # What a page showed moved was recorded before the next page was asked for: one record per page with news.
    pages = sink.requests_at_record
    assert pages == sorted(set(pages)) and len(pages) > 10
    assert sink.requests_at_record[-1] == 21  # the oldest runs (n = 0) are on the last page


async def test_a_run_shown_twice_because_the_listing_shifted_is_handed_on_once() -> None:
    ours = [(str(uuid.uuid4()), n) for n in range(150)]
    attempts = [_attempt(n, run_id, "running") for run_id, n in ours]
    listed = [_run(run_id, "success", T0 + timedelta(seconds=n)) for run_id, n in reversed(ours)]
    # A run created between the two page requests pushes the listing down by one: the first page's last run
    # is the second page's first.
    api = ShiftingApi(listed, _run(str(uuid.uuid4()), "running", T0 + timedelta(hours=1)))

    requests, sink = await _poll(attempts, api)

    assert requests == 2
    assert sorted(o.run_id for o in sink.recorded) == sorted(run_id for run_id, _ in ours)


class ShiftingApi(FakeApi):
    """A listing that gains a newer run once its first page has been read."""

    def __init__(self, runs: list[dict[str, Any]], newcomer: dict[str, Any]) -> None:
        super().__init__(runs)
        self.newcomer = newcomer

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if len(self.requests) == 1 and self.runs[0] is not self.newcomer:
            self.runs.insert(0, self.newcomer)
        return super().__call__(request)


async def test_a_run_missing_from_the_listing_makes_it_read_to_the_end() -> None:
    attempts = [_attempt(n, str(uuid.uuid4()), "scheduling") for n in range(5)]
    # The API no longer lists the last one (deleted): every page is read, nothing is invented for it.
    listed = [_run(a.run_id or "", "running", a.created_at) for a in attempts[:4]]
    listed += [_run(str(uuid.uuid4()), "running", T0) for _ in range(150)]
    api = FakeApi(listed)

    requests, sink = await _poll(attempts, api)

    assert requests == 2
    assert sorted(o.run_id for o in sink.recorded) == sorted(a.run_id or "" for a in attempts[:4])


async def test_with_few_runs_in_flight_each_is_read_alone_and_only_moved_ones_are_handed_on() -> None:
    attempts = [_attempt(n, str(uuid.uuid4()), "running") for n in range(2)]
    api = FakeApi(
        [_run(attempts[0].run_id or "", "running", T0), _run(attempts[1].run_id or "", "success", T0)]
    )

    requests, sink = await _poll(attempts, api)

    assert requests == 2 and [r.url.path for r in api.requests] == [f"/v1/runs/{a.run_id}" for a in attempts]
    assert [(o.run_id, o.status) for o in sink.recorded] == [(attempts[1].run_id, "success")]


def _unknown_status_warnings(logs: list[dict[str, Any]], status: str) -> list[dict[str, Any]]:
    return [e for e in logs if e["event"] == "run_status_unknown" and e["status"] == status]


@pytest.mark.parametrize("in_flight", [2, 8], ids=["one GET per run", "list calls"])
async def test_an_unknown_status_keeps_the_run_in_flight_with_one_warning_per_new_value(
    in_flight: int,
) -> None:
    status = (
        f"paused_for_review_{in_flight}"  # new to this process: the warning is once per value, per process
    )
    run_ids = [str(uuid.uuid4()) for _ in range(in_flight)]
    attempts = [_attempt(n, run_id, "running") for n, run_id in enumerate(run_ids)]
    api = FakeApi([_run(run_id, status, T0 + timedelta(seconds=n)) for n, run_id in enumerate(run_ids)][::-1])

    with structlog.testing.capture_logs() as logs:
        for _ in range(3):  # three poll rounds, every run still in the unknown status
            _, sink = await _poll(attempts, api)
            assert sink.recorded == []  # no news: the attempts stay running, nothing is finished or failed

    warnings = _unknown_status_warnings(logs, status)
    assert len(warnings) == 1 and warnings[0]["log_level"] == "warning"

    # Then a known final status arrives: it is news, as ever.
    for run in api.runs:
        run["status"] = "success"
    _, sink = await _poll(attempts, api)
    assert {o.run_id for o in sink.recorded} == set(run_ids)
    assert {o.status for o in sink.recorded} == {"success"}
