"""Retries follow the job's policy with backoff; timeouts cancel the run and count as a failed attempt."""

from __future__ import annotations

from pathlib import Path

from .fleets import three_desks
from .harness import Harness

RETRYING = """
    name: flaky
    workflow: Flaky
    target: {machines: [desk-1, desk-2]}
    inputs: {task: file-claim}
    retry: {max_attempts: 3, backoff: 10s, max_backoff: 1m}
"""


async def test_a_failed_run_is_retried_after_its_backoff_on_the_next_desktop(tmp_path: Path) -> None:
    fleet = three_desks(
        run_duration="60-60",
        fail_when=[
            {
                "input": "task",
                "equals": "file-claim",
                "machine": "desk-1",
                "status": "task_failed",
                "error": "portal down",
            }
        ],
    )
    async with Harness(tmp_path, {"flaky": RETRYING}, fixture=fleet) as h:
        await h.trigger("flaky")
        await h.cycle()
        await h.advance(60)  # the first attempt ends (task_failed on desk-1)
        await h.cycle()
        assert len(h.emulator_runs()) == 1, "the retry waits for its backoff"
        await h.advance(4)
        await h.cycle()
        assert len(h.emulator_runs()) == 1, "backoff 10s with jitter never retries before 5s"
        await h.advance(6)
        await h.cycle()
        runs = h.emulator_runs()
        assert len(runs) == 2
        assert h.emulator.world.machines[runs[1].machine_id].name == "desk-2"
        await h.run_until_idle()
        [item] = h.rows("item")
        assert item["status"] == "succeeded" and item["attempts"] == 2
        attempts = sorted(h.rows("attempt"), key=lambda a: a["number"])
        assert [a["status"] for a in attempts] == ["task_failed", "success"]
        assert attempts[0]["error"] == ["portal down"]


async def test_the_final_failure_keeps_every_attempts_error(tmp_path: Path) -> None:
    fleet = three_desks(
        run_duration="30-30",
        fail_when=[{"input": "task", "equals": "file-claim", "status": "error", "error": "app crashed"}],
    )
    async with Harness(tmp_path, {"flaky": RETRYING}, fixture=fleet) as h:
        await h.trigger("flaky")
        await h.run_until_idle(step=15)
        [item] = h.rows("item")
        assert item["status"] == "failed" and item["attempts"] == 3
        attempts = h.rows("attempt")
        assert sorted(a["number"] for a in attempts) == [1, 2, 3]
        assert all(a["status"] == "error" and a["error"] == ["app crashed"] for a in attempts)
        [fire] = h.rows("fire")
        assert fire["status"] == "failed"
        failed = [e for e in h.rows("event") if e["kind"] == "item_failed"]
        assert "attempt 3 of 3" in failed[0]["data"]["reason"]


async def test_statuses_outside_retry_on_are_not_retried(tmp_path: Path) -> None:
    job = RETRYING.replace("max_backoff: 1m}", "max_backoff: 1m, on: [error]}")
    fleet = three_desks(
        run_duration="30-30",
        fail_when=[{"input": "task", "equals": "file-claim", "status": "task_failed", "error": "bad data"}],
    )
    async with Harness(tmp_path, {"flaky": job}, fixture=fleet) as h:
        await h.trigger("flaky")
        await h.run_until_idle(step=15)
        [item] = h.rows("item")
        assert (item["status"], item["attempts"]) == ("failed", 1)


TIMING_OUT = """
    name: slow
    workflow: Flaky
    target: {machines: [desk-1]}
    inputs: {task: reconcile}
    timeout: 2m
    retry: {max_attempts: 2, backoff: 10s}
"""


async def test_a_run_past_its_timeout_is_cancelled_in_cyberdesk_and_retried(tmp_path: Path) -> None:
    async with Harness(tmp_path, {"slow": TIMING_OUT}, fixture=three_desks(run_duration="600-600")) as h:
        await h.trigger("slow")
        await h.cycle()
        [first] = h.emulator_runs()
        await h.advance(119)
        await h.cycle()
        assert first.status == "running", "not yet past its 2m timeout"
        await h.advance(2)
        await h.cycle()
        assert first.status == "cancelled", "the runner cancelled it through the API"
        attempt = next(a for a in h.rows("attempt") if a["run_id"] == first.id)
        assert attempt["status"] == "timed_out"
        assert attempt["error"] == ["timed out after 2m; the run was cancelled"]
        await h.run_until_idle(step=30)
        [item] = h.rows("item")
        assert (item["status"], item["attempts"]) == ("failed", 2)
        assert all(r.status == "cancelled" for r in h.emulator_runs())


async def test_a_timeout_cancel_heard_first_by_webhook_still_counts_as_a_timeout(tmp_path: Path) -> None:
    # The daemon whose reaper cancelled the overdue run died before recording why; the webhook that the
    # cancel set off reaches another daemon. It must count as a timeout (retried), not as a user's cancel.
    async with Harness(tmp_path, {"slow": TIMING_OUT}, fixture=three_desks(run_duration="600-600")) as h:
        await h.trigger("slow")
        await h.cycle()
        [first] = h.emulator_runs()
        h.clock.advance(121)
        h.emulator.advance(121)
        h.emulator.cancel_run(first.id)  # the dead reaper's PATCH, which went through
        await h.emulator.deliver_webhooks()
        attempt = next(a for a in h.rows("attempt") if a["run_id"] == first.id)
        assert attempt["status"] == "timed_out"
        assert attempt["error"] == ["timed out after 2m; the run was cancelled"]
        [item] = h.rows("item")
        assert item["status"] == "pending", "retried by the job's policy"
        await h.run_until_idle(step=30)
        [item] = h.rows("item")
        assert (item["status"], item["attempts"]) == ("failed", 2)
        assert [a["status"] for a in h.rows("attempt")] == ["timed_out", "timed_out"]


async def test_a_run_that_ended_unheard_before_its_timeout_keeps_its_outcome(tmp_path: Path) -> None:
    # The run failed at 100 s; no webhook or poll told the daemon. Past the 2m timeout the reaper looks before
    # cancelling: a cancel would relabel the finished run "cancelled" in Cyberdesk, and the store would disagree.
    fleet = three_desks(
        run_duration="100-100",
        fail_when=[{"input": "task", "equals": "reconcile", "status": "error", "error": "app crashed"}],
    )
    async with Harness(tmp_path, {"slow": TIMING_OUT}, fixture=fleet, webhooks=False) as h:
        await h.trigger("slow")
        await h.cycle(poll=False)
        [first] = h.emulator_runs()
        await h.advance(121)
        await h.runtime.reap_round()
        assert first.status == "error", "the reaper left the finished run alone"
        attempt = next(a for a in h.rows("attempt") if a["run_id"] == first.id)
        assert (attempt["status"], attempt["error"]) == ("error", ["app crashed"])
        assert h.stats()["requests"].get("PATCH /v1/runs/{run_id}") is None


async def test_a_disconnected_desktop_gets_no_new_work_and_its_interrupted_run_is_retried(
    tmp_path: Path,
) -> None:
    job = """
        name: spread
        workflow: Flaky
        target: {match: {site: boston}}
        concurrency: 1
        items: [{task: a}, {task: b}, {task: c}]
        retry: {max_attempts: 2, backoff: 5s}
    """
    async with Harness(tmp_path, {"spread": job}, fixture=three_desks(run_duration="60-60")) as h:
        await h.trigger("spread")
        await h.cycle()
        [first] = h.emulator_runs()
        lost = h.emulator.world.machines[first.machine_id].name
        await h.advance(10)
        h.emulator.disconnect(lost)
        await h.runtime.refresh_fleet()
        await h.run_until_idle(step=10)
        assert first.status == "error"
        later = [r for r in h.emulator_runs() if r.created_at > first.created_at]
        assert later and all(h.emulator.world.machines[r.machine_id].name != lost for r in later)
        assert sorted(i["status"] for i in h.rows("item")) == ["succeeded"] * 3


async def test_an_item_pinned_to_a_desktop_that_stays_gone_fails_after_the_job_timeout(
    tmp_path: Path,
) -> None:
    job = """
        name: each
        workflow: Flaky
        target: {match: {site: boston}}
        fan_out: machines
        inputs: {task: check}
        timeout: 5m
        retry: {max_attempts: 3, backoff: 5s}
    """
    async with Harness(tmp_path, {"each": job}, fixture=three_desks(run_duration="60-60")) as h:
        await h.trigger("each")
        await h.cycle()
        assert len(h.emulator_runs()) == 3
        await h.advance(10)
        h.emulator.disconnect("desk-2")
        await h.runtime.refresh_fleet()
        await h.run_until_idle(step=30)
        items = {i["machine_name"]: i for i in h.rows("item")}
        assert items["desk-1"]["status"] == items["desk-3"]["status"] == "succeeded"
        assert items["desk-2"]["status"] == "failed"
        reason = next(e["data"]["reason"] for e in h.rows("event") if e["kind"] == "item_failed")
        assert reason.startswith("its desktop desk-2 is disconnected")
        # It never ran anywhere else: it belongs to desk-2.
        assert [h.emulator.world.machines[r.machine_id].name for r in h.emulator_runs()].count("desk-2") == 1
