"""Retention: finished history older than the cutoff goes, in batches; unfinished work never does."""

from __future__ import annotations

from datetime import timedelta

import sqlalchemy as sa
from store_helpers import T0, add_jobs, at, dispatch_and_create, manual_fire, policy, run, scheduled

from cyberdesk_runner.store import Store
from cyberdesk_runner.store.records import NewFire

DAY = timedelta(days=1)


def _rows(store: Store) -> dict[str, int]:
    with store.engine.connect() as conn:
        return {
            table: conn.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar_one()
            for table in ("fire", "item", "attempt", "event", "daemon")
        }


def _finished_fire(store: Store, n: int, when: timedelta) -> str:
    now = T0 + when
    fire_id = manual_fire(store, "a", n, now=now)
    for run_id in dispatch_and_create(store, now):
        store.tracking.apply_observations([run(run_id, "success")], now, policy())
    return fire_id


def test_old_finished_history_is_deleted_with_everything_it_owns(store: Store) -> None:
    add_jobs(store, "a")
    old = [_finished_fire(store, 2, timedelta(0)) for _ in range(5)]
    store.fires.record_skipped(scheduled("a", T0), "paused", T0)
    recent = _finished_fire(store, 2, 20 * DAY)
    store.daemons.register("daemon_old", "h", 1, T0)
    store.daemons.register("daemon_new", "h", 2, T0 + 20 * DAY)
    before = _rows(store)

    assert store.retention.purge(T0 + 10 * DAY, batch=2) == 6  # 5 finished + 1 skipped, 2 per transaction
    after = _rows(store)
    assert [f.id for f in store.fires.of_job("a")] == [recent]
    assert after["item"] == 2 and after["attempt"] == 2 and after["daemon"] == 1
    assert 0 < after["event"] < before["event"]
    assert all(fid not in {f.id for f in store.fires.of_job("a")} for fid in old)
    assert store.retention.purge(T0 + 10 * DAY, batch=2) == 0  # nothing more


def test_unfinished_work_is_never_deleted(store: Store) -> None:
    add_jobs(store, "a")
    manual_fire(store, "a", 2)  # pending, months ago
    dispatch_and_create(store, T0, at_most=1)  # one running
    store.fires.request(NewFire("a", "manual", None), T0)  # not planned yet
    before = _rows(store)
    assert store.retention.purge(T0 + 365 * DAY, batch=1000) == 0
    after = _rows(store)
    assert (after["fire"], after["item"], after["attempt"]) == (
        before["fire"],
        before["item"],
        before["attempt"],
    )
    assert store.counts.work().pending_items == 1 and store.counts.work().running_items == 1


def test_events_of_no_fire_go_by_age(store: Store) -> None:
    store.jobs.sync([], T0)
    add_jobs(store, "a")  # a job_added event, no fire
    store.tracking.apply_observations(
        [run("not-ours", "success")], at(1), policy()
    )  # unknown_run event logged by callers
    store.jobs.sync([], T0 + 40 * DAY)  # job_removed, recent
    store.retention.purge(T0 + 30 * DAY, batch=10)
    with store.engine.connect() as conn:
        kinds = conn.execute(sa.text("SELECT kind FROM event ORDER BY id")).scalars().all()
    assert kinds == ["job_removed"]
