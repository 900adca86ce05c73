"""A fire's items are planned by chunks: a daemon that dies midway loses and duplicates nothing (another continues
its plan once the claim lapses), a daemon that stops gives its plan back (another continues at once), two daemons
never both plan one fire; a big fire's retry and cancel by chunks, stopped midway, are finished by a daemon, each
item run once; on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import textwrap
import threading
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from cyberdesk_runner import bulk, planning
from cyberdesk_runner.catalog import JobCatalog
from cyberdesk_runner.runtime import Runtime
from cyberdesk_runner.store import Store

from .harness import Crash, Harness, crash_after

JOB = """
    name: claims
    workflow: Submit insurance claim
    target: {pool: claims-team}
    concurrency: 8
    items_from: claims.csv
"""
ROWS = 25


def _write_claims(tmp_path: Path, prefix: str = "C") -> None:
    (tmp_path / "jobs").mkdir(exist_ok=True)
    lines = ["claim_id,patient_name,amount", *(f"{prefix}-{n},P,1" for n in range(ROWS))]
    (tmp_path / "jobs" / "claims.csv").write_text("\n".join(lines) + "\n")


@pytest.fixture(autouse=True)
def _small_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Chunks of 10 items, whatever their transactions take."""
    monkeypatch.setattr(planning, "PLAN_CHUNK", 10)
    monkeypatch.setattr(planning, "PLAN_CHUNK_MIN", 10)
    monkeypatch.setattr(planning, "PLAN_CHUNK_MAX", 10)
    for name in ("CHUNK_FIRST", "CHUNK_MIN", "CHUNK_MAX"):
        monkeypatch.setattr(bulk, name, 10)
    monkeypatch.setattr(bulk, "SQLITE_PAUSE", 0)


@asynccontextmanager
async def _harness(
    tmp_path: Path, store_url: str, *, job: str = JOB, failure_rate: float = 0.0
) -> AsyncIterator[Harness]:
    """The claims job (ROWS rows of a CSV) on a harness whose store is at `store_url`."""
    _write_claims(tmp_path)
    async with Harness(tmp_path, {"claims": job}, store_url=store_url, failure_rate=failure_rate) as h:
        yield h


@asynccontextmanager
async def _other_daemon(h: Harness, store_url: str) -> AsyncIterator[Runtime]:
    """Another daemon on the same store and API: its own store connection, so its own owner id."""
    store = Store(store_url)
    runtime = Runtime(
        store=store, client=h.client, catalog=JobCatalog(h.jobs_dir), clock=h.clock, owner="daemon_other"
    )
    try:
        await runtime.start()
        yield runtime
    finally:
        store.close()


async def _dies_planning(h: Harness, chunks: int) -> None:
    """The harness's daemon is asked to plan a fire of the job and dies after `chunks` chunks."""
    await h.trigger("claims")
    crash_after(h.store.plans, "plan_chunk", chunks)
    with pytest.raises(Crash):
        await h.runtime.plan_requested_fires()


def _items(h: Harness) -> list[tuple[int, str, str]]:
    return sorted((r["seq"], r["inputs"]["claim_id"], r["status"]) for r in h.rows("item"))


async def test_a_daemon_dying_midway_through_a_plan_loses_and_duplicates_no_item(
    tmp_path: Path, store_url: str
) -> None:
    async with _harness(tmp_path, store_url) as h:
        await _dies_planning(h, 2)
        assert [seq for seq, *_ in _items(h)] == list(range(20))
        [fire] = h.rows("fire")
        assert (fire["status"], fire["planned_at"], fire["items_total"]) == ("running", None, ROWS)

        async with _other_daemon(h, store_url) as other:
            await other.plan_requested_fires()
            assert len(_items(h)) == 20, "the dead daemon's claim still holds"
            h.clock.advance(61)
            await other.plan_requested_fires()
        assert [(seq, claim) for seq, claim, _ in _items(h)] == [(n, f"C-{n}") for n in range(ROWS)]
        [fire] = h.rows("fire")
        assert fire["planned_at"] is not None and fire["items_total"] == ROWS
        await h.run_until_idle()
        runs = sorted(r.input_values["claim_id"] for r in h.emulator_runs())
        assert runs == sorted(f"C-{n}" for n in range(ROWS)), "one run per row, none twice"
        assert h.rows("fire")[0]["status"] == "succeeded"


async def test_a_plan_whose_items_file_changed_since_it_began_is_not_continued(
    tmp_path: Path, store_url: str
) -> None:
    async with _harness(tmp_path, store_url) as h:
        await _dies_planning(h, 1)
        _write_claims(tmp_path, prefix="NEW")
        h.clock.advance(61)
        async with _other_daemon(h, store_url) as other:
            await other.plan_requested_fires()
        assert _items(h) == [(n, f"C-{n}", "cancelled") for n in range(10)]
        [fire] = h.rows("fire")
        assert fire["status"] == "cancelled" and fire["items_total"] == 10
        assert "changed while the fire was planned" in fire["error"]


async def test_an_abandoned_plan_cancels_its_items_by_chunks_and_a_daemon_dying_midway_is_taken_over(
    tmp_path: Path, store_url: str
) -> None:
    async with _harness(tmp_path, store_url) as h:
        await _dies_planning(h, 2)
        _write_claims(tmp_path, prefix="NEW")
        h.clock.advance(61)
        async with _other_daemon(h, store_url) as other:
            crash_after(other.store.plans, "abandon_chunk", 1)  # it cancels one chunk, then dies
            with pytest.raises(Crash):
                await other.plan_requested_fires()
        assert [status for *_, status in _items(h)] == ["cancelled"] * 10 + ["pending"] * 10
        assert h.rows("fire")[0]["planned_at"] is None, "still a plan, to be taken over"
        h.clock.advance(61)
        async with _other_daemon(h, store_url) as third:
            await third.plan_requested_fires()
        assert _items(h) == [(n, f"C-{n}", "cancelled") for n in range(20)]
        [fire] = h.rows("fire")
        assert (fire["status"], fire["items_total"]) == ("cancelled", 20)
        assert "changed while the fire was planned" in fire["error"]
        cancelled = [e["item_id"] for e in h.rows("event") if e["kind"] == "item_cancelled"]
        assert len(cancelled) == len(set(cancelled)) == 20, "each item cancelled once"
        assert h.emulator_runs() == []


@pytest.mark.postgres
async def test_two_daemons_planning_one_fire_at_once_record_each_item_once(
    tmp_path: Path, pg_schema: Callable[[], str]
) -> None:
    url = pg_schema()
    async with _harness(tmp_path, url) as h:
        async with _other_daemon(h, url) as other:
            await h.trigger("claims")
            await asyncio.gather(h.runtime.plan_requested_fires(), other.plan_requested_fires())
        assert [(seq, claim) for seq, claim, _ in _items(h)] == [(n, f"C-{n}") for n in range(ROWS)]
        assert h.rows("fire")[0]["items_total"] == ROWS


async def test_a_plan_left_midway_of_a_job_since_removed_is_ended(tmp_path: Path, store_url: str) -> None:
    async with _harness(tmp_path, store_url) as h:
        await _dies_planning(h, 1)
        (h.jobs_dir / "claims.yaml").unlink()
        h.clock.advance(61)
        async with _other_daemon(h, store_url) as other:
            await other.plan_requested_fires()
        assert _items(h) == [(n, f"C-{n}", "cancelled") for n in range(10)]
        [fire] = h.rows("fire")
        assert (fire["status"], fire["error"]) == ("cancelled", "no job named 'claims'")
        assert h.store.counts.work().idle


async def test_the_metrics_time_each_store_transaction_by_method(tmp_path: Path) -> None:
    async with _harness(tmp_path, f"sqlite:///{tmp_path / 'store.sqlite'}") as h:
        await h.trigger("claims")
        await h.runtime.plan_requested_fires()
        registry = h.runtime.metrics.registry
        chunks = {"method": "Plans.plan_chunk"}
        assert registry.get_sample_value("cyberdesk_runner_store_transaction_seconds_count", chunks) == 3
        longest = registry.get_sample_value("cyberdesk_runner_store_transaction_max_seconds", chunks)
        assert longest is not None and longest > 0


async def test_a_stopping_daemon_gives_its_plan_back_between_chunks_and_another_continues_at_once(
    tmp_path: Path, store_url: str
) -> None:
    async with _harness(tmp_path, store_url) as h:
        await h.trigger("claims")
        runtime = h.runtime
        in_chunk, go_on = threading.Event(), threading.Event()
        plan_chunk = h.store.plans.plan_chunk

        def slow_second_chunk(*args: Any, **kwargs: Any) -> bool:
            if args[1] == 10:  # the second chunk: the daemon is asked to stop while it is under way
                in_chunk.set()
                go_on.wait(10)
            return plan_chunk(*args, **kwargs)

        h.store.plans.plan_chunk = slow_second_chunk  # type: ignore[method-assign]
        # As the daemon's stop does: `stopping` set, the dispatch loop cancelled, then the work waited for.
        loop = asyncio.create_task(runtime.dispatch_round())
        assert await asyncio.to_thread(in_chunk.wait, 10)
        runtime.stopping.set()
        loop.cancel()
        go_on.set()
        await asyncio.wait_for(runtime.bulk_work_done(), timeout=10)
        assert [seq for seq, *_ in _items(h)] == list(range(20)), "the chunk under way ends, no other starts"
        [fire] = h.rows("fire")
        assert (fire["planned_at"], fire["planned_by"]) == (None, None), "its claim given back"

        async with _other_daemon(h, store_url) as other:
            await other.plan_requested_fires()  # at once: no lapse waited for
        assert [(seq, claim) for seq, claim, _ in _items(h)] == [(n, f"C-{n}") for n in range(ROWS)]
        assert h.rows("fire")[0]["planned_at"] is not None


def _stop_after(chunks: int) -> Callable[[], bool]:
    """A stop asked after `chunks` chunks (as a signal between two chunks would)."""
    calls = 0

    def stopping() -> bool:
        nonlocal calls
        calls += 1
        return calls > chunks

    return stopping


async def test_a_cancel_stopped_midway_gets_no_new_run_and_a_daemon_finishes_it(
    tmp_path: Path, store_url: str
) -> None:
    async with _harness(tmp_path, store_url) as h:
        fire_id = await h.trigger("claims")
        await h.cycle()  # planned, 8 runs started (concurrency 8)
        runs = len(h.emulator_runs())
        assert runs == 8
        outcome = bulk.cancel_fire(h.store, fire_id, "enough", h.clock.now, stopping=_stop_after(1))
        assert outcome.started and not outcome.finished
        assert outcome.kinds["item_cancelled"] + outcome.kinds["cancel_requested"] == 10
        await h.run_until_idle()  # the daemon finishes the cancel; the reaper cancels the runs
        assert len(h.emulator_runs()) == runs, "no run started after the cancel was asked"
        statuses = sorted(r["status"] for r in h.rows("item"))
        assert statuses == ["cancelled"] * ROWS
        [fire] = h.rows("fire")
        assert (fire["status"], fire["cancel_reason"], fire["cancel_lease_until"]) == (
            "cancelled",
            "enough",
            None,
        )


async def test_a_retry_stopped_midway_is_finished_by_a_daemon_each_failed_item_run_once_more(
    tmp_path: Path, store_url: str
) -> None:
    failing = JOB + "    retry: {max_attempts: 1}\n"
    async with _harness(tmp_path, store_url, job=failing, failure_rate=1.0) as h:
        fire_id = await h.trigger("claims")
        await h.run_until_idle()
        assert h.store.queries.fire_view(fire_id).status == "failed"  # type: ignore[union-attr]
        first = len(h.emulator_runs())
        outcome = bulk.retry_fire(h.store, fire_id, h.clock.now, stopping=_stop_after(1))
        assert outcome.fire_id is not None and not outcome.finished and outcome.copied == 10
        await h.run_until_idle()  # a daemon copies the rest at once (the claim given back), then runs them
        retried = [r for r in h.rows("item") if r["fire_id"] == outcome.fire_id]
        assert sorted(r["seq"] for r in retried) == list(range(ROWS))
        again = h.emulator_runs()[first:]
        assert sorted(r.input_values["claim_id"] for r in again) == sorted(f"C-{n}" for n in range(ROWS))


async def test_an_after_fire_too_big_for_one_transaction_is_requested_and_planned_by_chunks(
    tmp_path: Path, store_url: str
) -> None:
    followup = JOB.replace("name: claims", "name: followup") + "    after: {job: claims}\n"
    async with _harness(tmp_path, store_url) as h:
        (h.jobs_dir / "followup.yaml").write_text(textwrap.dedent(followup))
        await h.runtime.reload_jobs(force=True)
        upstream = await h.trigger("claims")
        await h.run_until_idle()
        [fire] = [f for f in h.rows("fire") if f["job_name"] == "followup"]
        assert (fire["trigger"], fire["upstream_fire_id"], fire["status"]) == ("after", upstream, "succeeded")
        seqs = sorted(i["seq"] for i in h.rows("item") if i["fire_id"] == fire["id"])
        assert seqs == list(range(ROWS))
        kinds = [
            e["kind"] for e in sorted(h.rows("event"), key=lambda e: e["id"]) if e["fire_id"] == fire["id"]
        ]
        assert kinds[0] == "fire_requested" and "fire_started" in kinds, "recorded requested, then planned"
        claims = Counter(r.input_values["claim_id"] for r in h.emulator_runs())
        assert claims == {f"C-{n}": 2 for n in range(ROWS)}, "each row once upstream, once after it"


async def test_the_daemon_finishes_a_cancel_left_midway_aside_from_its_dispatch_round(
    tmp_path: Path, store_url: str
) -> None:
    async with _harness(tmp_path, store_url) as h:
        fire_id = await h.trigger("claims")
        await h.cycle()
        outcome = bulk.cancel_fire(h.store, fire_id, "enough", h.clock.now, stopping=_stop_after(1))
        assert not outcome.finished
        await h.advance(1)  # the daemon looks for work left midway once a second
        await h.runtime.dispatch_round(wait=False)  # as the daemon's loop: the cancel goes on in a task
        await asyncio.wait_for(h.runtime.bulk_work_done(), timeout=30)
        statuses = Counter((r["status"], r["cancel_requested"]) for r in h.rows("item"))
        assert statuses == {("cancelled", False): ROWS - 8, ("running", True): 8}
        [fire] = h.rows("fire")
        assert fire["cancel_lease_until"] is None, "carried through"


async def test_a_removed_jobs_pending_items_are_cancelled_by_chunks_each_once_and_its_runs_finish(
    tmp_path: Path, store_url: str
) -> None:
    async with _harness(tmp_path, store_url) as h:
        await h.trigger("claims")
        await h.cycle()  # planned, 8 runs started (concurrency 8)
        chunks = _count_chunks(h.store)
        (h.jobs_dir / "claims.yaml").unlink()
        await h.runtime.reload_jobs()
        assert chunks() == 2, "17 pending items by chunks of 10"
        await h.run_until_idle()
        statuses = Counter(r["status"] for r in h.rows("item"))
        assert statuses == {"cancelled": ROWS - 8, "succeeded": 8}, "its runs in flight finish"
        assert len(h.emulator_runs()) == 8
        cancelled = [e for e in h.rows("event") if e["kind"] == "item_cancelled"]
        assert len(cancelled) == ROWS - 8 and len({e["item_id"] for e in cancelled}) == ROWS - 8


async def test_a_removed_jobs_cancel_stopped_midway_is_finished_by_any_daemon_each_item_once(
    tmp_path: Path, store_url: str
) -> None:
    async with _harness(tmp_path, store_url) as h:
        await h.trigger("claims")
        await h.runtime.plan_requested_fires()
        (h.jobs_dir / "claims.yaml").unlink()
        crash_after(h.store.control, "cancel_pending_of_removed_jobs", 1)
        with pytest.raises(Crash):
            await h.runtime.reload_jobs()
        assert Counter(r["status"] for r in h.rows("item")) == {"cancelled": 10, "pending": ROWS - 10}
        # Two daemons started after it look for leftovers at once: each item is cancelled once.
        async with _other_daemon(h, store_url) as first, _other_daemon(h, store_url) as second:
            await asyncio.gather(first.continue_bulk_work(), second.continue_bulk_work())
        assert Counter(r["status"] for r in h.rows("item")) == {"cancelled": ROWS}
        cancelled = [e for e in h.rows("event") if e["kind"] == "item_cancelled"]
        assert len(cancelled) == ROWS and len({e["item_id"] for e in cancelled}) == ROWS
        assert h.emulator_runs() == [], "no run of the removed job was started"


def _count_chunks(store: Store) -> Callable[[], int]:
    """How many chunks of a removed job's cancel found items to cancel, from now on."""
    cancel = store.control.cancel_pending_of_removed_jobs
    found = 0

    def counting(*args: Any, **kwargs: Any) -> Any:
        nonlocal found
        transitions, done = cancel(*args, **kwargs)
        found += bool(transitions)
        return transitions, done

    store.control.cancel_pending_of_removed_jobs = counting  # type: ignore[method-assign]
    return lambda: found
