"""Tracking: webhooks (verified, idempotent), polling (cheap, the safety net), unknown runs recorded."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import httpx
import pytest

from cyberdesk.webhooks import sign
from cyberdesk_runner.store.records import RunObservation
from cyberdesk_runner.tracking import sink
from cyberdesk_runner.tracking.news import CreatedRun, observation
from cyberdesk_runner.tracking.sink import UNKNOWN_AFTER

from .harness import WEBHOOK_SECRET, Harness

MANY = """
    name: many
    workflow: Submit insurance claim
    target: {pool: claims-team}
    concurrency: 8
    items_from: claims.jsonl
"""


def _jobs(tmp_path: Path, count: int) -> dict[str, str]:
    (tmp_path / "jobs").mkdir(exist_ok=True)
    rows = [json.dumps({"claim_id": f"C-{n}", "patient_name": "P", "amount": "1"}) for n in range(count)]
    (tmp_path / "jobs" / "claims.jsonl").write_text("\n".join(rows) + "\n")
    return {"many": MANY}


async def test_webhooks_alone_carry_every_run_to_its_end(tmp_path: Path) -> None:
    async with Harness(tmp_path, _jobs(tmp_path, 8)) as h:
        await h.trigger("many")
        await h.run_until_idle(poll=False)
        assert sorted(i["status"] for i in h.rows("item")) == ["succeeded"] * 8
        finished = [e for e in h.rows("event") if e["kind"] == "attempt_success"]
        assert {e["data"]["source"] for e in finished} == {"webhook"}
        assert h.stats()["webhooks"]["delivered"] == 8


async def test_poll_only_tracking_lists_runs_instead_of_getting_each(tmp_path: Path) -> None:
    async with Harness(tmp_path, _jobs(tmp_path, 8), webhooks=False) as h:
        await h.trigger("many")
        await h.run_until_idle(step=30)
        assert sorted(i["status"] for i in h.rows("item")) == ["succeeded"] * 8
        requests = h.stats()["requests"]
        gets = sum(requests.get("GET /v1/runs/{run_id}", {}).values())
        lists = sum(requests.get("GET /v1/runs", {}).values())
        assert gets == 0, "eight runs in flight: one list call per poll, not eight GETs"
        assert lists >= 1


async def test_a_lost_webhook_costs_one_poll(tmp_path: Path) -> None:
    async with Harness(tmp_path, _jobs(tmp_path, 1)) as h:
        h.emulator.remove_webhook_endpoint("http://runner.test/hooks")  # every delivery is lost
        await h.trigger("many")
        await h.cycle(poll=False)
        await h.advance(60)
        await h.cycle(poll=False)
        assert h.rows("item")[0]["status"] == "running"
        await h.cycle(poll=True)
        assert h.rows("item")[0]["status"] == "succeeded"


async def _deliver(h: Harness, body: bytes, headers: dict[str, str]) -> httpx.Response:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=h.app), base_url="http://runner.test"
    ) as c:
        return await c.post("/hooks", content=body, headers=headers)


async def test_forged_or_tampered_webhooks_are_rejected_and_change_nothing(tmp_path: Path) -> None:
    async with Harness(tmp_path, _jobs(tmp_path, 1)) as h:
        await h.trigger("many")
        await h.cycle(poll=False)
        [run] = h.emulator_runs()
        event = {
            "event_id": str(uuid.uuid4()),
            "event_type": "run_complete",
            "occurred_at": "2026-11-30T14:01:00Z",
            "run": {
                "id": run.id,
                "workflow_id": run.workflow_id,
                "machine_id": run.machine_id,
                "status": "success",
                "created_at": "2026-11-30T14:00:00Z",
            },
        }
        body = json.dumps(event).encode()
        forged = sign(body, "whsec_" + "d3Jvbmctc2VjcmV0LXdyb25nLXNlY3JldA==")
        assert (await _deliver(h, body, forged)).status_code == 400
        good = sign(body, WEBHOOK_SECRET)
        tampered = body.replace(b"success", b"error\x20\x20")
        assert (await _deliver(h, tampered, good)).status_code == 400
        assert (await _deliver(h, body, {})).status_code == 400
        assert h.rows("attempt")[0]["status"] in ("scheduling", "running")
        # The genuine delivery is accepted; delivering it again changes nothing more.
        assert (await _deliver(h, body, good)).status_code == 200
        assert (await _deliver(h, body, sign(body, WEBHOOK_SECRET))).status_code == 200
        assert h.rows("attempt")[0]["status"] == "success"
        assert len([e for e in h.rows("event") if e["kind"] == "attempt_success"]) == 1
        metrics = h.runtime.metrics
        assert metrics.webhooks.labels("rejected")._value.get() == 3


async def test_an_event_for_an_unknown_run_is_recorded_not_failed(tmp_path: Path) -> None:
    async with Harness(tmp_path, _jobs(tmp_path, 1)) as h:
        stranger = str(uuid.uuid4())
        event = {
            "event_type": "run_complete",
            "run": {
                "id": stranger,
                "workflow_id": str(uuid.uuid4()),
                "machine_id": None,
                "status": "success",
                "created_at": "2026-11-30T14:00:00Z",
            },
        }
        body = json.dumps(event).encode()
        assert (await _deliver(h, body, sign(body, WEBHOOK_SECRET))).status_code == 200
        # It may be news of a run whose create call is still being answered: it waits for that, a while.
        h.clock.advance(UNKNOWN_AFTER.total_seconds() - 1)
        await h.runtime.reap_round()
        assert [e for e in h.rows("event") if e["kind"] == "unknown_run"] == []
        h.clock.advance(1)
        await h.runtime.reap_round()
        assert [e["run_id"] for e in h.rows("event") if e["kind"] == "unknown_run"] == [stranger]
        assert h.rows("attempt") == []


async def test_a_webhook_that_beats_the_create_answer_is_applied_once_the_run_is_recorded(
    tmp_path: Path,
) -> None:
    from datetime import timedelta

    from cyberdesk import RunCreate

    async with Harness(tmp_path, _jobs(tmp_path, 1)) as h:
        await h.trigger("many")
        await h.runtime.plan_requested_fires()
        [ref] = h.store.dispatch.assign(
            h.clock.now(), h.runtime.dispatcher._choose, lease=timedelta(seconds=30)
        )
        body = RunCreate(
            workflow_id=ref.workflow_id,
            machine_id=ref.machine_id,
            input_values=dict(ref.inputs),
            is_priority=False,
        )
        assert (await h.client.runs.create(body, idempotency_key=ref.idempotency_key)).error is None
        await h.advance(60)  # the run ends and its webhook arrives before its create answer is recorded
        assert h.rows("attempt")[0]["status"] == "creating"
        await h.runtime.dispatch_round()  # the claim lapsed: the call is repeated, its answer recorded
        [attempt] = h.rows("attempt")
        assert attempt["status"] == "success", "applied from the early webhook, without waiting for a poll"
        h.clock.advance(UNKNOWN_AFTER.total_seconds())
        await h.runtime.reap_round()
        assert "unknown_run" not in [e["kind"] for e in h.rows("event")]


async def _another_daemons_run_whose_webhook_came_first(h: Harness) -> None:
    """Another daemon creates a run; its webhook reaches this daemon before that daemon records the run."""
    from datetime import timedelta

    from cyberdesk import RunCreate

    other = await h.restarted("daemon_other")
    await h.trigger("many")
    await h.runtime.plan_requested_fires()
    [ref] = h.store.dispatch.assign(h.clock.now(), other.dispatcher._choose, lease=timedelta(seconds=30))
    body = RunCreate(
        workflow_id=ref.workflow_id,
        machine_id=ref.machine_id,
        input_values=dict(ref.inputs),
        is_priority=False,
    )
    created = (await h.client.runs.create(body, idempotency_key=ref.idempotency_key)).unwrap()
    await h.advance(60)  # the run ends; its webhook reaches this daemon, which parks it: not our run yet
    assert h.rows("attempt")[0]["status"] == "creating"
    await other.sink.record([CreatedRun(ref.id, observation(created, "create"))])
    assert h.rows("attempt")[0]["status"] in ("scheduling", "running")  # the other daemon knows no more


async def test_a_webhook_about_another_daemons_run_is_applied_at_the_next_sweep(tmp_path: Path) -> None:
    """The webhook endpoint may point at one daemon while another creates the run: news that came before that
    daemon recorded the creation is applied within a reap round, not after the unknown-run grace period."""
    async with Harness(tmp_path, _jobs(tmp_path, 1)) as h:
        await _another_daemons_run_whose_webhook_came_first(h)
        h.clock.advance(2)
        await h.runtime.reap_round()
        [attempt] = h.rows("attempt")
        assert attempt["status"] == "success"
        assert [e["kind"] for e in h.rows("event") if e["kind"] == "attempt_success"] == ["attempt_success"]
        h.clock.advance(UNKNOWN_AFTER.total_seconds())
        await h.runtime.reap_round()
        assert "unknown_run" not in [e["kind"] for e in h.rows("event")]


async def test_parked_news_rides_along_with_the_next_batch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Under load the sink does not wait for the reap loop: parked news is retried with the batches it writes."""
    monkeypatch.setattr(sink, "RETRY_PARKED_EVERY", 0.0)
    async with Harness(tmp_path, _jobs(tmp_path, 1)) as h:
        await _another_daemons_run_whose_webhook_came_first(h)
        stranger = RunObservation(str(uuid.uuid4()), "running", source="webhook")
        await h.runtime.sink.record([stranger])  # any batch will do
        [attempt] = h.rows("attempt")
        assert attempt["status"] == "success"
        h.clock.advance(UNKNOWN_AFTER.total_seconds())
        await h.runtime.reap_round()
        # Only the stranger's news is left over, and it is recorded as such.
        assert [e["run_id"] for e in h.rows("event") if e["kind"] == "unknown_run"] == [stranger.run_id]


async def test_a_runs_end_fills_its_desktop_without_a_dispatch_round(tmp_path: Path) -> None:
    one_at_a_time = MANY.replace("concurrency: 8", "concurrency: 1")
    async with Harness(tmp_path, {**_jobs(tmp_path, 3), "many": one_at_a_time}) as h:
        wakes: list[None] = []
        h.runtime._on_wake = h.runtime.dispatcher._on_room = lambda: wakes.append(None)
        await h.trigger("many")
        await h.runtime.dispatch_round()  # the first run, created and recorded
        assert len(h.emulator_runs()) == 1
        wakes.clear()  # the trigger's
        for created in (2, 3):
            # The run ends; its webhook's transaction assigns the next item, whose call starts at once.
            await h.advance(61)
            await h.runtime.sink.drain()
            await h.runtime.dispatcher.drain()
            assert len(h.emulator_runs()) == created
        await h.advance(61)
        await h.runtime.sink.drain()
        assert sorted(i["status"] for i in h.rows("item")) == ["succeeded"] * 3
        assert wakes == []  # no round was asked for: each end was seen to in its own transaction
