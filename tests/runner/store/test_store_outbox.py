"""The outbox in the store (SQLite and PostgreSQL): alerts recorded with the change that causes them, once by
id; the flood digest; one sender per alert across daemons; backoff and giving up after 24 h."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from store_helpers import T0, add_jobs, manual_fire, together

from cyberdesk_runner.store import Store
from cyberdesk_runner.store.consequences import AlertEvent, AlertRoute, OutboxRules

ROUTES = (AlertRoute("ops", frozenset({"fire_succeeded", "fire_failed", "item_failed", "daemon_lost"})),)


def _events(n: int, kind: str = "daemon_lost") -> list[AlertEvent]:
    return [AlertEvent(kind, f"daemon_{i}", job="claims") for i in range(n)]


def test_a_fire_ending_records_its_alert_and_result_file_in_the_same_transaction(store: Store) -> None:
    add_jobs(store, "claims")
    store.outbox.rules = OutboxRules(ROUTES, {"claims": "csv"}, {"claims": ("token",)})
    fire_id = manual_fire(store, "claims", 0)  # no items: it ends at once
    assert store.outbox.alert_counts() == {"pending": 1}
    [alert] = store.outbox.alert_views()
    assert (alert.type, alert.destination, alert.job_name) == ("fire_succeeded", "ops", "claims")
    assert store.outbox.result_file(fire_id) == ("pending", None)
    assert store.outbox.pending_result_files() == [(fire_id, "claims", "csv")]


def test_the_same_event_is_recorded_once(store: Store) -> None:
    store.outbox.raise_alerts(_events(3), ROUTES, T0)
    store.outbox.raise_alerts(_events(3), ROUTES, T0 + timedelta(minutes=1))
    assert store.outbox.alert_counts() == {"pending": 3}


def test_a_flood_is_ten_alerts_then_one_digest(store: Store) -> None:
    store.outbox.raise_alerts(_events(47, "item_failed"), ROUTES, T0)
    claimed = store.outbox.claim_alerts(T0, timedelta(seconds=30))
    plain = [a for a in claimed if a.type != "digest"]
    [digest] = [a for a in claimed if a.type == "digest"]
    assert len(plain) == 10
    assert digest.payload["count"] == 37 and "37 more items of claims failed" in digest.payload["summary"]
    for alert in claimed:
        store.outbox.alert_sent(alert.id, T0)
    assert store.outbox.alert_counts() == {"sent": 11, "digested": 37}
    # More in the same minute wait; the next minute has room again.
    store.outbox.raise_alerts(
        [AlertEvent("item_failed", "late", job="claims")], ROUTES, T0 + timedelta(seconds=10)
    )
    assert store.outbox.claim_alerts(T0 + timedelta(seconds=20), timedelta(seconds=30)) == []
    assert [a.type for a in store.outbox.claim_alerts(T0 + timedelta(seconds=61), timedelta(seconds=30))] == [
        "item_failed"
    ]


def test_two_daemons_never_claim_the_same_alert(open_store: Callable[[], Store]) -> None:
    stores = [open_store(), open_store()]
    stores[0].outbox.raise_alerts(_events(8), ROUTES, T0)
    for _ in range(3):
        results, errors = together(
            [lambda s=s: s.outbox.claim_alerts(T0, timedelta(seconds=30)) for s in stores]
        )  # type: ignore[misc]
        assert errors == []
    claimed = [a.id for r in results for a in r or []]
    assert len(claimed) == len(set(claimed))


def test_failed_tries_back_off_and_give_up_after_a_day(store: Store) -> None:
    store.outbox.raise_alerts(_events(1), ROUTES, T0)
    [alert] = store.outbox.claim_alerts(T0, timedelta(seconds=30))
    assert store.outbox.alert_try_failed(alert.id, "HTTP 503", T0) == "pending"
    assert store.outbox.claim_alerts(T0 + timedelta(seconds=4), timedelta(seconds=30)) == []
    [again] = store.outbox.claim_alerts(T0 + timedelta(seconds=5), timedelta(seconds=30))
    assert again.id == alert.id  # the same webhook-id on every try
    assert (
        store.outbox.alert_try_failed(alert.id, "HTTP 429", T0 + timedelta(seconds=5), timedelta(minutes=10))
        == "pending"
    )
    assert store.outbox.claim_alerts(T0 + timedelta(minutes=9), timedelta(seconds=30)) == []
    assert store.outbox.alert_try_failed(alert.id, "ConnectError", T0 + timedelta(hours=24)) == "failed"
    assert store.outbox.alert_counts() == {"failed": 1}
