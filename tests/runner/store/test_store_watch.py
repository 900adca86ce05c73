"""Alerts on what the daemon notices (SQLite and PostgreSQL), in controlled time: a late scheduled fire, a desktop
disconnected for over 5 minutes (once per disconnection), a daemon lost (once, however many daemons notice);
sent alerts purged by retention while failed ones stay; claims given back by a sender that stops."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from store_helpers import T0, add_jobs, at, dispatch_and_create, items, scheduled, together

from cyberdesk_runner.store import Store
from cyberdesk_runner.store.consequences import AlertEvent, AlertRoute, OutboxRules

EVERYTHING = frozenset({"fire_late", "desktop_disconnected", "daemon_lost", "fire_failed"})
ROUTES = (AlertRoute("ops", EVERYTHING), AlertRoute("chat", frozenset({"daemon_lost"})))
LATE = {"claims": timedelta(minutes=5)}


def _types(store: Store) -> list[tuple[str, str]]:
    return sorted((a.destination, a.type) for a in store.outbox.alert_views(limit=1000))


def test_a_scheduled_fire_with_no_run_within_late_after_is_late_once(store: Store) -> None:
    add_jobs(store, "claims")
    store.outbox.rules = OutboxRules((ROUTES[0],))
    late_id = store.fires.insert(scheduled("claims", T0), items(1), T0)
    assert store.watch.raise_late_fires(LATE, at(299)) == 0  # not yet
    assert store.outbox.alert_views() == []
    store.watch.raise_late_fires(LATE, at(300))
    store.watch.raise_late_fires(LATE, at(900))  # asked again, and by another daemon: nothing new
    [alert] = store.outbox.alert_views()
    assert (alert.type, alert.job_name) == ("fire_late", "claims")
    due = store.outbox.claim_alerts(at(900), timedelta(seconds=30))
    assert due[0].payload["fire"] == late_id
    assert due[0].payload["scheduled_for"] == T0.isoformat()


def test_a_fire_whose_run_was_created_in_time_is_not_late(store: Store) -> None:
    add_jobs(store, "claims")
    store.outbox.rules = OutboxRules((ROUTES[0],))
    store.fires.insert(scheduled("claims", T0), items(1), T0)
    dispatch_and_create(store, at(10))
    store.fires.insert(scheduled("claims", at(3600)), items(1), at(3600))
    dispatch_and_create(store, at(3600 + 400))  # its run came, but 6m40s after its slot: late
    store.watch.raise_late_fires(LATE, at(4000))
    assert [a.type for a in store.outbox.alert_views()] == ["fire_late"]
    assert store.watch.raise_late_fires({"other": timedelta(minutes=5)}, at(4000)) == 0  # not its job


def test_a_desktop_disconnected_over_five_minutes_is_alerted_once_per_disconnection(store: Store) -> None:
    store.outbox.rules = OutboxRules((ROUTES[0],))
    store.watch.raise_disconnected({"m-1": "desk-1"}, ["m-2"], T0)
    store.watch.raise_disconnected({"m-1": "desk-1"}, ["m-2"], at(299))
    assert store.outbox.alert_views() == []
    store.watch.raise_disconnected({"m-1": "desk-1"}, ["m-2"], at(300))
    store.watch.raise_disconnected({"m-1": "desk-1"}, ["m-2"], at(600))
    assert _types(store) == [("ops", "desktop_disconnected")]
    store.watch.raise_disconnected({}, ["m-1", "m-2"], at(700))  # back
    store.watch.raise_disconnected({"m-1": "desk-1"}, ["m-2"], at(800))  # gone again: a new disconnection
    store.watch.raise_disconnected({"m-1": "desk-1"}, ["m-2"], at(1100))
    alerts = store.outbox.claim_alerts(at(1100), timedelta(seconds=30))
    assert [a.payload["desktop"] for a in alerts] == ["desk-1", "desk-1"]
    assert sorted(a.payload["since"] for a in alerts) == [T0.isoformat(), at(800).isoformat()]


def test_a_route_for_some_jobs_gets_the_desktops_of_those_jobs_and_every_lost_daemon(store: Store) -> None:
    disconnected = frozenset({"desktop_disconnected", "daemon_lost"})
    store.outbox.rules = OutboxRules(
        (
            AlertRoute("claims-team", disconnected, frozenset({"claims"})),
            AlertRoute("everyone", disconnected),
        )
    )
    down = {"m-1": "desk-1", "m-2": "desk-2", "m-3": "desk-3"}
    # desk-1 serves claims (and records); desk-2 only records; desk-3 is not known to serve any job.
    jobs_of = {"m-1": ["claims", "records"], "m-2": ["records"]}
    store.watch.raise_disconnected(down, [], T0, jobs_of)
    store.watch.raise_disconnected(down, [], at(300), jobs_of)
    store.daemons.register("daemon_gone", "host-x", 4242, T0)
    store.watch.raise_lost_daemons("daemon_me", timedelta(seconds=60), at(300))
    due = store.outbox.claim_alerts(at(300), timedelta(seconds=30))
    got = sorted((a.destination, a.type, a.payload.get("desktop")) for a in due)
    assert got == [
        ("claims-team", "daemon_lost", None),  # no job: every route asking for it
        ("claims-team", "desktop_disconnected", "desk-1"),
        ("claims-team", "desktop_disconnected", "desk-3"),  # no job known: every route asking for it
        ("everyone", "daemon_lost", None),
        ("everyone", "desktop_disconnected", "desk-1"),
        ("everyone", "desktop_disconnected", "desk-2"),
        ("everyone", "desktop_disconnected", "desk-3"),
    ]
    desk1 = next(a for a in due if a.payload.get("desktop") == "desk-1")
    assert desk1.payload["jobs"] == ["claims", "records"]


def test_a_lost_daemon_is_alerted_once_by_one_of_the_daemons_that_notice(
    open_store: Callable[[], Store],
) -> None:
    stores = [open_store(), open_store()]
    for s in stores:
        s.outbox.rules = OutboxRules(ROUTES)
    stores[0].daemons.register("daemon_lost1", "host-a", 11, T0)
    stores[0].daemons.register("daemon_clean", "host-b", 12, T0)
    stores[0].daemons.heartbeat("daemon_clean", {}, T0, stopped=True)
    stores[0].daemons.register("daemon_me", "host-c", 13, T0)
    stores[0].daemons.register("daemon_you", "host-d", 14, T0)
    lost_after = timedelta(seconds=60)
    assert stores[0].watch.raise_lost_daemons("daemon_me", lost_after, at(59)) == 0
    for _ in range(3):  # both survivors notice at once, again and again
        _, errors = together(
            [
                lambda: stores[0].watch.raise_lost_daemons("daemon_me", lost_after, at(61)),
                lambda: stores[1].watch.raise_lost_daemons("daemon_you", lost_after, at(61)),
            ]
        )
        assert errors == []
    # Each survivor sees the other as lost too (no heartbeat in this test), but daemon_lost1 only once per route,
    # and the cleanly stopped daemon never.
    views = stores[0].outbox.alert_views(limit=100)
    assert sorted(v.destination for v in views if v.id.startswith("alrt_")) == sorted(["ops", "chat"] * 3)
    due = stores[0].outbox.claim_alerts(at(61), timedelta(seconds=30))
    assert sorted(a.payload["daemon"] for a in due) == sorted(["daemon_lost1", "daemon_me", "daemon_you"] * 2)


def test_retention_purges_sent_alerts_and_keeps_failed_ones(store: Store) -> None:
    store.outbox.rules = OutboxRules((ROUTES[0],))
    store.outbox.raise_alerts([AlertEvent("daemon_lost", f"daemon_{i}") for i in range(3)], (ROUTES[0],), T0)
    sent, failed, pending = store.outbox.claim_alerts(T0, timedelta(seconds=30))
    store.outbox.alert_sent(sent.id, T0)
    assert store.outbox.alert_try_failed(failed.id, "HTTP 500", T0 + timedelta(hours=25)) == "failed"
    store.retention.purge(T0 + timedelta(days=8))
    assert sorted(v.status for v in store.outbox.alert_views()) == ["failed", "pending"]
    assert pending.id in {v.id for v in store.outbox.alert_views()}


def test_claims_given_back_are_due_again_at_once(store: Store) -> None:
    store.outbox.raise_alerts([AlertEvent("daemon_lost", "daemon_x")], (ROUTES[0],), T0)
    [claimed] = store.outbox.claim_alerts(T0, timedelta(seconds=30))
    assert store.outbox.claim_alerts(at(1), timedelta(seconds=30)) == []  # held by the first sender
    store.outbox.release_claims([claimed.id], at(1))
    [again] = store.outbox.claim_alerts(at(1), timedelta(seconds=30))
    assert again.id == claimed.id
