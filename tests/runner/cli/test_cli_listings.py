"""`fires`, `runs`, `show`, `watch`, `jobs` and `status` on a store a real daemon filled: JSON shapes and values
match the store, tables show the same rows."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
from cli_support import Env

from cyberdesk_runner.store.views import AttemptQuery

FIRE_KEYS = {
    "id",
    "job",
    "trigger",
    "status",
    "scheduled_for",
    "created_at",
    "finished_at",
    "retry_of",
    "after_fire",
    "items",
    "reason",
    "usage",
}
ITEM_COUNT_KEYS = {"total", "succeeded", "failed", "running", "pending", "cancelled"}
RUN_KEYS = {
    "id",
    "job",
    "fire_id",
    "item_id",
    "attempt",
    "run_id",
    "step",
    "steps",
    "desktop",
    "desktop_id",
    "status",
    "created_at",
    "started_at",
    "ended_at",
    "duration_s",
    "age_s",
    "cancel_requested",
    "errors",
}


def _attempts(env: Env, **filters: Any) -> list[Any]:
    store = env.store()
    try:
        return store.queries.attempt_views(AttemptQuery(limit=10_000, **filters))
    finally:
        store.close()


def test_fires_json_counts_match_the_store(history: Env) -> None:
    fires = history.json("fires")
    assert {f["job"] for f in fires} == {"claims", "records", "health"}
    store = history.store()
    try:
        for fire in fires:
            assert set(fire) == FIRE_KEYS
            assert set(fire["items"]) == ITEM_COUNT_KEYS
            assert fire["trigger"] == "manual"
            assert fire["status"] in ("succeeded", "failed")
            items = Counter(i.status for i in store.queries.item_views(fire["id"]))
            assert {k: v for k, v in fire["items"].items() if k != "total" and v} == dict(items)
            assert fire["items"]["total"] == sum(items.values())
    finally:
        store.close()
    claims = next(f for f in fires if f["job"] == "claims")
    # C-BAD always fails (twice: max_attempts 2): the fire failed, and says why.
    assert claims["status"] == "failed"
    assert claims["items"]["failed"] >= 1
    assert "C-BAD" in claims["reason"]


def test_fires_table_and_filters(history: Env) -> None:
    result = history.cli("fires", "claims")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].split()[:4] == ["id", "job", "trigger", "status"]
    assert sum("claims" in line for line in lines) == 1
    assert "failed" in result.stdout and "the portal rejected claim C-BAD" in result.stdout
    assert history.json("fires", "--limit", "1") == history.json("fires")[:1]
    assert history.json("fires", "--since", "1h") == history.json("fires")
    assert history.json("fires", "--since", "2000-01-01") == history.json("fires")
    assert history.json("fires", "--since", "2999-01-01") == []
    assert (
        "No fires of claims since 2999-01-01"
        in history.cli("fires", "claims", "--since", "2999-01-01").stdout
    )


def test_runs_json_matches_the_store(history: Env) -> None:
    runs = history.json("runs", "--limit", "1000")
    attempts = _attempts(history)
    assert [r["id"] for r in runs] == [a.id for a in attempts]
    assert len(runs) >= 16  # 6 claims + 6 records + 4 health, plus retries
    for run in runs:
        assert set(run) == RUN_KEYS
        assert run["run_id"] and run["desktop"].startswith("desk-")
        assert run["duration_s"] is not None and run["duration_s"] >= 0
    failed = [r for r in runs if r["status"] != "success"]
    assert failed and all(r["errors"] for r in failed)
    # Items retried: attempt 2 exists (C-BAD at least), with the same item as an attempt 1.
    second = [r for r in runs if r["attempt"] == 2]
    assert second
    assert all(any(o["item_id"] == r["item_id"] and o["attempt"] == 1 for o in runs) for r in second)


@pytest.mark.parametrize(
    ("args", "check"),
    [
        (["--job", "records"], lambda r: r["job"] == "records"),
        (["--status", "success"], lambda r: r["status"] == "success"),
        (["--status", "failed"], lambda r: r["status"] in ("task_failed", "error", "timed_out", "rejected")),
        (["--machine", "desk-a1"], lambda r: r["desktop"] == "desk-a1"),
    ],
)
def test_runs_filters(history: Env, args: list[str], check: Any) -> None:
    every = history.json("runs", "--limit", "1000")
    picked = history.json("runs", *args, "--limit", "1000")
    assert picked and [r["id"] for r in picked] == [r["id"] for r in every if check(r)]


def test_runs_by_fire_and_by_desktop_id_and_limit(history: Env) -> None:
    fire = next(f for f in history.json("fires") if f["job"] == "health")
    runs = history.json("runs", "--fire", fire["id"])
    assert runs and {r["fire_id"] for r in runs} == {fire["id"]}
    assert len({r["desktop"] for r in runs}) == 4  # fan_out: machines, one item per desktop
    desktop_id = runs[0]["desktop_id"]
    assert {r["desktop_id"] for r in history.json("runs", "--machine", desktop_id)} == {desktop_id}
    assert len(history.json("runs", "-n", "3")) == 3
    table = history.cli("runs", "-n", "3")
    assert "the newest 3 runs shown" in table.stdout
    assert all(r["run_id"] in table.stdout for r in history.json("runs", "-n", "3"))


def test_show_fire_item_attempt_and_run_id(history: Env) -> None:
    claims = next(f for f in history.json("fires") if f["job"] == "claims")
    fire = history.json("show", claims["id"])
    assert fire["kind"] == "fire" and fire["fire"]["id"] == claims["id"]
    assert len(fire["items"]) == 6
    assert {i["inputs"]["claim_id"] for i in fire["items"]} == {"C-1", "C-2", "C-3", "C-4", "C-5", "C-BAD"}
    kinds = [e["kind"] for e in fire["events"]]
    assert kinds[0] == "fire_requested" and "fire_started" in kinds and kinds[-1] == "fire_failed"
    assert fire["events_total"] == len(fire["events"])

    bad = next(i for i in fire["items"] if i["inputs"]["claim_id"] == "C-BAD")
    assert bad["status"] == "failed" and "C-BAD" in bad["last_error"]
    item = history.json("show", bad["id"])
    assert item["kind"] == "item" and item["item"]["id"] == bad["id"]
    assert [a["attempt"] for a in item["attempts"]] == [1, 2]
    assert all(a["status"] == "task_failed" and a["errors"] for a in item["attempts"])
    assert "item_failed" in [e["kind"] for e in item["events"]]

    attempt = item["attempts"][0]
    by_id = history.json("show", attempt["id"])
    by_run = history.json("show", attempt["run_id"])
    assert by_id["kind"] == by_run["kind"] == "attempt"
    assert by_id["id"] == by_run["id"] == attempt["id"]
    assert by_id["attempt"]["run_id"] == attempt["run_id"] and by_id["attempt"]["output"] is not None
    assert {e["attempt_id"] for e in by_id["events"]} == {attempt["id"]}

    text = history.cli("show", bad["id"]).stdout
    for expected in (
        f"Item {bad['id']}",
        "Runs of this item",
        "the portal rejected claim C-BAD",
        "Events",
        "item_retry_scheduled",
        "claim_id = C-BAD",
    ):
        assert expected in text


def test_show_limits_events(history: Env) -> None:
    claims = next(f for f in history.json("fires") if f["job"] == "claims")
    shown = history.json("show", claims["id"], "--limit", "3")
    assert len(shown["events"]) == 3 and shown["events_total"] > 3
    assert len(shown["items"]) == 3
    assert "the last 3 of" in history.cli("show", claims["id"], "--limit", "3").stdout


def test_show_pages_a_fires_items(history: Env) -> None:
    claims = next(f for f in history.json("fires") if f["job"] == "claims")
    every = history.json("show", claims["id"])["items"]
    pages = [history.json("show", claims["id"], "--limit", "4", "--page", str(p)) for p in (1, 2, 3)]
    assert [p["items"] for p in pages] == [every[:4], every[4:], []]
    assert [p["items_page"] for p in pages] == [
        {"page": 1, "limit": 4, "first": 1, "shown": 4, "total": 6, "more": 2},
        {"page": 2, "limit": 4, "first": 5, "shown": 2, "total": 6, "more": 0},
        {"page": 3, "limit": 4, "first": None, "shown": 0, "total": 6, "more": 0},
    ]
    # The fire's counts are the whole fire's on every page.
    assert {p["fire"]["items"]["total"] for p in pages} == {6}

    first = _items_table(history.cli("show", claims["id"], "-n", "4").stdout)
    assert first.endswith("items 1-4 of 6; 2 more: --page 2")
    assert every[3]["id"] in first and every[4]["id"] not in first
    second = _items_table(history.cli("show", claims["id"], "-n", "4", "--page", "2").stdout)
    assert second.endswith("items 5-6 of 6")
    assert every[4]["id"] in second and every[3]["id"] not in second
    past = history.cli("show", claims["id"], "-n", "4", "-p", "3").stdout
    assert "no items on page 3: the fire has 6 items, 2 page(s) of 4" in past
    whole = _items_table(history.cli("show", claims["id"]).stdout)
    assert "more" not in whole and all(i["id"] in whole for i in every)


def _items_table(text: str) -> str:
    """The Items table of `show`'s text, its caption last."""
    return text.split("\nItems\n", 1)[1].split("\n\n", 1)[0].rstrip()


def test_watch_once_when_idle(history: Env) -> None:
    snapshot = history.json("watch")
    assert snapshot["runs"] == [] and snapshot["jobs"] == [] and snapshot["job"] is None
    result = history.cli("watch", "--once")
    assert result.exit_code == 0 and "No runs in flight." in result.stdout


def test_jobs_shows_runs_in_flight(history: Env) -> None:
    jobs = {j["name"]: j for j in history.json("jobs")}
    assert set(jobs) == {"claims", "records", "health"}
    assert all(j["in_flight"] == 0 for j in jobs.values())


def test_status_after_the_daemon_stopped(history: Env) -> None:
    result = history.cli("status")
    assert result.exit_code == 1
    assert "No daemon is running: the last one" in result.stdout
    data = history.json("status", code=1)
    assert data["store"]["reachable"] is True and data["healthy"] is False
    daemon = data["daemons"][0]
    assert daemon["state"] == "stopped" and daemon["api_ok"] is True and daemon["webhook_url"]
    assert daemon["last_poll_at"] is not None
    assert data["work"] == {
        "requested_fires": 0,
        "pending_items": 0,
        "running_items": 0,
        "runs_in_flight": 0,
        "runs_being_created": 0,
    }
