"""What the work cost (SQLite and PostgreSQL): each attempt keeps its run's usage, sums per fire, job and item,
usage with missing or odd keys, and the budget stop (pending items fail, the fire says why, fire_failed alerts)."""

from __future__ import annotations

from typing import Any

import pytest
from store_helpers import LEASE, T0, Chooser, at, created, manual_fire, policy

from cyberdesk_runner.store import Store
from cyberdesk_runner.store.consequences import AlertRoute, OutboxRules
from cyberdesk_runner.store.records import JobDefinition, RunObservation
from cyberdesk_runner.store.usage import UsageSum, usage_figures


def _job(store: Store, name: str, budget: int | None = None) -> None:
    definition: dict[str, Any] = {"name": name}
    if budget is not None:
        definition["budget"] = {"tokens_per_fire": budget}
    store.jobs.sync([JobDefinition(name, "h1", definition, f"/jobs/{name}.yaml")], T0)


def _usage(tokens: int, seconds: int) -> dict[str, Any]:
    return {
        "total_tokens": tokens,
        "input_tokens": tokens - 100,
        "output_tokens": 100,
        "billed_seconds": seconds,
    }


def _start(store: Store, desktops: int) -> list[str]:
    refs = store.dispatch.assign(T0, Chooser([f"m-{n}" for n in range(desktops)]), lease=LEASE)
    store.tracking.record_created(created(refs), T0, policy())
    return [f"run-{ref.id}" for ref in refs]


def _end(
    store: Store, run_id: str, usage: dict[str, Any] | None, status: str = "success", when: int = 60
) -> Any:
    news = RunObservation(run_id, status, source="webhook", usage=usage)
    return store.tracking.apply_observations([news], at(when), policy())


@pytest.mark.parametrize(
    ("usage", "figures"),
    [
        (_usage(4200, 90), (4200, 90.0)),
        ({"input_tokens": 300, "output_tokens": 50}, (350, None)),  # no total: the parts
        ({"output_tokens": 7, "billed_minutes": 1.5}, (7, 90.0)),
        ({"total_tokens": "lots", "billed_seconds": True}, (None, None)),  # not numbers: not said
        ({"billing_outcome": "billable"}, (None, None)),
        (None, (None, None)),
    ],
)
def test_usage_figures_cope_with_what_the_run_says(usage: Any, figures: tuple[Any, Any]) -> None:
    assert usage_figures(usage) == figures


def test_usage_is_kept_per_attempt_and_summed_per_fire_job_and_item(store: Store) -> None:
    _job(store, "claims")
    fire_a = manual_fire(store, "claims", 3)
    fire_b = manual_fire(store, "claims", 1, now=at(1))  # not due yet: no run, no usage
    runs = _start(store, 3)
    transitions = _end(store, runs[0], _usage(1000, 30))
    assert [t.data.get("tokens") for t in transitions if t.kind == "attempt_success"] == [1000]
    _end(store, runs[1], {"input_tokens": 500})  # no billed seconds: counts as nothing
    _end(store, runs[2], None, status="error")  # said nothing at all
    assert store.usage.by_fire([fire_a, fire_b, "fire_unknown"]) == {fire_a: UsageSum(2, 1500, 30.0)}
    # One row per item of the fire, in item order: what each item's runs cost.
    assert store.usage.by_job() == {"claims": UsageSum(2, 1500, 30.0)}
    assert store.usage.by_job(["other"]) == {}
    rows = list(store.results.result_rows(fire_a))
    assert sorted((r.tokens, r.billed_seconds) for r in rows if r.tokens is not None) == [
        (500, None),
        (1000, 30.0),
    ]
    assert sum(r.tokens is None for r in rows) == 1
    # The raw usage_metadata is kept as sent.
    view = store.queries.attempt_view(runs[0].removeprefix("run-"))
    assert view is not None and view.usage == _usage(1000, 30)


def test_a_fire_over_its_budget_stops_creating_runs_and_says_why(store: Store) -> None:
    _job(store, "claims", budget=3000)
    store.outbox.rules = OutboxRules((AlertRoute("ops", frozenset({"fire_failed"})),))
    fire_id = manual_fire(store, "claims", 5)
    first, second = _start(store, 2)  # two runs in flight, three items waiting
    kinds = [t.kind for t in _end(store, first, _usage(2000, 60))]
    assert "fire_over_budget" not in kinds  # 2,000 of 3,000
    transitions = _end(store, second, _usage(1500, 60), when=70)  # 3,500: over
    [over] = [t for t in transitions if t.kind == "fire_over_budget"]
    assert over.data["tokens"] == 3500 and over.data["tokens_per_fire"] == 3000
    assert [t.kind for t in transitions].count("item_failed") == 3
    [ended] = [t for t in transitions if t.kind == "fire_failed"]
    assert "budget" in ended.data["reason"] and "3,500" in ended.data["reason"]
    # Nothing left to create, the fire keeps the reason, the alert carries it.
    assert store.dispatch.assign(at(80), Chooser(["m-0", "m-1"]), lease=LEASE) == []
    fire = store.queries.fire_view(fire_id)
    assert fire is not None and fire.status == "failed" and "budget" in (fire.error or "")
    [alert] = store.outbox.alert_views()
    assert alert.type == "fire_failed"
    [due] = store.outbox.claim_alerts(at(90), LEASE)
    assert "budget" in due.payload["error"]


def test_a_retry_after_the_budget_is_passed_is_not_made(store: Store) -> None:
    _job(store, "claims", budget=1000)
    manual_fire(store, "claims", 2)
    first, second = _start(store, 2)
    _end(store, first, _usage(1200, 10))  # over: nothing pending yet, the fire records why
    # The second run fails; its retry would be pending: the budget stops it in the same transaction.
    news = RunObservation(second, "error", source="webhook", usage=_usage(10, 1))
    transitions = store.tracking.apply_observations([news], at(61), policy(max_attempts=3))
    kinds = [t.kind for t in transitions]
    assert "item_retry_scheduled" in kinds and kinds.count("item_failed") == 1 and "fire_failed" in kinds
    assert [t.kind for t in transitions].count("fire_over_budget") == 0  # recorded once, with the first run


def test_no_budget_no_stop(store: Store) -> None:
    _job(store, "claims")
    manual_fire(store, "claims", 3)
    first, _ = _start(store, 2)
    kinds = [t.kind for t in _end(store, first, _usage(10**9, 60))]
    assert "fire_over_budget" not in kinds and "item_failed" not in kinds
