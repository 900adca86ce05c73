"""The daemon: wires config, store, SDK client (or the embedded emulator) and the loops that move work along.

Loops (each one small, each restartable, each survives API and store outages by logging and trying again):
- jobs:      reload job files every 2s, record them, resolve workflows;
- fleet:     list desktops and workflows every poll interval;
- schedule:  turn due schedule slots into fires;
- dispatch:  plan requested fires, create runs for due items, settle creates with unknown outcome;
- sink:      commit news about runs (webhooks, polls) in batches;
- poll:      reconcile in-flight runs (lease-protected, so one daemon polls for all);
- reap:      cancel runs past their timeout or cancelled by a user;
- heartbeat: record this daemon's health for `status`.
"""

from __future__ import annotations

import asyncio
import base64
import os
import random
import signal
import socket
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

import attrs

from cyberdesk import CyberdeskClient, RetryConfig
from cyberdesk_runner.catalog import JobCatalog
from cyberdesk_runner.clock import Clock, SystemClock
from cyberdesk_runner.config import Config
from cyberdesk_runner.dispatch import Dispatcher
from cyberdesk_runner.fleet import Desktop, Fleet
from cyberdesk_runner.logs import get_logger, register_secret
from cyberdesk_runner.metrics import Metrics
from cyberdesk_runner.outcome import make_outcome_policy
from cyberdesk_runner.planning import PlanningError, build_items
from cyberdesk_runner.scheduling import Scheduler
from cyberdesk_runner.server import bind, build_app, make_server
from cyberdesk_runner.store import Store, new_id
from cyberdesk_runner.store.records import (
    FinishedAttempt,
    ItemOutcome,
    JobSummary,
    NewFire,
    Transition,
)
from cyberdesk_runner.tracking.poller import Poller
from cyberdesk_runner.tracking.reaper import Reaper
from cyberdesk_runner.tracking.sink import ObservationSink
from cyberdesk_runner.tracking.webhooks import WebhookReceiver

log = get_logger("cyberdesk_runner.daemon")

_JOB_RELOAD_EVERY = 2.0
_HEARTBEAT_EVERY = 5.0
_IDLE_CHECK_EVERY = 0.25
#: Seconds between dispatch rounds when nothing wakes the dispatcher earlier.
_DISPATCH_EVERY = 1.0


@attrs.define
class RunOptions:
    until_idle: bool = False
    #: Jobs to trigger once at start (`--once`); an empty list means every job.
    once: list[str] | None = None


@attrs.frozen
class RunResult:
    summaries: list[JobSummary]

    @property
    def failed(self) -> bool:
        return any(s.items_failed for s in self.summaries)


class Daemon:
    def __init__(self, config: Config, *, clock: Clock | None = None, client: CyberdeskClient | None = None,
                 rng: random.Random | None = None) -> None:
        self.config = config
        self.clock = clock or SystemClock()
        self.rng = rng or random.Random()
        self.id = new_id("daemon")
        self.metrics = Metrics()
        self.store = Store(config.store)
        self.catalog = JobCatalog(config.jobs)
        self.fleet = Fleet()
        self._client = client
        self._emulator: Any = None
        self._emulator_state: Any = None
        self._event_loop: asyncio.AbstractEventLoop | None = None
        self._stop = asyncio.Event()
        self._wake_dispatch = asyncio.Event()
        self._loops_alive: dict[str, datetime] = {}
        self._last_errors: list[dict[str, str]] = []
        self.webhook_url: str | None = None
        self.api_ok: bool | None = None
        self.started_at = self.clock.now()

    # -- setup -----------------------------------------------------------------------------------------

    @property
    def client(self) -> CyberdeskClient:
        assert self._client is not None, "the daemon is not started"
        return self._client

    def _start_client(self) -> None:
        if self._client is not None:
            return
        settings = self.config.cyberdesk
        retry = RetryConfig(max_retries=3, max_delay_seconds=8.0)
        if settings.api_key is None:
            from cyberdesk.emulator import Emulator, EmulatorOptions, EmulatorServer

            emu = self.config.emulator
            emulator = Emulator(
                EmulatorOptions.build(
                    speed=emu.speed, run_duration=emu.run_duration, failure_rate=emu.failure_rate,
                    fixture=str(emu.fixture) if emu.fixture else None, seed=emu.seed,
                )
            )
            self._emulator_state = emulator
            self._emulator = EmulatorServer(emulator, host="127.0.0.1", port=0)
            self._emulator.start()
            log.info("embedded_emulator_started", base_url=self._emulator.base_url,
                     reason="no cyberdesk.api_key in the config: running against the embedded emulator "
                            "with its demo fleet")
            self._client = CyberdeskClient(emulator.api_key, base_url=self._emulator.base_url, retry=retry)
        else:
            api_key = settings.api_key.get_secret_value()
            register_secret(api_key)
            self._client = CyberdeskClient(api_key, base_url=str(settings.base_url), retry=retry)

    def _policy(self, now: datetime) -> Callable[[FinishedAttempt], ItemOutcome]:
        return make_outcome_policy(self.catalog.retry_policy, now, self.rng)

    def _on_transitions(self, transitions: Sequence[Transition]) -> None:
        for t in transitions:
            fields = {k: v for k, v in (("job", t.job_name), ("fire", t.fire_id), ("item", t.item_id),
                                       ("attempt", t.attempt_id), ("run", t.run_id)) if v}
            log.info(t.kind, **fields, **dict(t.data))
            if t.kind.startswith("attempt_") and t.kind != "attempt_created":
                self.metrics.runs_finished.labels(t.job_name, t.kind.removeprefix("attempt_")).inc()
            elif t.kind == "item_retry_scheduled":
                self.metrics.retries.labels(t.job_name).inc()
            if t.kind in ("item_retry_scheduled", "fire_started", "fire_requested") or t.kind.startswith("attempt_"):
                self._wake()

    def _wake(self) -> None:
        """Wake the dispatcher; safe from the store's worker threads (the scheduler runs in one)."""
        loop = self._event_loop
        if loop is None:
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            self._wake_dispatch.set()
        else:
            loop.call_soon_threadsafe(self._wake_dispatch.set)

    # -- main ------------------------------------------------------------------------------------------

    async def run(self, options: RunOptions | None = None) -> RunResult:
        options = options or RunOptions()
        loop = asyncio.get_running_loop()
        self._event_loop = loop
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                loop.add_signal_handler(sig, self.request_stop)
            except (NotImplementedError, RuntimeError):  # not the main thread (tests)
                pass
        self._start_client()
        sink = ObservationSink(store=self.store, clock=self.clock, outcome=self._policy,
                               on_transitions=self._on_transitions)
        await asyncio.to_thread(self.store.create_schema)
        await asyncio.to_thread(self.store.register_daemon, self.id, socket.gethostname(), os.getpid(), self.clock.now())
        server_tasks = await self._start_http(sink)
        await self._reload_jobs()
        await self._refresh_fleet()
        if options.once is not None:
            await self._trigger_once(options.once)
        dispatcher = Dispatcher(
            store=self.store, client=self.client, catalog=self.catalog, fleet=lambda: self.fleet, clock=self.clock,
            metrics=self.metrics, outcome=self._policy, on_transitions=self._on_transitions,
            max_in_flight_requests=self.config.dispatch.max_in_flight_requests, lease=self.config.dispatch.lease,
            rng=self.rng,
        )
        poller = Poller(store=self.store, client=self.client, sink=sink, clock=self.clock, metrics=self.metrics)
        reaper = Reaper(store=self.store, client=self.client, sink=sink, clock=self.clock, outcome=self._policy,
                        on_transitions=self._on_transitions)
        scheduler = Scheduler(store=self.store, catalog=self.catalog, fleet=lambda: self.fleet, clock=self.clock,
                              on_transitions=self._on_transitions, rng=self.rng)
        self._poller = poller
        poll_every = self.config.tracking.poll_interval.total_seconds()
        tasks = [
            asyncio.create_task(sink.run(), name="sink"),
            self._loop("jobs", self._reload_jobs, _JOB_RELOAD_EVERY),
            self._loop("fleet", self._refresh_fleet, poll_every),
            self._loop("dispatch", lambda: self._dispatch_round(dispatcher), _DISPATCH_EVERY, wake=self._wake_dispatch),
            self._schedule_loop(scheduler),
            self._loop("poll", lambda: self._poll_round(poller), poll_every),
            self._loop("reap", reaper.reap_once, min(poll_every, 2.0)),
            self._loop("heartbeat", self._heartbeat, _HEARTBEAT_EVERY),
        ]
        if options.until_idle or options.once is not None:
            tasks.append(asyncio.create_task(self._stop_when_idle(), name="idle"))
        try:
            await self._stop.wait()
        finally:
            log.info("daemon_stopping", daemon=self.id)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await self._shutdown(server_tasks)
        summaries = await asyncio.to_thread(self.store.summary_since, self.started_at)
        return RunResult(summaries)

    def request_stop(self) -> None:
        self._stop.set()

    async def _shutdown(self, server_tasks: list[Any]) -> None:
        for server, task in server_tasks:
            server.should_exit = True
            try:
                await asyncio.wait_for(task, timeout=3)
            except (TimeoutError, asyncio.CancelledError):
                task.cancel()
        try:
            await asyncio.to_thread(self.store.heartbeat, self.id, self._health()[1], self.clock.now(), stopped=True)
        except Exception as exc:
            log.warning("store_unreachable_at_exit", error=str(exc))
        if self._client is not None:
            await self._client.aclose()
        if self._emulator is not None:
            self._emulator.stop()

    # -- loops -----------------------------------------------------------------------------------------

    def _loop(self, name: str, step: Callable[[], Awaitable[Any]], every: float,
              wake: asyncio.Event | None = None) -> asyncio.Task[None]:
        async def forever() -> None:
            backoff = 1.0
            while not self._stop.is_set():
                try:
                    await step()
                    self._loops_alive[name] = self.clock.now()
                    backoff = 1.0
                    delay = every
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # one bad round must not kill the loop
                    self._note_error(name, exc)
                    delay, backoff = backoff, min(backoff * 2, 30.0)
                if wake is None:
                    await asyncio.sleep(delay)
                else:
                    try:
                        await asyncio.wait_for(wake.wait(), timeout=delay)
                    except TimeoutError:
                        pass
                    wake.clear()

        return asyncio.create_task(forever(), name=name)

    def _schedule_loop(self, scheduler: Scheduler) -> asyncio.Task[None]:
        async def forever() -> None:
            while not self._stop.is_set():
                delay = 1.0
                try:
                    next_at = await asyncio.to_thread(scheduler.tick)
                    self._loops_alive["schedule"] = self.clock.now()
                    if next_at is not None:
                        delay = min(max((next_at - self.clock.now()).total_seconds(), 0.0), 1.0)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    self._note_error("schedule", exc)
                await asyncio.sleep(delay)

        return asyncio.create_task(forever(), name="schedule")

    def _note_error(self, where: str, exc: BaseException) -> None:
        message = f"{type(exc).__name__}: {exc}"
        log.error("loop_error", loop=where, error=message)
        self._last_errors = [*self._last_errors[-9:], {"loop": where, "error": message,
                                                       "at": self.clock.now().isoformat()}]

    async def _reload_jobs(self) -> None:
        change = self.catalog.reload()
        for error in change.errors:
            log.error("job_file_error", error=str(error))
        if change or not self._loops_alive.get("jobs"):
            await asyncio.to_thread(self.store.sync_jobs, self.catalog.definitions(), self.clock.now())
            await self._resolve_workflows()
            await self._cancel_pending_of_removed(change.removed)

    async def _cancel_pending_of_removed(self, removed: Sequence[str]) -> None:
        for name in removed:
            transitions = await asyncio.to_thread(
                self.store.cancel_pending_items, name, "the job was removed", self.clock.now(), only_pending=True
            )
            self._on_transitions(transitions)

    async def _resolve_workflows(self) -> None:
        workflows: dict[str, Any] = {}
        async for wf in self.client.workflows.iter():
            workflows[str(wf.id)] = wf.name if isinstance(wf.name, str) else None
        for name in self.catalog.resolve_workflows(workflows):
            job = self.catalog.jobs[name]
            if job.workflow_error:
                log.error("workflow_unresolved", job=name, error=job.workflow_error)
            elif job.workflow_id:
                await asyncio.to_thread(self.store.set_job_workflow, name, job.workflow_id)
        self.api_ok = True

    async def _refresh_fleet(self) -> None:
        pools_of = await self._pool_membership()
        desktops: list[Desktop] = []
        async for machine in self.client.machines.iter():
            machine_id = str(machine.id)
            pools = pools_of.get(machine_id, [])
            params = machine.machine_parameters if isinstance(machine.machine_parameters, dict) else {}
            desktops.append(
                Desktop(
                    id=machine_id,
                    name=machine.name if isinstance(machine.name, str) else None,
                    params=params,
                    pool_ids=frozenset(pool_id for pool_id, _ in pools),
                    pool_names=frozenset(name for _, name in pools),
                    connected=str(machine.status) == "connected",
                )
            )
        self.fleet = Fleet(desktops)
        await self._resolve_workflows()
        self._wake()

    async def _pool_membership(self) -> dict[str, list[tuple[str, str]]]:
        """machine id -> [(pool id, pool name)], from each pool's machines (few pools, many desktops)."""
        if not any(job.loaded.spec.target.pool for job in self.catalog.jobs.values()):
            return {}
        members: dict[str, list[tuple[str, str]]] = {}
        async for pool in self.client.pools.iter():
            detail = (await self.client.pools.get(pool.id, include=["machines"])).unwrap()
            machine_ids = {str(m.id) for m in detail.machines or []}
            machine_ids |= {str(r.id) for r in detail.included or [] if r.type == "machine"}
            for machine_id in machine_ids:
                members.setdefault(machine_id, []).append((str(pool.id), pool.name))
        return members

    async def _dispatch_round(self, dispatcher: Dispatcher) -> None:
        await self._plan_requested_fires()
        while not self._stop.is_set() and await dispatcher.dispatch_once():
            pass  # keep going while whole batches are dispatched
        await dispatcher.settle_once()
        counts = await asyncio.to_thread(self.store.work_counts)
        self.metrics.items_pending.set(counts.pending_items)
        self.metrics.items_in_flight.set(counts.in_flight_attempts)

    async def _plan_requested_fires(self) -> None:
        for request in await asyncio.to_thread(self.store.requested_fires):
            now = self.clock.now()
            job = self.catalog.get(request.job_name)
            if job is None:
                await asyncio.to_thread(self.store.fail_fire, request.id, f"no job named {request.job_name!r}", now)
                continue
            try:
                items = build_items(job, self.fleet, request.input_overrides)
            except PlanningError as exc:
                await asyncio.to_thread(self.store.fail_fire, request.id, str(exc), now)
                log.error("fire_failed", job=job.name, fire=request.id, error=str(exc))
                continue
            await asyncio.to_thread(self.store.plan_fire, request.id, items, now, priority=job.loaded.spec.priority)
            log.info("fire_planned", job=job.name, fire=request.id, items=len(items), trigger=request.trigger)

    async def _poll_round(self, poller: Poller) -> None:
        lease = timedelta(seconds=max(self.config.tracking.poll_interval.total_seconds() * 3, 30))
        holds = await asyncio.to_thread(self.store.try_lease, "poller", self.id, self.clock.now(), lease)
        if holds:
            await poller.poll_once()

    async def _heartbeat(self) -> None:
        await asyncio.to_thread(self.store.heartbeat, self.id, self._health()[1], self.clock.now())

    async def _trigger_once(self, names: Sequence[str]) -> None:
        chosen = list(names) or sorted(self.catalog.jobs)
        for name in chosen:
            if name not in self.catalog.jobs:
                raise SystemExit(f"--once: no job named {name!r} (known: {', '.join(sorted(self.catalog.jobs))})")
        for name in chosen:
            fire_id = await asyncio.to_thread(
                self.store.request_fire, NewFire(name, "manual", None), self.clock.now()
            )
            log.info("fire_requested", job=name, fire=fire_id, trigger="manual")
        self._wake_dispatch.set()

    async def _stop_when_idle(self) -> None:
        # Give requested fires a first dispatch round before judging idleness.
        await asyncio.sleep(_IDLE_CHECK_EVERY)
        while not self._stop.is_set():
            counts = await asyncio.to_thread(self.store.work_counts)
            if counts.idle:
                log.info("idle", reason="nothing pending or in flight")
                self.request_stop()
                return
            await asyncio.sleep(_IDLE_CHECK_EVERY)

    # -- HTTP and health -------------------------------------------------------------------------------

    async def _start_http(self, sink: ObservationSink) -> list[Any]:
        webhook_settings = self.config.tracking.webhook
        webhook: WebhookReceiver | None = None
        path = webhook_settings.path if webhook_settings else "/webhooks/cyberdesk"
        listen = self.config.server.listen
        if webhook_settings is not None:
            secret = webhook_settings.secret.get_secret_value()
            register_secret(secret)
            webhook = WebhookReceiver(secret=secret, sink=sink, metrics=self.metrics)
            listen = webhook_settings.listen
        elif self._emulator is not None:
            # Embedded emulator: wire its webhooks to us with a secret made for this run.
            secret = "whsec_" + base64.b64encode(os.urandom(24)).decode()
            register_secret(secret)
            webhook = WebhookReceiver(secret=secret, sink=sink, metrics=self.metrics)
        if listen is None and webhook is None:
            return []
        host, port = (listen.host, listen.port) if listen is not None else ("127.0.0.1", 0)
        app = build_app(metrics=self.metrics, health=self._health, webhook=webhook, webhook_path=path)
        try:
            sock = bind(host, port)
        except OSError as exc:
            if webhook_settings is not None:
                raise
            # Health and metrics are not worth failing the daemon for (e.g. a second daemon on one host).
            log.warning("http_port_in_use", listen=f"{host}:{port}", error=str(exc), fallback="a free port")
            sock = bind(host, 0)
        bound_host, bound_port = sock.getsockname()[:2]
        server = make_server(app)
        task = asyncio.create_task(server.serve(sockets=[sock]), name="http")
        base = f"http://{bound_host}:{bound_port}"
        log.info("http_listening", url=base, webhook=path if webhook else None)
        if webhook is not None and self._emulator is not None and webhook_settings is None:
            self.webhook_url = base + path
            self._emulator_state.add_webhook_endpoint(self.webhook_url, secret)
        return [(server, task)]

    def _health(self) -> tuple[bool, dict[str, Any]]:
        now = self.clock.now()
        stale = [name for name, at in self._loops_alive.items() if (now - at).total_seconds() > 120]
        last_poll = getattr(self, "_poller", None)
        details = {
            "daemon": self.id,
            "loops": {name: at.isoformat() for name, at in self._loops_alive.items()},
            "stale_loops": stale,
            "api_ok": self.api_ok,
            "webhook_url": self.webhook_url,
            "last_poll_at": last_poll.last_poll_at.isoformat() if last_poll and last_poll.last_poll_at else None,
            "last_errors": self._last_errors,
            "job_file_errors": [str(e) for e in self.catalog.errors],
        }
        return (not stale and not self._stop.is_set()), details


def run_daemon(config: Config, options: RunOptions) -> RunResult:
    async def main() -> RunResult:
        return await Daemon(config).run(options)

    return asyncio.run(main())
