"""Files in and out in the store (SQLite and PostgreSQL): an attempt's files recorded once (the first record
wins), output attachments noted once per (attempt, attachment, folder), downloads claimed by one daemon at a
time, a lapsed claim taken over, a done download never handed out again, failures retried then given up."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from store_helpers import LEASE, T0, Chooser, add_jobs, at, manual_fire, policy, together

from cyberdesk_runner.store import Store
from cyberdesk_runner.store.files import MAX_DOWNLOAD_TRIES, InputFile, NewOutputFile
from cyberdesk_runner.store.records import AttemptVerdict

HOLD = timedelta(minutes=10)


def _attempt(store: Store) -> tuple[str, str]:
    add_jobs(store, "claims")
    fire_id = manual_fire(store, "claims", 1)
    [ref] = store.dispatch.assign(T0, Chooser(), lease=LEASE)
    return ref.id, fire_id


def _outputs(n: int, fire_id: str = "fire_1", folder: str = "/out/claims_fire_1") -> list[NewOutputFile]:
    return [
        NewOutputFile(
            f"att_{i}", f"attachment-{i}", fire_id, f"item_{i}", "claims", i, f"f{i}.csv", 100, folder
        )
        for i in range(n)
    ]


def test_an_attempts_files_are_recorded_once_and_the_first_record_wins(store: Store) -> None:
    attempt_id, fire_id = _attempt(store)
    first = [InputFile(0, "/data/C-1.pdf", "C-1.pdf", 10, "a" * 64, "C:\\Inbox", True)]
    assert store.files.recorded_inputs(attempt_id) == []
    assert store.files.record_inputs(attempt_id, fire_id, first) == first
    other = [InputFile(0, "/data/C-1.pdf", "C-1.pdf", 11, "b" * 64)]
    assert store.files.record_inputs(attempt_id, fire_id, other) == first  # a racing recorder gets the first
    assert store.files.recorded_inputs(attempt_id) == first


def test_outputs_are_noted_once_per_attachment_and_folder(store: Store) -> None:
    assert store.files.note_outputs(_outputs(3)) == 3
    assert store.files.note_outputs(_outputs(3)) == 0
    assert store.files.note_outputs(_outputs(1, folder="/elsewhere/dir")) == 1  # results --download DIR
    assert len(store.files.outputs_of_fire("fire_1")) == 4


def test_two_daemons_never_claim_the_same_download(open_store: Callable[[], Store]) -> None:
    stores = [open_store(), open_store()]
    stores[0].files.note_outputs(_outputs(10))
    claimed, errors = together([lambda s=s: s.files.claim_downloads(T0, HOLD, limit=10) for s in stores])
    assert errors == []
    ids = [f.id for batch in claimed for f in batch or []]
    assert sorted(ids) == sorted(set(ids)) and len(ids) == 10


def test_a_lapsed_claim_is_taken_over_and_a_done_download_is_never_handed_out(
    open_store: Callable[[], Store],
) -> None:
    slow, alive = open_store(), open_store()
    slow.files.note_outputs(_outputs(1))
    [mine] = slow.files.claim_downloads(T0, HOLD)
    assert alive.files.claim_downloads(at(60), HOLD) == []  # held
    [taken] = alive.files.claim_downloads(T0 + HOLD, HOLD)  # lapsed (the lease is not renewed)
    assert taken.id == mine.id and taken.tries == 1
    # The slow first claimant still finishes: its whole file is in place, so it settles the row, once.
    assert slow.files.download_done(mine.id, "claims_fire_1/0-item_0/f0.csv", 100, at(1)) is True
    assert alive.files.download_done(taken.id, "claims_fire_1/0-item_0/f0.csv", 100, at(2)) is False
    assert alive.files.claim_downloads(T0 + 10 * HOLD, HOLD) == []
    [done] = alive.files.outputs_of_fire("fire_1")
    assert (done.status, done.relative_path) == ("done", "claims_fire_1/0-item_0/f0.csv")


def test_a_slow_claimants_failure_leaves_the_new_claimants_claim_alone(
    open_store: Callable[[], Store],
) -> None:
    slow, alive, third = open_store(), open_store(), open_store()
    slow.files.note_outputs(_outputs(1))
    [mine] = slow.files.claim_downloads(T0, HOLD)
    [taken] = alive.files.claim_downloads(T0 + HOLD, HOLD)
    slow.files.download_failed(mine.id, "OSError: connection reset", T0 + HOLD)  # no longer its claim
    assert third.files.claim_downloads(T0 + HOLD + timedelta(minutes=1), HOLD) == []  # still alive's
    [row] = third.files.outputs_of_fire("fire_1")
    assert row.status == "pending" and row.tries == 2
    assert alive.files.download_done(taken.id, "claims_fire_1/0-item_0/f0.csv", 100, at(1)) is True


def test_a_failing_download_is_retried_later_then_given_up(store: Store) -> None:
    store.files.note_outputs(_outputs(1))
    now = T0
    for _ in range(MAX_DOWNLOAD_TRIES):
        [f] = store.files.claim_downloads(now, HOLD)
        store.files.download_failed(f.id, "OSError: disk full", now + timedelta(seconds=5))
        assert (
            store.files.claim_downloads(now + timedelta(seconds=1), HOLD) == []
        )  # not before its retry time
        now += timedelta(seconds=5)
    assert store.files.claim_downloads(now + HOLD, HOLD) == []
    [failed] = store.files.outputs_of_fire("fire_1")
    assert failed.status == "failed"


def test_retention_deletes_a_fires_files_with_it(store: Store) -> None:
    attempt_id, fire_id = _attempt(store)
    store.files.record_inputs(attempt_id, fire_id, [InputFile(0, "/d/x.pdf", "x.pdf", 1, "c" * 64)])
    store.files.note_outputs(_outputs(1, fire_id=fire_id))
    store.control.cancel_pending_items("claims", "test", at(1))
    store.tracking.apply_verdicts([AttemptVerdict(attempt_id, "cancelled", ["x"], "test")], at(2), policy())
    assert store.retention.purge(at(3600 * 24 * 400)) >= 1
    assert store.files.recorded_inputs(attempt_id) == [] and store.files.outputs_of_fire(fire_id) == []
