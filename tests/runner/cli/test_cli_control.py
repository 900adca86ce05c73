"""`trigger --wait`, `cancel`, `pause`/`resume` and `retry` against a daemon running in a background thread:
the CLI only writes to the store, and the running daemon acts on it."""

from __future__ import annotations

from typing import Any

from cli_support import LiveDaemon
from daemon_support import eventually


def _fire(live: LiveDaemon, fire_id: str) -> dict[str, Any]:
    fire: dict[str, Any] = live.env.json("show", fire_id)["fire"]
    return fire


def test_trigger_wait_exits_0_when_every_item_succeeds(live: LiveDaemon) -> None:
    result = live.env.cli("trigger", "quick", "--wait", "--input", "note=hello")
    assert result.exit_code == 0, result.output
    fire_id = result.stdout.split()[1]
    assert result.stdout.startswith(f"fire {fire_id} of quick requested")
    assert f"fire {fire_id} succeeded: 4/4 ok" in result.stderr
    shown = live.env.json("show", fire_id)
    assert shown["fire"]["status"] == "succeeded" and shown["fire"]["items"]["succeeded"] == 4
    assert all(i["inputs"]["note"] == "hello" for i in shown["items"])


def test_trigger_wait_json_exits_1_when_an_item_fails(live: LiveDaemon) -> None:
    result = live.env.json("trigger", "flaky", "--wait", "--timeout", "30s", code=1)
    assert result["job"] == "flaky" and result["result"]["id"] == result["fire"]
    assert result["result"]["status"] == "failed"
    assert result["result"]["items"] | {"total": 2} == {
        "total": 2,
        "succeeded": 0,
        "failed": 2,
        "running": 0,
        "pending": 0,
        "cancelled": 0,
    }
    assert _fire(live, result["fire"])["status"] == "failed"


def test_retry_a_failed_fire_as_a_new_fire_with_the_same_desktops(live: LiveDaemon) -> None:
    first = live.env.json("trigger", "flaky", "--wait", code=1)["fire"]
    old = live.env.json("show", first)
    retried = live.env.json("retry", first, "--wait", code=1)  # the workflow always fails
    assert retried["trigger"] == "retry" and retried["retry_of"] == first
    assert retried["status"] == "failed" and retried["items"]["total"] == 2
    new = live.env.json("show", retried["id"])
    pins = sorted((i["desktop_id"], i["inputs"]["n"]) for i in new["items"])
    assert pins == sorted((i["desktop_id"], i["inputs"]["n"]) for i in old["items"])
    assert any(
        e["kind"] == "retried" and e["data"]["retry_fire"] == retried["id"]
        for e in live.env.json("show", first)["events"]
    )

    one = old["items"][0]["id"]
    result = live.env.cli("retry", one)
    assert result.exit_code == 0, result.output
    fire_id = result.stdout.split()[1]
    assert live.env.json("show", fire_id)["items"][0]["desktop_id"] == old["items"][0]["desktop_id"]
    eventually(lambda: _fire(live, fire_id)["status"] == "failed", what="the retry of one item to run")


def test_retry_refuses_what_did_not_fail(live: LiveDaemon) -> None:
    ok = live.env.json("trigger", "quick", "--wait")["fire"]
    result = live.env.cli("retry", ok)
    assert result.exit_code == 1 and f"nothing to retry: fire {ok} has no failed item" in result.stderr


def test_cancel_a_fire_cancels_pending_items_at_once_and_running_runs_through_the_daemon(
    live: LiveDaemon,
) -> None:
    fire_id = live.env.json("trigger", "slow")["fire"]
    running = eventually(
        lambda: [r for r in live.env.json("runs", "--fire", fire_id) if r["status"] == "running"],
        what="the first slow run to start",
    )
    assert len(running) == 1  # concurrency 1
    cancelled = live.env.json("cancel", fire_id)
    assert cancelled == {
        "id": fire_id,
        "kind": "fire",
        "cancelled_items": 2,
        "cancel_requested_runs": 1,
        "fire_id": fire_id,
        "fire_status": "running",
    }
    # The reaper cancels the run in Cyberdesk within a round or two; then the fire is settled.
    eventually(
        lambda: _fire(live, fire_id)["status"] == "cancelled", timeout=10, what="the run to be cancelled"
    )
    run = live.env.json("show", running[0]["id"])["attempt"]
    assert run["status"] == "cancelled" and run["cancel_requested"]
    again = live.env.cli("cancel", fire_id)
    assert again.exit_code == 0 and f"nothing to cancel: fire {fire_id} is cancelled" in again.stdout


def test_cancel_one_run_by_its_cyberdesk_run_id(live: LiveDaemon) -> None:
    fire_id = live.env.json("trigger", "slow")["fire"]
    run = eventually(
        lambda: [r for r in live.env.json("runs", "--fire", fire_id) if r["status"] == "running"],
        what="a slow run to start",
    )[0]
    result = live.env.cli("cancel", run["run_id"])
    assert result.exit_code == 0 and "1 run(s) in flight flagged" in result.stdout
    eventually(
        lambda: live.env.json("show", run["id"])["attempt"]["status"] == "cancelled", what="the cancel"
    )
    live.env.cli("cancel", fire_id)  # the rest of the fire, so it does not hold the desktop for later tests
    eventually(lambda: _fire(live, fire_id)["status"] == "cancelled", what="the fire to be cancelled")


def test_pause_skips_scheduled_fires_and_resume_brings_them_back(live: LiveDaemon) -> None:
    assert live.env.json("pause", "ticker") == {"job": "ticker", "paused": True}
    assert {j["name"]: j for j in live.env.json("jobs")}["ticker"]["paused"] is True
    skipped = eventually(
        lambda: [
            f
            for f in live.env.json("fires", "ticker", "-n", "3")
            if f["status"] == "skipped" and "paused" in (f["reason"] or "")
        ],
        timeout=10,
        what="a skipped fire of the paused job",
    )
    assert skipped[0]["trigger"] == "scheduled" and skipped[0]["scheduled_for"]
    result = live.env.cli("resume", "ticker")
    assert result.exit_code == 0 and "ticker resumed" in result.stdout
    eventually(
        lambda: any(
            f["status"] in ("running", "succeeded") and f["created_at"] > skipped[0]["created_at"]
            for f in live.env.json("fires", "ticker", "-n", "3")
        ),
        timeout=10,
        what="a scheduled fire after resume",
    )


def test_watch_and_status_while_the_daemon_runs(live: LiveDaemon) -> None:
    fire_id = live.env.json("trigger", "slow")["fire"]
    snapshot = eventually(
        lambda: (s := live.env.json("watch", "slow"))["runs"] and s["runs"][0]["run_id"] and s,
        what="a run in flight with its Cyberdesk run id",
    )
    run = snapshot["runs"][0]
    assert run["job"] == "slow" and run["desktop"] == "slow-1" and run["fire_id"] == fire_id
    assert snapshot["jobs"] == [{"job": "slow", "pending": 2, "running": 1, "runs_in_flight": 1}]
    text = live.env.cli("watch", "slow", "--once").stdout
    assert run["run_id"] in text and "Runs in flight" in text
    assert {j["name"]: j for j in live.env.json("jobs")}["slow"]["in_flight"] == 1

    status = live.env.json("status", "--probe")
    assert status["healthy"] is True
    daemon = next(d for d in status["daemons"] if d["state"] == "running")
    assert daemon["id"] == live.daemon.id and daemon["api_ok"] is True and daemon["webhook_up"] is True
    assert status["work"]["runs_in_flight"] >= 1
    assert "OK: 1 daemon running." in live.env.cli("status").stdout
    live.env.cli("cancel", fire_id)
    eventually(lambda: _fire(live, fire_id)["status"] == "cancelled", what="the slow fire to be cancelled")
