"""Jobs: sync from files, pause, schedule watermarks; several daemons syncing at once."""

from __future__ import annotations

import functools
from collections.abc import Callable

from store_helpers import T0, at, job, together

from cyberdesk_runner.store import Store


def test_sync_adds_changes_and_removes_jobs(store: Store) -> None:
    kinds = [t.kind for t in store.sync_jobs([job("a"), job("b")], T0)]
    assert sorted(kinds) == ["job_added", "job_added"]
    assert store.sync_jobs([job("a"), job("b")], at(1)) == []  # nothing changed

    changes = store.sync_jobs([job("a", "h2")], at(2))
    assert {(t.kind, t.job_name) for t in changes} == {("job_changed", "a"), ("job_removed", "b")}
    assert [j.name for j in store.jobs()] == ["a"]
    assert [j.name for j in store.jobs(include_removed=True)] == ["a", "b"]
    assert store.job("a").definition_hash == "h2"  # type: ignore[union-attr]

    store.set_last_slots({"b": at(1)})
    back = store.sync_jobs([job("a", "h2"), job("b")], at(3))
    assert [(t.kind, t.job_name) for t in back] == [("job_added", "b")]  # back: a fresh start...
    state = store.job("b")
    assert (
        state is not None and not state.removed and state.last_slot_at is None
    )  # ...no catch-up of its absence


def test_sync_keeps_what_belongs_to_the_store(store: Store) -> None:
    store.sync_jobs([job("a")], T0)
    assert store.set_paused("a", True, T0)
    store.set_last_slots({"a": at(10)})
    store.sync_jobs([job("a", "h2")], at(1))
    state = store.job("a")
    assert state is not None and state.paused and state.last_slot_at == at(10)


def test_pause_of_an_unknown_job_is_refused(store: Store) -> None:
    assert store.set_paused("nope", True, T0) is False


def test_schedule_watermarks_only_move_forward(store: Store) -> None:
    store.sync_jobs([job("a"), job("b")], T0)
    store.set_last_slots({"b": at(5), "a": at(10)})
    store.set_last_slots({"a": at(3), "b": at(7)})
    store.set_last_slot("a", at(4))
    assert store.job("a").last_slot_at == at(10)  # type: ignore[union-attr]
    assert store.job("b").last_slot_at == at(7)  # type: ignore[union-attr]


def test_daemons_starting_together_record_each_job_once(open_store: Callable[[], Store]) -> None:
    stores = [open_store() for _ in range(4)]
    jobs = [job(f"job-{n}") for n in range(20)]
    transitions, errors = together([functools.partial(s.sync_jobs, list(reversed(jobs)), T0) for s in stores])
    assert errors == []
    added = [t.job_name for ts in transitions for t in ts or [] if t.kind == "job_added"]
    assert sorted(added) == sorted(j.name for j in jobs)  # each added exactly once, by whoever came first
    assert len(stores[0].jobs()) == 20
