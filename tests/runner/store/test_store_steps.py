"""Step runs of multi-step attempts (`store.steps` and the tracking that moves them), on SQLite and PostgreSQL:
recorded once with the chain's answer, moved by news like runs, the attempt ended by what its steps say together,
the steps left open after its end closed, and two daemons applying the same news at once ending it once."""

from __future__ import annotations

from collections.abc import Callable

from store_helpers import LEASE, T0, Chooser, add_jobs, at, manual_fire, policy, together

from cyberdesk_runner.store import Store
from cyberdesk_runner.store.records import NewStepRun, RunObservation

WORKFLOWS = [("signin", "Sign in"), (None, "Look up"), ("update", "Update")]


def _chain(store: Store, n: int = 1) -> list[tuple[str, list[str]]]:
    """Dispatch `n` items of job `a` and record each attempt's chain answer; returns (attempt id, step run ids)."""
    refs = store.dispatch.assign(T0, Chooser(now=T0), lease=LEASE)
    assert len(refs) == n
    chains = {ref.id: [f"run-{ref.id}-{i}" for i in range(3)] for ref in refs}
    steps = {
        attempt_id: [
            NewStepRun(i, alias, f"wf-{i}", workflow, run_ids[i])
            for i, (alias, workflow) in enumerate(WORKFLOWS)
        ]
        for attempt_id, run_ids in chains.items()
    }
    created = [
        (attempt_id, RunObservation(run_ids[0], "scheduling", source="create"))
        for attempt_id, run_ids in chains.items()
    ]
    store.tracking.record_news(created, [], T0, policy(), steps)
    return list(chains.items())


def _news(run_id: str, status: str, output: dict[str, object] | None = None) -> RunObservation:
    final = status in ("success", "task_failed", "error", "cancelled")
    error = ["it broke"] if final and status != "success" else None
    return RunObservation(run_id, status, at(1), at(2) if final else None, error, output, "webhook")


def _statuses(store: Store, attempt_id: str) -> list[str]:
    return [s["status"] for s in store.steps.of_attempts([attempt_id])[attempt_id]]


def test_a_chain_answer_is_recorded_once_with_one_row_per_step(store: Store) -> None:
    add_jobs(store, "a")
    manual_fire(store, "a", 1)
    [(attempt_id, runs)] = _chain(store)
    # The same answer recorded again (a retried create call answered from the idempotency cache): no-op.
    store.tracking.record_news(
        [(attempt_id, RunObservation(runs[0], "scheduling", source="create"))],
        [],
        at(1),
        policy(),
        {attempt_id: [NewStepRun(0, "signin", "wf-0", "Sign in", runs[0])]},
    )
    steps = store.steps.of_attempts([attempt_id])[attempt_id]
    assert [(s["step"], s["alias"], s["workflow"], s["run_id"]) for s in steps] == [
        (1, "signin", "Sign in", runs[0]),
        (2, None, "Look up", runs[1]),
        (3, "update", "Update", runs[2]),
    ]
    assert [a.run_id for a in store.tracking.in_flight()] == [
        runs[0]
    ]  # the attempt's run is the first step's
    assert [s.run_id for s in store.steps.in_flight()] == runs  # polls watch every open step
    assert store.steps.open_after_end() == []


def test_polls_watch_each_run_in_flight_once_by_workflow_and_a_chain_by_its_open_steps(store: Store) -> None:
    add_jobs(store, "a", "b")
    manual_fire(store, "a", 1)
    [(_, chain)] = _chain(store)
    # Step 1 done, steps 2 and 3 open.
    store.tracking.apply_observations([_news(chain[0], "success")], at(1), policy())
    manual_fire(store, "b", 3)
    refs = store.dispatch.assign(at(5), Chooser(now=at(5)), lease=LEASE)
    ended, running, _creating = (ref.id for ref in refs)
    store.tracking.record_created(
        [(ended, _news(f"run-{ended}", "running")), (running, _news(f"run-{running}", "running"))],
        at(6),
        policy(),
    )
    store.tracking.apply_observations([_news(f"run-{ended}", "success")], at(7), policy())

    watched = {runs.workflow_id: runs for runs in store.tracking.runs_to_poll()}

    # Job b's attempts run workflow wf-1 (Chooser), as does the chain's second step: one listing for both. The
    # chain's own run (its first step's, final) and job b's attempt still creating (no run yet) are not polled.
    assert {w: runs.statuses for w, runs in watched.items()} == {
        "wf-1": {chain[1]: "scheduling", f"run-{running}": "running"},
        "wf-2": {chain[2]: "scheduling"},
    }
    assert watched["wf-1"].oldest == watched["wf-2"].oldest == T0  # the chain's answer was recorded at T0


def test_every_step_succeeding_ends_the_attempt_with_the_last_steps_output(store: Store) -> None:
    add_jobs(store, "a")
    fire_id = manual_fire(store, "a", 1)
    [(attempt_id, runs)] = _chain(store)
    kinds = [t.kind for t in store.tracking.apply_observations([_news(runs[0], "running")], at(1), policy())]
    assert kinds == ["step_running", "run_running"]
    news = [_news(runs[0], "success", {"chart_id": "C-1"}), _news(runs[1], "success", {"ward": "B"})]
    kinds = [t.kind for t in store.tracking.apply_observations(news, at(2), policy())]
    assert kinds == ["step_success", "step_success"]  # the chain goes on: the attempt is still running
    assert [a.status for a in store.tracking.in_flight()] == ["running"]
    # A stale poll of a step already final changes nothing.
    assert store.tracking.apply_observations([_news(runs[0], "running")], at(3), policy()) == []
    last = _news(runs[2], "success", {"updated": True})
    kinds = [t.kind for t in store.tracking.apply_observations([last], at(4), policy())]
    assert kinds == ["step_success", "attempt_success", "item_succeeded", "fire_succeeded"]
    assert store.tracking.apply_observations([last], at(5), policy()) == []  # the same webhook again
    [row] = list(store.results.result_rows(fire_id))
    assert row.status == "succeeded" and row.run_id == runs[0]
    assert [(o.alias, o.output) for o in row.outputs] == [
        ("signin", {"chart_id": "C-1"}),
        ("2", {"ward": "B"}),
        ("update", {"updated": True}),
    ]
    assert store.steps.in_flight() == [] and store.steps.open_after_end() == []
    # The exit summary counts every step's run (one chain of three).
    [summary] = store.counts.summary_since(T0)
    assert (summary.items_succeeded, summary.runs_created) == (1, 3)


def test_a_failed_step_ends_the_attempt_once_the_steps_before_it_are_heard(store: Store) -> None:
    add_jobs(store, "a")
    manual_fire(store, "a", 1)
    [(attempt_id, runs)] = _chain(store)
    retry = policy(max_attempts=2, retry_at=at(30))
    # The API cancels the steps after a failed one; that news may come before the failure's own.
    kinds = [t.kind for t in store.tracking.apply_observations([_news(runs[2], "cancelled")], at(1), retry)]
    assert kinds == ["step_cancelled"]
    assert [a.status for a in store.tracking.in_flight()] == ["scheduling"]  # steps 1 and 2 not heard yet
    store.tracking.apply_observations([_news(runs[0], "success", {"chart_id": "C-1"})], at(2), retry)
    transitions = store.tracking.apply_observations([_news(runs[1], "task_failed")], at(3), retry)
    assert [t.kind for t in transitions] == [
        "step_task_failed",
        "attempt_task_failed",
        "item_retry_scheduled",
    ]
    ended = next(t for t in transitions if t.kind == "attempt_task_failed")
    assert ended.attempt_id == attempt_id
    assert _statuses(store, attempt_id) == ["success", "task_failed", "cancelled"]
    # The retry is a new attempt (a new chain), due by the policy; the old chain's rows stay as they were.
    assert store.dispatch.assign(at(29), Chooser(now=at(29)), lease=LEASE) == []
    [second] = store.dispatch.assign(at(30), Chooser(now=at(30)), lease=LEASE)
    assert second.id != attempt_id
    assert store.steps.of_attempts([second.id]) == {}  # no step runs until its chain call is answered


def test_steps_left_open_after_their_attempt_ended_are_listed_and_closed(store: Store) -> None:
    add_jobs(store, "a")
    manual_fire(store, "a", 1)
    [(attempt_id, runs)] = _chain(store)
    store.tracking.apply_observations(
        [_news(runs[0], "success", {"chart_id": "C-1"}), _news(runs[1], "error")], at(1), policy()
    )
    [item] = store.queries.item_views(store.queries.fire_views()[0].id)
    assert item.status == "failed"
    # Step 3's end was never heard: the reaper must cancel it in Cyberdesk.
    [left] = store.steps.open_after_end()
    assert (left.attempt_id, left.index, left.run_id) == (attempt_id, 2, runs[2])
    assert store.steps.in_flight() == []  # not polled as part of a chain in flight any more
    transitions = store.steps.close(
        [runs[2]], "cancelled", "its chain ended before this step finished", at(2)
    )
    assert [(t.kind, t.run_id, t.data["step"]) for t in transitions] == [("step_cancelled", runs[2], 3)]
    assert store.steps.close([runs[2]], "cancelled", "again", at(3)) == []  # already closed
    assert store.steps.open_after_end() == []
    step = store.steps.of_attempts([attempt_id])[attempt_id][2]
    assert (step["status"], step["error"]) == ("cancelled", ["its chain ended before this step finished"])


def test_two_daemons_applying_the_same_step_news_end_the_attempt_once(
    store: Store, open_store: Callable[[], Store]
) -> None:
    add_jobs(store, "a")
    manual_fire(store, "a", 4)
    chains = _chain(store, 4)
    first, second = open_store(), open_store()
    news = [
        _news(run_id, "success", {"step": i}) for _attempt, runs in chains for i, run_id in enumerate(runs)
    ]
    # Each daemon hears every webhook (in opposite orders), at the same moment.
    results, errors = together(
        [
            lambda: first.tracking.apply_observations(news, at(1), policy()),
            lambda: second.tracking.apply_observations(list(reversed(news)), at(1), policy()),
        ]
    )
    assert errors == []
    kinds = [t.kind for transitions in results for t in transitions or []]
    assert kinds.count("attempt_success") == 4 and kinds.count("item_succeeded") == 4
    assert kinds.count("step_success") == 12 and kinds.count("fire_succeeded") == 1
    for attempt_id, _runs in chains:
        assert _statuses(store, attempt_id) == ["success"] * 3
