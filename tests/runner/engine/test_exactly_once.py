"""Exactly once: a create call whose outcome is unknown is settled with its original key, never repeated anew."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from cyberdesk import RunCreate

from .harness import Harness

JOB = """
    name: claims
    workflow: Submit insurance claim
    target: {pool: claims-team}
    concurrency: 8
    items_from: claims.jsonl
    retry: {max_attempts: 3, backoff: 5s}
"""


def _jobs(tmp_path: Path, count: int) -> dict[str, str]:
    (tmp_path / "jobs").mkdir(exist_ok=True)
    rows = [json.dumps({"claim_id": f"C-{n}", "patient_name": "P", "amount": "1"}) for n in range(count)]
    (tmp_path / "jobs" / "claims.jsonl").write_text("\n".join(rows) + "\n")
    return {"claims": JOB}


def _runs_per_claim(h: Harness) -> dict[str, int]:
    counts: dict[str, int] = {}
    for run in h.emulator_runs():
        claim = run.input_values["claim_id"]
        counts[claim] = counts.get(claim, 0) + 1
    return counts


async def test_a_crash_between_the_create_call_and_its_record_creates_no_second_run(tmp_path: Path) -> None:
    async with Harness(tmp_path, _jobs(tmp_path, 1)) as h:
        await h.trigger("claims")
        await h.runtime.plan_requested_fires()
        # The daemon records the attempt, makes the create call... and dies before recording the answer.
        refs = h.store.dispatch.assign(
            h.clock.now(), h.runtime.dispatcher._choose, lease=timedelta(seconds=30)
        )
        [ref] = refs
        body = RunCreate(
            workflow_id=ref.workflow_id,
            machine_id=ref.machine_id,
            input_values=dict(ref.inputs),
            is_priority=False,
        )
        assert (await h.client.runs.create(body, idempotency_key=ref.idempotency_key)).error is None
        assert len(h.emulator_runs()) == 1
        # A new daemon starts on the same store: the attempt is still `creating`, and once its lease
        # lapses the create call is repeated with the same key; the API replays the first answer.
        restarted = await h.restarted()
        await restarted.dispatch_round()
        assert h.rows("attempt")[0]["status"] == "creating", "the lease has not lapsed yet"
        h.clock.advance(31)
        await restarted.dispatch_round()
        [attempt] = h.rows("attempt")
        [run] = h.emulator_runs()
        assert attempt["run_id"] == run.id and attempt["status"] == "scheduling"
        assert h.stats()["runs"]["created"] == 1
        assert h.stats()["runs"]["create_replays"] >= 1


async def test_dropped_responses_leave_the_attempt_creating_until_settled_with_the_same_key(
    tmp_path: Path,
) -> None:
    async with Harness(tmp_path, _jobs(tmp_path, 2)) as h:
        h.emulator.set_faults(drop_responses=1.0)
        await h.trigger("claims")
        await h.cycle(poll=False)
        assert len(h.emulator_runs()) == 2, "the creates were applied; only the answers were lost"
        assert {a["status"] for a in h.rows("attempt")} == {"creating"}
        h.emulator.set_faults(drop_responses=0.0)
        await h.advance(2)
        await h.cycle()
        assert {a["status"] for a in h.rows("attempt")} <= {"scheduling", "running"}
        assert {a["run_id"] for a in h.rows("attempt")} == {r.id for r in h.emulator_runs()}
        await h.run_until_idle()
        assert _runs_per_claim(h) == {"C-0": 1, "C-1": 1}


async def test_rate_limits_server_errors_and_dropped_responses_lose_nothing_and_duplicate_nothing(
    tmp_path: Path,
) -> None:
    async with Harness(tmp_path, _jobs(tmp_path, 30), seed=11) as h:
        h.emulator.set_faults(rate_limit=0.2, server_errors=0.15, drop_responses=0.1)
        await h.trigger("claims")
        await h.run_until_idle(step=15)
        faults = h.stats()["faults"]
        assert faults.get("rate_limited", 0) + faults.get("server_errors", 0) + faults.get("dropped", 0) > 0
        assert sorted(i["status"] for i in h.rows("item")) == ["succeeded"] * 30
        assert _runs_per_claim(h) == {f"C-{n}": 1 for n in range(30)}
        assert not h.stats()["duplicates"]
        assert h.emulator.overlaps() == []


async def test_a_daemon_claims_only_the_attempts_it_can_call_soon(tmp_path: Path) -> None:
    """Claimed attempts wait for this daemon's calls; the rest stay pending, free for any daemon to take."""
    async with Harness(tmp_path, _jobs(tmp_path, 8)) as h:
        woken: list[str] = []
        small = await h.restarted(max_in_flight_requests=1, on_wake=lambda: woken.append("wake"))
        await h.trigger("claims")
        woken.clear()
        assert await small.dispatch_round(wait=False) == 2  # twice the calls it may have in flight
        await small.dispatcher.drain()  # answered and recorded as they come
        assert small.dispatcher.creating == 0
        assert {a["status"] for a in h.rows("attempt")} == {"scheduling"}
        assert h.store.counts.work().pending_items == 6
        assert woken, "room for more calls wakes the dispatcher"
        assert await small.dispatch_round(wait=False) == 2
        await small.dispatcher.drain()
        assert len(h.emulator_runs()) == 4


async def test_a_create_whose_answer_was_not_recorded_is_settled_while_its_daemon_lives(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The run was created but the store failed while its answer was being recorded: the daemon is making no call
    for that attempt any more, so it stops renewing the claim, which lapses; the call is then repeated with the
    same key (the API replays the run) instead of the item waiting for the daemon's restart."""
    async with Harness(tmp_path, _jobs(tmp_path, 1)) as h:
        record_news = h.store.tracking.record_news
        failed: list[str] = []

        def fails_once(*args: object, **kwargs: object) -> object:
            if not failed:
                failed.append("store down")
                raise RuntimeError("the store went away while recording the answer")
            return record_news(*args, **kwargs)  # type: ignore[arg-type]

        monkeypatch.setattr(h.store.tracking, "record_news", fails_once)
        await h.trigger("claims")
        await h.runtime.dispatch_round()
        [attempt] = h.rows("attempt")
        assert failed and attempt["status"] == "creating" and len(h.emulator_runs()) == 1
        for _ in range(4):  # the daemon's heartbeat renews its claims, for longer than the lease (30 s)
            h.clock.advance(10)
            await h.runtime.dispatcher.renew_claims()
        await h.runtime.dispatch_round()
        [attempt] = h.rows("attempt")
        [run] = h.emulator_runs()
        assert (attempt["status"], attempt["run_id"]) == ("scheduling", run.id)
        assert h.stats()["runs"]["created"] == 1 and h.stats()["runs"]["create_replays"] == 1


async def test_a_slow_create_call_keeps_its_claim_while_it_is_being_made(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A call still waiting for its answer keeps its claim however long it takes: no daemon repeats it meanwhile."""
    async with Harness(tmp_path, _jobs(tmp_path, 1)) as h:
        other = await h.restarted()
        answer = asyncio.Event()
        create = h.client.runs.create

        async def slow_create(*args: Any, **kwargs: Any) -> Any:
            await answer.wait()
            return await create(*args, **kwargs)

        monkeypatch.setattr(h.client.runs, "create", slow_create)
        await h.trigger("claims")
        assert await h.runtime.dispatch_round(wait=False) == 1
        for _ in range(4):  # the heartbeat renews the claim; the other daemon finds nothing to settle
            h.clock.advance(10)
            assert await h.runtime.dispatcher.renew_claims() == 1
            assert await other.dispatcher.settle_once() == 0
        answer.set()
        await h.runtime.dispatcher.drain()
        [attempt] = h.rows("attempt")
        [run] = h.emulator_runs()
        assert (attempt["status"], attempt["run_id"]) == ("scheduling", run.id)
        assert h.stats()["runs"]["create_replays"] == 0
