"""LISTEN/NOTIFY: transactions that make work due wake the listeners of every daemon; the listener reconnects."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Callable

import pytest
import sqlalchemy as sa
from store_helpers import LEASE, T0, Chooser, at, dispatch_and_create, manual_fire, policy, run

from cyberdesk_runner.store import Store
from cyberdesk_runner.store.notify import listen_for_work
from cyberdesk_runner.store.records import NewFire


class Listener:
    def __init__(self, url: str) -> None:
        self.name = f"cdr-test-{secrets.token_hex(4)}"
        self.url = f"{url}&application_name={self.name}"
        self.woken = asyncio.Event()
        self.calls = 0
        self.stop = asyncio.Event()
        self.task: asyncio.Task[None] | None = None

    def on_notify(self) -> None:
        self.calls += 1
        self.woken.set()

    async def start(self) -> None:
        self.task = asyncio.create_task(listen_for_work(self.url, self.on_notify, self.stop))
        await self.next()  # the call made once listening (notifications may have been missed before)

    async def next(self) -> None:
        await asyncio.wait_for(self.woken.wait(), 10)
        self.woken.clear()

    async def close(self) -> None:
        self.stop.set()
        assert self.task is not None
        await asyncio.wait_for(self.task, 5)


@pytest.mark.postgres
async def test_new_work_wakes_a_listener(pg_store: Store) -> None:
    listener = Listener(pg_store.url)
    await listener.start()
    try:
        steps: list[Callable[[], object]] = [
            lambda: manual_fire(pg_store, "a", 2),  # a fire with items
            lambda: pg_store.fires.request(NewFire("a", "manual", None), T0),  # a fire to plan
        ]
        for step in steps:
            await asyncio.to_thread(step)
            await listener.next()
        # A run ends: its desktop is free for any daemon, and with a retry its item is due again.
        (run_id, _) = await asyncio.to_thread(dispatch_and_create, pg_store)
        await asyncio.to_thread(
            pg_store.tracking.apply_observations,
            [run(run_id, "error")],
            at(1),
            policy(max_attempts=2, retry_at=at(2)),
        )
        await listener.next()
        # A cancel request: the reaper (on whichever daemon holds its lease) has work.
        await asyncio.to_thread(pg_store.control.cancel_pending_items, "a", "user", at(3))
        await listener.next()
    finally:
        await listener.close()


@pytest.mark.postgres
async def test_the_listener_reconnects_after_losing_its_connection(
    pg_store: Store, pg_admin: sa.Engine
) -> None:
    listener = Listener(pg_store.url)
    await listener.start()
    try:
        with pg_admin.begin() as conn:
            killed = conn.execute(
                sa.text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = :name"
                ),
                {"name": listener.name},
            ).all()
        assert killed == [(True,)]
        await listener.next()  # reconnected (with backoff) and said so
        await asyncio.to_thread(manual_fire, pg_store, "a", 1)
        await listener.next()
    finally:
        await listener.close()


@pytest.mark.postgres
async def test_stop_ends_the_listener_promptly(pg_store: Store) -> None:
    listener = Listener(pg_store.url)
    await listener.start()
    started = time.monotonic()
    await listener.close()
    assert time.monotonic() - started < 3


async def test_sqlite_has_no_listener(tmp_path: object) -> None:
    stop = asyncio.Event()
    await asyncio.wait_for(listen_for_work("sqlite:///unused.sqlite", lambda: None, stop), 1)


@pytest.mark.postgres
async def test_dispatch_itself_sends_nothing_needed(pg_store: Store) -> None:
    """Dispatching is not new work for others; it must still commit cleanly with the notify machinery."""
    manual_fire(pg_store, "a", 1)
    assert len(pg_store.dispatch.assign(T0, Chooser(), lease=LEASE)) == 1
