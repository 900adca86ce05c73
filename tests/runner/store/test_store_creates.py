"""Create calls: their results recorded once; unknown outcomes deferred and repeated with the same key; claims
(leases) on creating attempts renewed by their owner and taken over once they lapse."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from store_helpers import LEASE, T0, Chooser, add_jobs, at, created, manual_fire, policy, run

from cyberdesk_runner.store import Store


def _one_creating(store: Store) -> str:
    add_jobs(store, "a")
    manual_fire(store, "a", 1)
    (ref,) = store.dispatch.assign(T0, Chooser(), lease=LEASE)
    return ref.id


def test_record_created_sets_the_run_once(store: Store) -> None:
    add_jobs(store, "a")
    manual_fire(store, "a", 2)
    refs = store.dispatch.assign(T0, Chooser(), lease=LEASE)
    transitions = store.tracking.record_created(created(refs), at(1), policy())
    assert sorted(t.kind for t in transitions) == ["run_created", "run_created"]
    assert {(a.status, a.run_id) for a in store.tracking.in_flight()} == {
        ("scheduling", f"run-{r.id}") for r in refs
    }
    # The same answer again (a second daemon repeated the call and got the replay): nothing changes.
    assert store.tracking.record_created(created(refs), at(2), policy()) == []
    assert (
        store.dispatch.attempts_to_settle(at(1000), lease=LEASE) == []
    )  # recorded: no longer anyone's to settle


def test_a_run_already_final_at_creation_finishes_its_item(store: Store) -> None:
    add_jobs(store, "a")
    fire_id = manual_fire(store, "a", 1)
    refs = store.dispatch.assign(T0, Chooser(), lease=LEASE)
    kinds = [t.kind for t in store.tracking.record_created(created(refs, "success"), at(1), policy())]
    assert kinds == ["run_created", "attempt_success", "item_succeeded", "fire_succeeded"]
    assert store.fires.of_job("a")[0].id == fire_id and store.fires.of_job("a")[0].status == "succeeded"


def test_unknown_outcome_is_repeated_later_with_the_same_key(store: Store) -> None:
    add_jobs(store, "a")
    manual_fire(store, "a", 1)
    (ref,) = store.dispatch.assign(T0, Chooser(), lease=LEASE)
    store.dispatch.defer_create(ref.id, at(2), "timeout", at(0.5))
    assert store.dispatch.attempts_to_settle(at(1.9), lease=LEASE) == []
    (again,) = store.dispatch.attempts_to_settle(at(2), lease=LEASE)
    assert (again.id, again.idempotency_key, again.create_tries) == (ref.id, ref.idempotency_key, 1)
    assert (again.inputs, again.machine_id, again.number) == (ref.inputs, ref.machine_id, 1)
    # Taken: no one else repeats it until this claim lapses.
    assert store.dispatch.attempts_to_settle(at(3), lease=LEASE) == []
    store.dispatch.defer_create(ref.id, at(40), "timeout again", at(3))
    (third,) = store.dispatch.attempts_to_settle(at(40), lease=LEASE)
    assert third.create_tries == 2
    store.tracking.record_created([(ref.id, run("r-1", "running", "create"))], at(41), policy())
    assert [(a.status, a.run_id) for a in store.tracking.in_flight()] == [("running", "r-1")]


def test_a_dead_daemons_claims_are_taken_over_after_the_lease(open_store: Callable[[], Store]) -> None:
    dead, alive = open_store(), open_store()
    attempt_id = _one_creating(dead)  # claimed by `dead` until T0 + 30s; it never renews
    assert alive.dispatch.attempts_to_settle(at(29), lease=LEASE) == []
    (taken,) = alive.dispatch.attempts_to_settle(at(30), lease=LEASE)
    assert taken.id == attempt_id
    # The dead daemon's late answer does not undo the take-over: its defer is ignored...
    dead.dispatch.defer_create(attempt_id, at(31), "timeout", at(31))
    assert alive.dispatch.attempts_to_settle(at(45), lease=LEASE) == []
    # ...and whichever answer comes first is recorded.
    dead.tracking.record_created([(attempt_id, run("r-9", "running", "create"))], at(46), policy())
    assert (
        alive.tracking.record_created([(attempt_id, run("r-9", "running", "create"))], at(47), policy()) == []
    )
    assert [a.run_id for a in alive.tracking.in_flight()] == ["r-9"]


def test_renewal_keeps_a_slow_create_call_from_being_taken_over(open_store: Callable[[], Store]) -> None:
    slow, other = open_store(), open_store()
    attempt_id = _one_creating(slow)
    assert slow.dispatch.renew_creating(at(20), LEASE, [attempt_id]) == 1
    assert other.dispatch.attempts_to_settle(at(31), lease=LEASE) == []
    assert other.dispatch.renew_creating(at(40), LEASE, [attempt_id]) == 0  # not its claim
    assert slow.dispatch.renew_creating(at(45), LEASE, [attempt_id]) == 1
    assert other.dispatch.attempts_to_settle(at(74), lease=LEASE) == []
    (taken,) = other.dispatch.attempts_to_settle(at(75), lease=LEASE)  # renewals stopped: the claim lapses
    assert taken.id == attempt_id
    assert slow.dispatch.renew_creating(at(76), LEASE, [attempt_id]) == 0  # no longer its own
    assert other.dispatch.renew_creating(at(76), LEASE, [attempt_id]) == 1


def test_renewal_keeps_only_the_claims_whose_calls_are_under_way(open_store: Callable[[], Store]) -> None:
    """A claim its owner makes no call for (the answer could not be recorded; or the commit that claimed it lost
    its acknowledgement and was run again) is not renewed with the others: it lapses and is settled."""
    owner, other = open_store(), open_store()
    add_jobs(owner, "a")
    manual_fire(owner, "a", 2)
    calling, forgotten = owner.dispatch.assign(T0, Chooser(), lease=LEASE)
    assert owner.dispatch.renew_creating(at(20), LEASE, [calling.id]) == 1
    assert owner.dispatch.renew_creating(at(21), LEASE, []) == 0
    (taken,) = other.dispatch.attempts_to_settle(at(30), lease=LEASE)
    assert (taken.id, taken.idempotency_key) == (forgotten.id, forgotten.idempotency_key)


def test_renewal_skips_deferred_and_recorded_attempts(store: Store) -> None:
    add_jobs(store, "a")
    manual_fire(store, "a", 2)
    first, second = store.dispatch.assign(T0, Chooser(), lease=LEASE)
    store.dispatch.defer_create(first.id, at(60), "503", at(1))
    store.tracking.record_created([(second.id, run("r-2", "running", "create"))], at(1), policy())
    assert store.dispatch.renew_creating(at(2), LEASE, [first.id, second.id]) == 0
    assert store.dispatch.attempts_to_settle(at(59), lease=LEASE) == []  # the deferred retry time stands


def test_settle_hands_out_each_attempt_to_one_daemon(open_store: Callable[[], Store]) -> None:
    one, two = open_store(), open_store()
    add_jobs(one, "a")
    manual_fire(one, "a", 6)
    refs = one.dispatch.assign(T0, Chooser(), lease=timedelta(seconds=1))
    got_one = one.dispatch.attempts_to_settle(at(5), lease=LEASE, limit=4)
    got_two = two.dispatch.attempts_to_settle(at(5), lease=LEASE)
    assert len(got_one) == 4 and len(got_two) == 2
    assert {r.id for r in got_one} | {r.id for r in got_two} == {r.id for r in refs}


def test_a_clean_stop_hands_its_claims_over_at_once(open_store: Callable[[], Store]) -> None:
    stopping, other = open_store(), open_store()
    attempt_id = _one_creating(stopping)
    assert other.dispatch.attempts_to_settle(at(1), lease=LEASE) == []
    assert other.dispatch.release_creating(at(1)) == 0  # not its claims
    assert stopping.dispatch.release_creating(at(1)) == 1
    (taken,) = other.dispatch.attempts_to_settle(at(1), lease=LEASE)
    assert taken.id == attempt_id
