"""A runner Runtime wired to an in-process emulator, with one controlled clock for both.

Nothing sleeps: tests move time with `advance()` and run the daemon's steps with `cycle()`.
"""

from __future__ import annotations

import asyncio
import textwrap
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from cyberdesk import CyberdeskClient, RetryConfig
from cyberdesk.emulator import Emulator, EmulatorOptions, create_app
from cyberdesk.emulator import ManualClock as EmulatorClock
from cyberdesk_runner.catalog import JobCatalog
from cyberdesk_runner.clock import ManualClock
from cyberdesk_runner.runtime import Runtime
from cyberdesk_runner.server import build_app
from cyberdesk_runner.store import Store
from cyberdesk_runner.tracking.webhooks import WebhookReceiver

START = datetime(2026, 11, 30, 14, 0, tzinfo=UTC)
WEBHOOK_SECRET = "whsec_" + "c2VjcmV0LXNlY3JldC1zZWNyZXQtMTIzNDU2"


async def _no_sleep(_seconds: float) -> None:
    return None


class Harness:
    def __init__(
        self,
        tmp_path: Path,
        jobs: Mapping[str, str],
        *,
        webhooks: bool = True,
        fixture: Mapping[str, Any] | str | None = None,
        store_url: str | None = None,
        **emulator_options: Any,
    ) -> None:
        self.tmp_path = tmp_path
        self.jobs_dir = tmp_path / "jobs"
        self.jobs_dir.mkdir(exist_ok=True)
        for name, text in jobs.items():
            (self.jobs_dir / f"{name}.yaml").write_text(textwrap.dedent(text))
        self.clock = ManualClock(START)
        self.emulator_clock = EmulatorClock(START.timestamp())
        options = {"speed": 1.0, "run_duration": "60-60", "seed": 1, **emulator_options}
        self.emulator = Emulator(EmulatorOptions.build(clock=self.emulator_clock, fixture=fixture, **options))
        self.client = CyberdeskClient(
            self.emulator.api_key,
            base_url="http://emulator.test",
            async_transport=httpx.ASGITransport(app=create_app(self.emulator)),
            retry=RetryConfig(async_sleep=_no_sleep, sleep=lambda _s: None),
        )
        self.store = Store(store_url or f"sqlite:///{tmp_path / 'store.sqlite'}")
        self.runtime = self.new_runtime()
        self.webhooks = webhooks
        self._sink_tasks: list[asyncio.Task[None]] = []

    def new_runtime(self, owner: str = "daemon_test", **options: Any) -> Runtime:
        return Runtime(
            store=self.store,
            client=self.client,
            catalog=JobCatalog(self.jobs_dir),
            clock=self.clock,
            owner=owner,
            rng=__import__("random").Random(3),
            **options,
        )

    async def restarted(self, owner: str = "daemon_restarted", **options: Any) -> Runtime:
        """A second daemon on the same store and API (the first one is left as it is), started."""
        runtime = self.new_runtime(owner, **options)
        await runtime.start()
        self._sink_tasks.append(asyncio.create_task(runtime.sink.run()))
        return runtime

    async def __aenter__(self) -> Harness:
        await self.runtime.start()
        self._sink_tasks.append(asyncio.create_task(self.runtime.sink.run()))
        if self.webhooks:
            receiver = WebhookReceiver(
                secret=WEBHOOK_SECRET, sink=self.runtime.sink, metrics=self.runtime.metrics
            )
            self.app = build_app(
                metrics=self.runtime.metrics,
                health=lambda: (True, {}),
                webhook=receiver,
                webhook_path="/hooks",
            )
            self.emulator.webhooks.transport = httpx.ASGITransport(app=self.app)
            self.emulator.add_webhook_endpoint("http://runner.test/hooks", WEBHOOK_SECRET)
        return self

    async def __aexit__(self, *exc: object) -> None:
        for task in self._sink_tasks:
            task.cancel()
        await asyncio.gather(*self._sink_tasks, return_exceptions=True)
        await self.client.aclose()
        self.store.close()

    # -- driving -------------------------------------------------------------------------------------

    async def advance(self, seconds: float) -> None:
        """Move both clocks; the emulator applies what became due and delivers its webhooks."""
        self.clock.advance(seconds)
        self.emulator.advance(seconds)
        if self.webhooks:
            await self.emulator.deliver_webhooks()

    async def cycle(self, *, poll: bool = True) -> None:
        """One round of the daemon's loops: dispatch, poll (unless told not to), reap."""
        await self.runtime.dispatch_round()
        if poll:
            await self.runtime.poll_round()
        await self.runtime.reap_round()

    async def trigger(self, job: str) -> str:
        [fire_id] = await self.runtime.trigger([job])
        return fire_id

    async def run_until_idle(self, step: float = 10.0, max_steps: int = 500, *, poll: bool = True) -> None:
        for _ in range(max_steps):
            await self.cycle(poll=poll)
            if self.store.counts.work().idle and not await self.runtime.downstream.waiting():
                return
            await self.advance(step)
        raise AssertionError(f"still busy after {max_steps} steps: {self.store.counts.work()}")

    # -- looking -------------------------------------------------------------------------------------

    def emulator_runs(self) -> list[Any]:
        return sorted(self.emulator.world.runs.values(), key=lambda r: r.created_at)

    def stats(self) -> dict[str, Any]:
        return self.emulator.stats_snapshot()

    def rows(self, table: str) -> list[dict[str, Any]]:
        import sqlalchemy as sa
        from sqlmodel import SQLModel

        with self.store.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(sa.select(SQLModel.metadata.tables[table]))]


class Crash(Exception):
    """The daemon dies (between two chunks of a plan, a cancel, ...)."""


def crash_after(aggregate: Any, method: str, calls: int) -> None:
    """`aggregate.method` (a store aggregate's) works `calls` times, then raises Crash, as a daemon dying there."""
    original = getattr(aggregate, method)

    def crashing(*args: Any, **kwargs: Any) -> Any:
        nonlocal calls
        if calls == 0:
            raise Crash
        calls -= 1
        return original(*args, **kwargs)

    setattr(aggregate, method, crashing)
