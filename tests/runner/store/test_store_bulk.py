"""A big fire's retry and cancel by chunks (`bulk`): each failed item retried once per request, each open item
cancelled or flagged once, whoever continues after a process stopped between chunks (killed: once its claim
lapsed; stopped cleanly: at once), and however many processes continue at the same moment."""

from __future__ import annotations

import functools
from collections import Counter
from collections.abc import Callable
from datetime import timedelta

import pytest
import sqlalchemy as sa
from store_helpers import (
    LEASE,
    T0,
    Chooser,
    add_jobs,
    at,
    dispatch_and_create,
    manual_fire,
    policy,
    seq_n_status,
    together,
)

from cyberdesk_runner import bulk
from cyberdesk_runner.store import Store
from cyberdesk_runner.store.records import AttemptVerdict, NewFire, NewItem
from cyberdesk_runner.store.tables import event_t, fire_t, item_t

ITEMS = 30
#: The retried fire's failed items: every third one, and a run of them at its end.
FAILED = sorted({*range(0, ITEMS, 3), 26, 27, 28, 29})


@pytest.fixture(autouse=True)
def _small_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Chunks of 4 items, whatever their transactions take."""
    monkeypatch.setattr(bulk, "CHUNK_FIRST", 4)
    monkeypatch.setattr(bulk, "CHUNK_MIN", 4)
    monkeypatch.setattr(bulk, "CHUNK_MAX", 4)
    monkeypatch.setattr(bulk, "SQLITE_PAUSE", 0)


def _failed_fire(store: Store) -> str:
    add_jobs(store, "a")
    fire_id = manual_fire(store, "a", ITEMS)
    with store.engine.begin() as conn:
        for seq in range(ITEMS):
            status = "failed" if seq in FAILED else "succeeded"
            conn.execute(
                sa.update(item_t)
                .where(item_t.c.fire_id == fire_id, item_t.c.seq == seq)
                .values(status=status, finished_at=T0, last_error="boom" if status == "failed" else None)
            )
        conn.execute(sa.update(fire_t).where(fire_t.c.id == fire_id).values(status="failed", finished_at=T0))
    return fire_id


def _fire_row(store: Store, fire_id: str) -> sa.Row[tuple[object, ...]]:
    with store.engine.connect() as conn:
        return conn.execute(sa.select(fire_t).where(fire_t.c.id == fire_id)).one()


def _copy_chunks(store: Store, retry_id: str, seq: int, chunks: int, *, now: float = 0) -> int:
    """`chunks` chunks of 4 items from `seq` (their failed ones copied); where the next one starts."""
    for _ in range(chunks):
        copied = store.plans.copy_failed(retry_id, seq, at(now), limit=4)
        assert copied is not None and not copied.done
        seq = copied.next_seq
    return seq


def _failed_before(seq: int) -> int:
    """How many items before `seq` failed: the copies of chunks that went that far."""
    return len([n for n in FAILED if n < seq])


def _retries_of(store: Store, fire_id: str) -> list[str]:
    with store.engine.connect() as conn:
        return list(conn.execute(sa.select(fire_t.c.id).where(fire_t.c.retry_of == fire_id)).scalars())


def test_a_retry_copies_each_failed_item_once_keeping_its_place(store: Store) -> None:
    fire_id = _failed_fire(store)
    outcome = bulk.retry_fire(store, fire_id, lambda: at(1))
    assert outcome.finished and outcome.created and outcome.copied == len(FAILED)
    assert outcome.fire_id is not None
    assert seq_n_status(store, outcome.fire_id) == [(n, n, "pending") for n in FAILED]
    view = store.queries.fire_view(outcome.fire_id)
    assert view is not None and (view.status, view.items_total, view.retry_of) == (
        "running",
        len(FAILED),
        fire_id,
    )
    kinds = [t.kind for t in outcome.transitions]
    assert kinds == ["fire_started"]
    # Asked again while that retry runs: it is the answer, no second one runs the same items.
    again = bulk.retry_fire(store, fire_id, lambda: at(2))
    assert (again.fire_id, again.created, again.finished, again.copied) == (outcome.fire_id, False, True, 0)
    # Once its items have all ended, a new request is a new retry: each failed item once more.
    with store.engine.begin() as conn:
        conn.execute(sa.update(item_t).where(item_t.c.fire_id == outcome.fire_id).values(status="failed"))
        conn.execute(sa.update(fire_t).where(fire_t.c.id == outcome.fire_id).values(status="failed"))
    third = bulk.retry_fire(store, fire_id, lambda: at(3))
    assert third.created and third.fire_id not in (None, outcome.fire_id)
    assert third.fire_id is not None and len(seq_n_status(store, third.fire_id)) == len(FAILED)


def test_a_retry_of_one_item_does_not_stand_for_the_fire_s_retry(store: Store) -> None:
    fire_id = _failed_fire(store)
    [first] = [i for i in store.queries.item_views(fire_id, limit=1) if i.status == "failed"]
    one = store.control.retry_failed(first.id, at(1))
    assert one is not None and [i.seq for i in store.queries.item_views(one)] == [0]
    whole = bulk.retry_fire(store, fire_id, lambda: at(2))
    assert whole.created and whole.fire_id not in (None, one)
    assert whole.fire_id is not None and len(seq_n_status(store, whole.fire_id)) == len(FAILED)


def test_a_retry_killed_midway_is_finished_by_the_command_run_again_once_its_claim_lapses(
    open_store: Callable[[], Store],
) -> None:
    killed, again = open_store(), open_store()
    fire_id = _failed_fire(killed)
    start = killed.plans.start_retry(fire_id, T0)
    assert start is not None and start.claim is not None and start.claim.next_seq == 0
    _copy_chunks(killed, start.fire_id, 0, 2)  # then the process is killed
    assert len(seq_n_status(again, start.fire_id)) == _failed_before(8)
    assert store_is_being_planned(again, start.fire_id)

    busy = bulk.retry_fire(again, fire_id, lambda: at(5))
    assert (busy.fire_id, busy.busy, busy.finished, busy.copied) == (start.fire_id, True, False, 0)
    done = bulk.retry_fire(again, fire_id, lambda: at(16))  # the claim (15 s) lapsed
    assert (done.fire_id, done.created, done.finished) == (start.fire_id, False, True)
    assert done.copied == len(FAILED) - _failed_before(8)
    assert seq_n_status(again, start.fire_id) == [(n, n, "pending") for n in FAILED]
    assert _retries_of(again, fire_id) == [start.fire_id], "continued, not made again"
    assert killed.plans.copy_failed(start.fire_id, 8, at(17), limit=4) is None, "no longer the killed one's"


def store_is_being_planned(store: Store, fire_id: str) -> bool:
    row = _fire_row(store, fire_id)
    return row.status == "running" and row.planned_at is None


def test_a_retry_killed_midway_is_finished_by_a_daemon(open_store: Callable[[], Store]) -> None:
    killed, daemon = open_store(), open_store()
    fire_id = _failed_fire(killed)
    start = killed.plans.start_retry(fire_id, T0)
    assert start is not None and start.claim is not None
    _copy_chunks(killed, start.fire_id, 0, 1)
    assert daemon.fires.requested(now=at(10)) == []
    [request] = daemon.fires.requested(now=at(16))
    assert (request.id, request.resumed, request.copies_failed) == (start.fire_id, True, True)
    transitions = bulk.continue_retry(daemon, request, lambda: at(16))
    assert transitions is not None and [t.kind for t in transitions] == ["fire_started"]
    assert seq_n_status(daemon, start.fire_id) == [(n, n, "pending") for n in FAILED]
    assert not store_is_being_planned(daemon, start.fire_id)


def test_a_retry_stopped_cleanly_is_continued_at_once(open_store: Callable[[], Store]) -> None:
    stopped, again = open_store(), open_store()
    fire_id = _failed_fire(stopped)
    chunks = 0

    def stopping() -> bool:
        nonlocal chunks
        chunks += 1
        return chunks > 2

    first = bulk.retry_fire(stopped, fire_id, lambda: T0, stopping=stopping)
    assert (
        first.fire_id is not None
        and not first.finished
        and not first.busy
        and first.copied == _failed_before(8)
    )
    row = _fire_row(again, first.fire_id)
    assert row.planned_by is None and row.plan_lease_until == T0, "the claim is given back"
    [request] = again.fires.requested(now=T0)
    assert request.id == first.fire_id
    done = bulk.retry_fire(again, fire_id, lambda: T0)  # no wait for a lapse
    assert done.finished and done.copied == len(FAILED) - _failed_before(8)
    assert seq_n_status(again, first.fire_id) == [(n, n, "pending") for n in FAILED]


def test_processes_continuing_one_retry_at_once_copy_each_item_once(open_store: Callable[[], Store]) -> None:
    stores = [open_store() for _ in range(4)]
    fire_id = _failed_fire(stores[0])
    start = stores[0].plans.start_retry(fire_id, T0)
    assert start is not None
    _copy_chunks(stores[0], start.fire_id, 0, 1)  # then killed
    request = stores[0].fires.requested(now=at(16))[0]
    results, errors = together(
        [functools.partial(bulk.continue_retry, s, request, lambda: at(16)) for s in stores[1:]]
        + [functools.partial(bulk.retry_fire, stores[0], fire_id, lambda: at(16))]
    )
    assert errors == []
    assert seq_n_status(stores[0], start.fire_id) == [(n, n, "pending") for n in FAILED]
    assert _retries_of(stores[0], fire_id) == [start.fire_id]
    finished = [r for r in results[:-1] if r is not None]
    last = results[-1]
    assert isinstance(last, bulk.RetryOutcome)
    assert len(finished) + bool(last.transitions) == 1, "one of them finished it"


def test_a_retry_being_copied_stops_when_it_is_cancelled(store: Store) -> None:
    fire_id = _failed_fire(store)
    start = store.plans.start_retry(fire_id, T0)
    assert start is not None
    _copy_chunks(store, start.fire_id, 0, 1)
    cancelled = bulk.cancel_fire(store, start.fire_id, "no", lambda: at(1))
    assert cancelled.finished and cancelled.kinds["item_cancelled"] == _failed_before(4)
    assert store.plans.copy_failed(start.fire_id, 4, at(2), limit=4) is None
    assert _fire_row(store, start.fire_id).status == "cancelled"


# -- cancel ------------------------------------------------------------------------------------------------


def _busy_fire(store: Store, busy: int = 5) -> tuple[str, set[str]]:
    """A fire of ITEMS items, `busy` of them running (one desktop each); the ids of the running ones."""
    add_jobs(store, "a")
    fire_id = manual_fire(store, "a", ITEMS)
    dispatch_and_create(store, desktops=[f"m-{n}" for n in range(busy)])
    with store.engine.connect() as conn:
        running = set(
            conn.execute(
                sa.select(item_t.c.id).where(item_t.c.fire_id == fire_id, item_t.c.status == "running")
            )
            .scalars()
            .all()
        )
    assert len(running) == busy
    return fire_id, running


def _cancel_events(store: Store, fire_id: str) -> Counter[tuple[str, str | None]]:
    """(kind, item) of the fire's cancel events: each item's at most once."""
    with store.engine.connect() as conn:
        rows = conn.execute(
            sa.select(event_t.c.kind, event_t.c.item_id).where(
                event_t.c.fire_id == fire_id, event_t.c.kind.in_(["item_cancelled", "cancel_requested"])
            )
        ).all()
    return Counter((r.kind, r.item_id) for r in rows)


def _statuses(store: Store, fire_id: str) -> Counter[tuple[str, bool]]:
    with store.engine.connect() as conn:
        rows = conn.execute(
            sa.select(item_t.c.status, item_t.c.cancel_requested).where(item_t.c.fire_id == fire_id)
        ).all()
    return Counter((r.status, bool(r.cancel_requested)) for r in rows)


def _assert_cancelled_once(store: Store, fire_id: str, running: set[str]) -> None:
    busy = len(running)
    assert _statuses(store, fire_id) == {("cancelled", False): ITEMS - busy, ("running", True): busy}
    events = _cancel_events(store, fire_id)
    assert set(events.values()) == {1}, "no item cancelled or flagged twice"
    assert {item for kind, item in events if kind == "cancel_requested"} == running
    assert sum(1 for kind, _ in events if kind == "item_cancelled") == ITEMS - busy
    assert all(a.cancel_requested for a in store.tracking.in_flight()), "the reaper cancels their runs"


def _cancel_chunks(store: Store, fire_id: str, chunks: int, *, now: float = 0) -> int:
    after = -1
    for _ in range(chunks):
        chunk = store.control.cancel_chunk(fire_id, after, at(now), limit=4)
        assert not chunk.done
        after = chunk.last_seq
    return after


def test_a_cancel_by_chunks_cancels_pending_items_and_flags_running_ones_once(store: Store) -> None:
    fire_id, running = _busy_fire(store)
    outcome = bulk.cancel_fire(store, fire_id, "enough", lambda: at(1))
    assert outcome.started and outcome.finished and outcome.reason == "enough"
    assert (outcome.kinds["item_cancelled"], outcome.kinds["cancel_requested"]) == (ITEMS - 5, 5)
    _assert_cancelled_once(store, fire_id, running)
    row = _fire_row(store, fire_id)
    assert (row.status, row.cancel_reason, row.cancel_lease_until) == ("running", "enough", None)
    # Asked again: nothing left to do, nothing done twice.
    again = bulk.cancel_fire(store, fire_id, "again", lambda: at(2))
    assert again.finished and not (again.kinds["item_cancelled"] or again.kinds["cancel_requested"])
    _assert_cancelled_once(store, fire_id, running)
    # The reaper's verdicts end the runs: the fire is cancelled.
    verdicts = [
        AttemptVerdict(a.id, "cancelled", ["cancelled on request"], "reaper")
        for a in store.tracking.in_flight()
    ]
    kinds = [t.kind for t in store.tracking.apply_verdicts(verdicts, at(3), policy())]
    assert kinds[-1] == "fire_cancelled"
    assert bulk.cancel_fire(store, fire_id, "late", lambda: at(4)).started is False


def test_a_cancel_killed_midway_gets_no_new_run_and_is_finished_by_a_daemon(
    open_store: Callable[[], Store],
) -> None:
    killed, daemon = open_store(), open_store()
    fire_id, running = _busy_fire(killed)
    start = killed.control.request_cancel(fire_id, "enough", T0)
    assert start is not None and start.chunks
    _cancel_chunks(killed, fire_id, 2)  # then the process is killed
    assert daemon.dispatch.assign(at(1), Chooser(now=at(1)), lease=LEASE) == [], "no new run for its items"
    assert daemon.control.cancels_to_continue(at(10)) == []
    assert daemon.control.cancels_to_continue(at(16)) == [fire_id]
    assert bulk.continue_cancels(daemon, lambda: at(16)) == 1
    _assert_cancelled_once(daemon, fire_id, running)
    assert daemon.control.cancels_to_continue(at(600)) == [], "carried through"


def test_a_cancel_killed_midway_is_finished_by_the_command_run_again(open_store: Callable[[], Store]) -> None:
    killed, again = open_store(), open_store()
    fire_id, running = _busy_fire(killed)
    assert killed.control.request_cancel(fire_id, "first", T0) is not None
    _cancel_chunks(killed, fire_id, 3)
    outcome = bulk.cancel_fire(
        again, fire_id, "second", lambda: at(1)
    )  # at once: the same request, continued
    assert outcome.finished and outcome.reason == "first"
    _assert_cancelled_once(again, fire_id, running)
    with again.engine.connect() as conn:
        reasons = conn.execute(sa.select(event_t.c.data).where(event_t.c.kind == "item_cancelled")).scalars()
        assert {r["reason"] for r in reasons} == {"first"}


def test_a_cancel_stopped_cleanly_is_continued_at_once(open_store: Callable[[], Store]) -> None:
    stopped, daemon = open_store(), open_store()
    fire_id, running = _busy_fire(stopped)
    calls = 0

    def stopping() -> bool:
        nonlocal calls
        calls += 1
        return calls > 2

    outcome = bulk.cancel_fire(stopped, fire_id, "enough", lambda: T0, stopping=stopping)
    assert outcome.started and not outcome.finished
    assert daemon.control.cancels_to_continue(T0) == [fire_id], "given back: no wait for a lapse"
    assert bulk.continue_cancels(daemon, lambda: T0) == 1
    _assert_cancelled_once(daemon, fire_id, running)


def test_processes_continuing_one_cancel_at_once_cancel_each_item_once(
    open_store: Callable[[], Store],
) -> None:
    stores = [open_store() for _ in range(4)]
    fire_id, running = _busy_fire(stores[0], busy=20)
    assert stores[0].control.request_cancel(fire_id, "enough", T0) is not None
    _cancel_chunks(stores[0], fire_id, 1)
    # Chunks from wherever each starts, all at once (three from the start: the same rows, read before another
    # process's chunk commits): the check again under the items' locks keeps each item's cancel once.
    results, errors = together(
        [
            functools.partial(_cancel_to_the_end, s, fire_id, after)
            for s, after in zip(stores, (-1, -1, -1, 10), strict=True)
        ]
    )
    assert errors == []
    _assert_cancelled_once(stores[0], fire_id, running)


def _cancel_to_the_end(store: Store, fire_id: str, after: int) -> None:
    while not (chunk := store.control.cancel_chunk(fire_id, after, at(1), limit=3)).done:
        after = chunk.last_seq


def test_a_cancel_stops_the_plan_of_a_fire_being_planned(store: Store) -> None:
    add_jobs(store, "a")
    fire_id = store.fires.request(NewFire("a", "manual", None), T0)
    assert store.plans.claim_plan(fire_id, T0, expected=100, digest=None)
    assert store.plans.plan_chunk(fire_id, 0, [NewItem({"n": n}) for n in range(6)], T0)
    outcome = bulk.cancel_fire(store, fire_id, "stop", lambda: at(1))
    assert outcome.finished and outcome.kinds == Counter({"item_cancelled": 6, "fire_cancelled": 1})
    assert store.plans.plan_chunk(fire_id, 6, [NewItem({"n": 6})], at(2)) is False
    assert _fire_row(store, fire_id).items_total == 6


@pytest.mark.parametrize("requested", [True, False])
def test_a_fire_not_started_or_ended_is_cancelled_at_once_or_not_at_all(
    store: Store, requested: bool
) -> None:
    add_jobs(store, "a")
    fire_id = store.fires.request(NewFire("a", "manual", None), T0)
    if not requested:
        store.fires.fail(fire_id, "no desktop", T0)
    outcome = bulk.cancel_fire(store, fire_id, "no", lambda: T0 + timedelta(seconds=1))
    if requested:
        assert outcome.started and outcome.finished and outcome.kinds == Counter({"fire_cancelled": 1})
        assert _fire_row(store, fire_id).status == "cancelled"
    else:
        assert not outcome.started and _fire_row(store, fire_id).status == "failed"
