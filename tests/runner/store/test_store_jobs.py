"""Jobs: sync from files, pause, schedule watermarks; several daemons syncing at once."""

from __future__ import annotations

import functools
from collections.abc import Callable

from store_helpers import T0, at, job, together

from cyberdesk_runner.store import Store
from cyberdesk_runner.store.records import JobMark


def test_sync_adds_changes_and_removes_jobs(store: Store) -> None:
    kinds = [t.kind for t in store.jobs.sync([job("a"), job("b")], T0)]
    assert sorted(kinds) == ["job_added", "job_added"]
    assert store.jobs.sync([job("a"), job("b")], at(1)) == []  # nothing changed

    changes = store.jobs.sync([job("a", "h2")], at(2))
    assert {(t.kind, t.job_name) for t in changes} == {("job_changed", "a"), ("job_removed", "b")}
    assert [j.name for j in store.jobs.all()] == ["a"]
    assert [j.name for j in store.jobs.all(include_removed=True)] == ["a", "b"]
    assert store.jobs.get("a").definition_hash == "h2"  # type: ignore[union-attr]

    store.jobs.set_last_slots({"b": at(1)})
    back = store.jobs.sync([job("a", "h2"), job("b")], at(3))
    assert [(t.kind, t.job_name) for t in back] == [("job_added", "b")]  # back: a fresh start...
    state = store.jobs.get("b")
    assert (
        state is not None and not state.removed and state.last_slot_at is None
    )  # ...no catch-up of its absence


def test_sync_keeps_what_belongs_to_the_store(store: Store) -> None:
    store.jobs.sync([job("a")], T0)
    assert store.jobs.set_paused("a", True, T0)
    store.jobs.set_last_slots({"a": at(10)})
    store.jobs.sync([job("a", "h2")], at(1))
    state = store.jobs.get("a")
    assert state is not None and state.paused and state.last_slot_at == at(10)


def test_pause_of_an_unknown_job_is_refused(store: Store) -> None:
    assert store.jobs.set_paused("nope", True, T0) is False


def test_schedule_watermarks_only_move_forward(store: Store) -> None:
    store.jobs.sync([job("a"), job("b")], T0)
    store.jobs.set_last_slots({"b": at(5), "a": at(10)})
    store.jobs.set_last_slots({"a": at(3), "b": at(7)})
    store.jobs.set_last_slot("a", at(4))
    assert store.jobs.get("a").last_slot_at == at(10)  # type: ignore[union-attr]
    assert store.jobs.get("b").last_slot_at == at(7)  # type: ignore[union-attr]


def test_marks_are_each_present_job_s_pause_and_watermark(store: Store) -> None:
    store.jobs.sync([job("a"), job("b"), job("gone")], T0)
    store.jobs.set_last_slots({"a": at(5)})
    store.jobs.set_paused("b", True, T0)
    store.jobs.sync([job("a"), job("b")], at(1))  # "gone" was removed from the files
    assert store.jobs.marks() == {"a": JobMark(False, at(5)), "b": JobMark(True, None)}


def test_daemons_starting_together_record_each_job_once(open_store: Callable[[], Store]) -> None:
    stores = [open_store() for _ in range(4)]
    jobs = [job(f"job-{n}") for n in range(20)]
    transitions, errors = together([functools.partial(s.jobs.sync, list(reversed(jobs)), T0) for s in stores])
    assert errors == []
    added = [t.job_name for ts in transitions for t in ts or [] if t.kind == "job_added"]
    assert sorted(added) == sorted(j.name for j in jobs)  # each added exactly once, by whoever came first
    assert len(stores[0].jobs.all()) == 20
