"""The status page's own store questions (`store/page.py`), on SQLite and PostgreSQL: job headers, fires in flight
(bounded, with counts and the total), and the desktops our runs hold."""

from __future__ import annotations

from store_helpers import T0, add_jobs, dispatch_and_create, manual_fire

from cyberdesk_runner.store import Store


def test_job_headers_list_jobs_by_name_with_pause_state(store: Store) -> None:
    add_jobs(store, "b", "a")
    store.jobs.set_paused("b", True, T0)
    headers = store.page.job_headers()
    assert [(h.name, h.paused) for h in headers] == [("a", False), ("b", True)]
    assert all(h.definition_hash for h in headers)


def test_fires_in_flight_are_the_newest_open_ones_with_counts_and_total(store: Store) -> None:
    add_jobs(store, "j")
    fires = [manual_fire(store, "j", 2) for _ in range(3)]
    page = store.page.fires_in_flight(limit=2)
    assert page.total == 3 and len(page.fires) == 2
    assert {f.id for f in page.fires} <= set(fires)
    assert all(f.counts.pending == 2 and f.counts.total == 2 for f in page.fires)
    everything = store.page.fires_in_flight(limit=10)
    assert everything.total == 3 and {f.id for f in everything.fires} == set(fires)


def test_busy_desktops_name_the_job_fire_and_item_holding_them(store: Store) -> None:
    add_jobs(store, "j")
    assert store.page.busy_desktops() == []
    fire_id = manual_fire(store, "j", 2)
    dispatch_and_create(store)
    busy = store.page.busy_desktops()
    items = {i.id for i in store.queries.item_views(fire_id)}
    assert len(busy) == 2 and {b.item_id for b in busy} == items
    assert all(b.job_name == "j" and b.fire_id == fire_id and b.status == "scheduling" for b in busy)
    assert len({b.machine_id for b in busy}) == 2
