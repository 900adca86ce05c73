"""News about runs from any daemon (webhooks, polls): idempotent, never backwards, unknown runs only logged;
the runner's own verdicts; item outcomes; fires settled exactly when their last item is final."""

from __future__ import annotations

import functools
from collections.abc import Callable
from datetime import timedelta

import pytest
from store_helpers import (
    LEASE,
    T0,
    Chooser,
    add_jobs,
    at,
    dispatch_and_create,
    manual_fire,
    policy,
    run,
    together,
)

from cyberdesk_runner.store import Store
from cyberdesk_runner.store.records import AttemptVerdict
from cyberdesk_runner.store.views import AttemptQuery


def test_news_moves_a_run_forward_only(store: Store) -> None:
    add_jobs(store, "a")
    manual_fire(store, "a", 1)
    (run_id,) = dispatch_and_create(store)
    assert [t.kind for t in store.tracking.apply_observations([run(run_id, "running")], at(1), policy())] == [
        "run_running"
    ]
    assert (
        store.tracking.apply_observations([run(run_id, "scheduling", "poll")], at(2), policy()) == []
    )  # stale
    assert (
        store.tracking.apply_observations([run(run_id, "running", "poll")], at(3), policy()) == []
    )  # repeat
    assert [a.status for a in store.tracking.in_flight()] == ["running"]


def test_a_final_status_is_applied_once(store: Store) -> None:
    add_jobs(store, "a")
    manual_fire(store, "a", 1)
    (run_id,) = dispatch_and_create(store)
    kinds = [t.kind for t in store.tracking.apply_observations([run(run_id, "success")], at(1), policy())]
    assert kinds == ["attempt_success", "item_succeeded", "fire_succeeded"]
    # The same webhook delivered to another daemon, and the poll that follows: no-ops.
    assert store.tracking.apply_observations([run(run_id, "success")], at(2), policy()) == []
    assert store.tracking.apply_observations([run(run_id, "error", "poll")], at(3), policy()) == []
    assert store.tracking.in_flight() == [] and store.counts.work().idle


def test_news_of_unknown_runs_is_reported_and_changes_nothing(store: Store) -> None:
    add_jobs(store, "a")
    manual_fire(store, "a", 1)
    dispatch_and_create(store)
    transitions = store.tracking.apply_observations([run("not-ours", "success")], at(1), policy())
    assert [(t.kind, t.run_id, t.data["status"]) for t in transitions] == [
        ("unknown_run", "not-ours", "success")
    ]
    assert store.counts.work().running_items == 1


def test_a_failure_is_retried_by_the_policy_then_fails_the_fire(store: Store) -> None:
    add_jobs(store, "a")
    manual_fire(store, "a", 1)
    (first,) = dispatch_and_create(store)
    retry = policy(max_attempts=2, retry_at=at(30))
    kinds = [t.kind for t in store.tracking.apply_observations([run(first, "error")], at(1), retry)]
    assert kinds == ["attempt_error", "item_retry_scheduled"]
    assert store.dispatch.assign(at(29), Chooser(now=at(29)), lease=LEASE) == []  # not due yet
    (second,) = dispatch_and_create(store, at(30))
    kinds = [t.kind for t in store.tracking.apply_observations([run(second, "task_failed")], at(31), retry)]
    assert kinds == ["attempt_task_failed", "item_failed", "fire_failed"]
    summary = store.counts.summary_since(T0)
    assert [(s.job_name, s.items_failed, s.items_retried, s.runs_created) for s in summary] == [
        ("a", 1, 1, 2)
    ]


@pytest.mark.parametrize(
    ("statuses", "fire_status"),
    [
        (["success", "success", "success"], "succeeded"),
        (["success", "task_failed", "cancelled"], "failed"),
        (["success", "cancelled", "success"], "cancelled"),
    ],
)
def test_a_fire_ends_when_its_last_item_does(store: Store, statuses: list[str], fire_status: str) -> None:
    add_jobs(store, "a")
    manual_fire(store, "a", 3)
    run_ids = dispatch_and_create(store)
    for n, (run_id, status) in enumerate(zip(run_ids, statuses, strict=True)):
        kinds = [
            t.kind for t in store.tracking.apply_observations([run(run_id, status)], at(n + 1), policy())
        ]
        assert (f"fire_{fire_status}" in kinds) == (n == 2)
    assert store.fires.of_job("a")[0].status == fire_status


def test_verdicts_finish_attempts_without_a_run_status(store: Store) -> None:
    add_jobs(store, "a")
    manual_fire(store, "a", 2)
    refs = store.dispatch.assign(T0, Chooser(), lease=LEASE)
    store.tracking.record_created([(refs[1].id, run("r-1", "running", "create"))], T0, policy())
    verdicts = [
        AttemptVerdict(refs[0].id, "rejected", ["400: bad input"], "create"),
        AttemptVerdict(refs[1].id, "timed_out", ["timed out after 30m"], "reaper"),
    ]
    kinds = [t.kind for t in store.tracking.apply_verdicts(verdicts, at(1), policy())]
    assert sorted(kinds) == [
        "attempt_rejected",
        "attempt_timed_out",
        "fire_failed",
        "item_failed",
        "item_failed",
    ]
    assert store.tracking.apply_verdicts(verdicts, at(2), policy()) == []  # already final
    assert store.tracking.in_flight() == []


def test_a_cancel_heard_past_the_deadline_is_a_timeout_and_is_retried(store: Store) -> None:
    # A reaper cancelled the overdue run, and the webhook (or a poll) came first, or the reaper's daemon died
    # before it recorded its verdict: the attempt counts as timed out, as the reaper would have recorded it.
    add_jobs(store, "a")
    manual_fire(store, "a", 1)
    (run_id,) = dispatch_and_create(store)  # deadline: 30 minutes
    retry = policy(max_attempts=2, retry_at=at(1900))
    kinds = [t.kind for t in store.tracking.apply_observations([run(run_id, "cancelled")], at(1801), retry)]
    assert kinds == ["attempt_timed_out", "item_retry_scheduled"]
    [attempt] = store.queries.attempt_views(AttemptQuery(job="a"))
    assert attempt.status == "timed_out"
    assert attempt.error == ["timed out after 30m; the run was cancelled"]


@pytest.mark.parametrize("requested", [False, True], ids=["before-the-deadline", "on-request"])
def test_a_cancel_meant_by_someone_is_not_retried(store: Store, requested: bool) -> None:
    add_jobs(store, "a")
    manual_fire(store, "a", 1)
    (run_id,) = dispatch_and_create(store)
    if requested:  # a user's cancel, carried out by the reaper: heard after the deadline, still a cancel
        store.control.cancel_pending_items("a", "user asked", at(1))
    when = at(1801) if requested else at(60)
    retry = policy(max_attempts=2)
    kinds = [t.kind for t in store.tracking.apply_observations([run(run_id, "cancelled")], when, retry)]
    assert kinds[:2] == ["attempt_cancelled", "item_cancelled"]


def _finish_together(stores: list[Store], runs: list[str]) -> list[BaseException]:
    _, errors = together(
        [
            functools.partial(s.tracking.apply_observations, [run(r, "success")], at(5), policy())
            for s, r in zip(stores, runs, strict=True)
        ]
    )
    return errors


def test_the_last_items_finishing_at_once_on_two_daemons_still_settle_the_fire(
    open_store: Callable[[], Store],
) -> None:
    stores = [open_store(), open_store()]
    add_jobs(stores[0], "a")
    for round_ in range(8):
        fire_id = manual_fire(stores[0], "a", 2, now=at(round_))
        run_ids = dispatch_and_create(stores[0], at(round_))
        assert _finish_together(stores, run_ids) == []
        fire = next(f for f in stores[0].fires.of_job("a") if f.id == fire_id)
        assert fire.status == "succeeded", f"round {round_}: the fire was left {fire.status}"


def _apply_in_orders(stores: list[Store], batches: list[list[str]]) -> list[BaseException]:
    def apply(store: Store, run_ids: list[str]) -> None:
        for _ in range(3):
            store.tracking.apply_observations([run(r, "success") for r in run_ids], at(5), policy())

    _, errors = together([functools.partial(apply, s, b) for s, b in zip(stores, batches, strict=True)])
    return errors


def test_two_daemons_applying_the_same_webhooks_in_opposite_orders(open_store: Callable[[], Store]) -> None:
    stores = [open_store(), open_store()]
    add_jobs(stores[0], "a", "b")
    manual_fire(stores[0], "a", 4)
    manual_fire(stores[0], "b", 4)
    run_ids = dispatch_and_create(stores[0])
    assert _apply_in_orders(stores, [run_ids, list(reversed(run_ids))]) == []
    assert {f.status for f in stores[0].fires.of_job("a") + stores[0].fires.of_job("b")} == {"succeeded"}
    assert stores[0].counts.work().idle


def test_a_create_answer_and_news_of_its_end_recorded_together_apply_in_order(store: Store) -> None:
    add_jobs(store, "a")
    manual_fire(store, "a", 1)
    [ref] = store.dispatch.assign(T0, Chooser(), lease=LEASE)
    recorded = store.tracking.record_news(
        [(ref.id, run("r-1", "running", "create"))],
        [run("r-1", "success"), run("stranger", "success")],
        at(1),
        policy(),
    )
    kinds = [t.kind for t in recorded.transitions]
    assert kinds[:2] == ["run_created", "attempt_success"] and "item_succeeded" in kinds
    # News of a run that is not ours is handed back, and nothing of it is recorded (the caller decides).
    assert [r.run_id for r in recorded.unknown] == ["stranger"]
    assert "unknown_run" not in {t.kind for t in recorded.transitions}
    [attempt] = store.tracking.in_flight() or [None]
    assert attempt is None and store.counts.work().idle


def test_the_reaper_reads_only_runs_past_their_deadline_or_asked_to_cancel(store: Store) -> None:
    add_jobs(store, "short", "long")
    manual_fire(store, "short", 2)
    short_runs = dispatch_and_create(store, timeout=timedelta(minutes=10))
    manual_fire(store, "long", 2, at(60))
    long_runs = dispatch_and_create(store, at(60), timeout=timedelta(minutes=30))
    assert store.tracking.to_reap(at(599)) == []
    assert sorted(a.run_id or "" for a in store.tracking.to_reap(at(600))) == sorted(
        short_runs
    )  # deadline: due
    [asked] = [a for a in store.tracking.in_flight() if a.run_id == long_runs[0]]
    store.control.cancel_attempts([asked.id], "asked", at(120))
    reaped = {a.run_id for a in store.tracking.to_reap(at(121))}
    assert reaped == {long_runs[0]}  # cancel requested, long before its deadline
    assert all(a.cancel_requested for a in store.tracking.to_reap(at(121)))
