"""The daemon: start and stop, the Runtime's steps in loops, signals, the embedded emulator and sd_notify.

The loop machinery and health are in daemon_loops.py, the HTTP server (webhooks, health, metrics, status page)
in daemon_http.py.

Loops (each survives API and store outages: a failed round is logged and tried again with backoff):
- jobs:      reload job files every 2s, record them, resolve workflows;
- fleet:     list desktops and workflows every poll interval;
- schedule:  turn due schedule slots into fires;
- dispatch:  plan requested fires, create runs for due items, settle creates with unknown outcome;
- sink:      commit news about runs (webhooks, polls) in batches;
- poll:      reconcile in-flight runs (lease-protected, so one daemon polls for all);
- reap:      cancel runs past their timeout or cancelled by a user (lease-protected);
- heartbeat: record this daemon's health for `status`;
- watchdog:  under systemd (`Type=notify`), pet its watchdog while the other loops are healthy.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import functools
import os
import random
import signal
import socket
from datetime import timedelta
from typing import Any

import attrs

from cyberdesk import CyberdeskClient, RetryConfig
from cyberdesk_runner.api_access import ApiKeyRefused
from cyberdesk_runner.catalog import JobCatalog
from cyberdesk_runner.clock import Clock, SystemClock
from cyberdesk_runner.config import Config
from cyberdesk_runner.daemon_http import DaemonHttp, start_http
from cyberdesk_runner.daemon_loops import DaemonLoops
from cyberdesk_runner.logs import get_logger, register_secret
from cyberdesk_runner.outbox import Outbox
from cyberdesk_runner.runtime import Runtime
from cyberdesk_runner.store import Store, new_id
from cyberdesk_runner.store.engine import describe_error, is_database_error, is_transient
from cyberdesk_runner.store.notify import listen_for_work
from cyberdesk_runner.store.records import JobSummary
from cyberdesk_runner.systemd import SystemdNotifier

log = get_logger("cyberdesk_runner.daemon")

_JOB_RELOAD_EVERY = 2.0
_HEARTBEAT_EVERY = 5.0
_STORE_THREADS = 4
#: Longest wait between two tries to reach the store at start.
_STORE_WAIT_MAX = 30.0
#: Seconds a stopping daemon waits for create calls already made, before abandoning them to be settled later.
_CREATES_GRACE = 2.0
#: Seconds a stopping daemon waits for a plan (retry, cancel) under way to end its chunk and give back its claim.
_BULK_GRACE = 10.0
_IDLE_CHECK_EVERY = 0.25
#: Seconds between dispatch rounds when nothing wakes the dispatcher earlier.
_DISPATCH_EVERY = 1.0
#: Result files and alerts: how often the outbox is looked at.
_OUTBOX_EVERY = 1.0
_RETENTION_EVERY = 3600.0


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
        return any(s.items_failed or s.fires_failed for s in self.summaries)


class UnknownJobs(Exception):
    pass


class UnprotectedServer(Exception):
    """The HTTP server would listen beyond this host without `server.auth`: the daemon refuses to start."""


class EmulatorFixtureUnusable(Exception):
    """The embedded emulator's fleet fixture is missing, unreadable or malformed (the emulator's FixtureError, in
    a type the CLI can catch without importing the emulator: a daemon with an API key never loads it)."""


class StoreUnusable(Exception):
    """The store refuses the daemon for good (a bad URL or credentials, no such database), or could not be read
    at exit; an unreachable store at start is waited for instead."""


class Daemon:
    def __init__(
        self,
        config: Config,
        *,
        clock: Clock | None = None,
        client: CyberdeskClient | None = None,
        rng: random.Random | None = None,
        notifier: SystemdNotifier | None = None,
    ) -> None:
        self.config = config
        self.notifier = notifier or SystemdNotifier()
        self.clock = clock or SystemClock()
        self.rng = rng or random.Random()
        self.id = new_id("daemon")
        self._client = client
        self._emulator_server: Any = None
        self._emulator: Any = None
        self._stop = asyncio.Event()
        self._wake_dispatch = asyncio.Event()
        self._event_loop: asyncio.AbstractEventLoop | None = None
        self._loops = DaemonLoops(self.clock, self._stop)
        self._http: DaemonHttp | None = None
        self.webhook_url: str | None = None
        #: Where the HTTP server (page, /healthz, /metrics) listens, once it does.
        self.http_url: str | None = None
        self.started_at = self.clock.now()
        self.runtime: Runtime | None = None

    # -- setup -----------------------------------------------------------------------------------------

    def _make_client(self) -> CyberdeskClient:
        if self._client is not None:
            return self._client
        settings = self.config.cyberdesk
        retry = RetryConfig(max_retries=3, max_delay_seconds=8.0)
        if settings.api_key is not None:
            api_key = settings.api_key.get_secret_value()
            register_secret(api_key)
            return CyberdeskClient(api_key, base_url=str(settings.base_url), retry=retry)
        from cyberdesk.emulator import EmulatorServer, FixtureError

        emu = self.config.emulator
        try:
            self._emulator = emu.build()
        except FixtureError as exc:
            raise EmulatorFixtureUnusable(str(exc)) from exc
        self._emulator_server = EmulatorServer(self._emulator, host="127.0.0.1", port=0).start()
        log.info(
            "embedded_emulator_started",
            base_url=self._emulator_server.base_url,
            reason="no cyberdesk.api_key in the config: running against the embedded emulator and its demo fleet",
            speed=emu.speed,
        )
        return CyberdeskClient(self._emulator.api_key, base_url=self._emulator_server.base_url, retry=retry)

    def _wake(self) -> None:
        """Wake the dispatcher; safe from worker threads (the scheduler and the store run in them)."""
        loop = self._event_loop
        if loop is None:
            return
        try:
            running: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            self._wake_dispatch.set()
        else:
            loop.call_soon_threadsafe(self._wake_dispatch.set)

    # -- main ------------------------------------------------------------------------------------------

    async def run(self, options: RunOptions | None = None) -> RunResult:
        options = options or RunOptions()
        exposure = self.config.unprotected_exposure()
        if exposure is not None:
            raise UnprotectedServer(exposure)
        self._event_loop = asyncio.get_running_loop()
        # Store calls run in worker threads; a few are enough (SQLite has one writer, PostgreSQL work is short),
        # and each extra thread can grow its own malloc arena: memory, not speed.
        self._event_loop.set_default_executor(
            concurrent.futures.ThreadPoolExecutor(max_workers=_STORE_THREADS, thread_name_prefix="store")
        )
        for sig in (signal.SIGINT, signal.SIGTERM):
            # Not possible outside the main thread (tests run daemons in threads).
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                self._event_loop.add_signal_handler(sig, self.request_stop)
        # The first log line says which API this daemon talks to.
        client = self._make_client()
        if self.config.cyberdesk.api_key is not None:
            log.info(
                "daemon_starting", api=str(self.config.cyberdesk.base_url), store=self.config.store_display
            )
        store = Store(self.config.store, owner=self.id)
        runtime = Runtime(
            store=store,
            client=client,
            catalog=JobCatalog(self.config.jobs),
            clock=self.clock,
            owner=self.id,
            rng=self.rng,
            max_in_flight_requests=self.config.dispatch.max_in_flight_requests,
            lease=self.config.dispatch.lease,
            poll_interval=self.config.tracking.poll_interval,
            news_window=self.config.tracking.news_window,
            on_wake=self._wake,
        )
        self.runtime = self._loops.runtime = runtime
        outbox = Outbox(runtime, self.config, self.id)
        tasks: list[asyncio.Task[Any]] = []
        started = False
        try:
            started = await self._start_runtime(runtime)
            if started and runtime.api_key_refused and (options.once is not None or options.until_idle):
                # A one-shot run would wait for nothing: a refused key is an answer, not an outage.
                raise ApiKeyRefused(runtime.client.base_url, runtime.api_refusal)
            if started:  # else asked to stop while the store was still out of reach
                outbox.refresh_rules()  # the jobs are loaded: what they cause is recorded from now on
                await asyncio.to_thread(
                    store.daemons.register, self.id, socket.gethostname(), os.getpid(), self.clock.now()
                )
                self._http = await start_http(self.config, runtime, self._health, self._emulator)
                if self._http is not None:
                    self.http_url, self.webhook_url = self._http.url, self._http.webhook_url
                if options.once is not None:
                    await self._trigger_once(runtime, options.once)
                tasks = self._start_loops(runtime, options)
                tasks.append(self._loops.loop("outbox", outbox.round, _OUTBOX_EVERY))
                self.notifier.ready(self._status_line(runtime))
                await self._stop.wait()
        finally:
            log.info("daemon_stopping", daemon=self.id)
            self.notifier.stopping()
            runtime.stopping.set()  # a plan, retry or cancel under way ends after its chunk, its claim given back
            loops = [t for t in tasks if t.get_name() != "sink"]
            for task in loops:
                task.cancel()
            await asyncio.gather(*loops, return_exceptions=True)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(runtime.bulk_work_done(), timeout=_BULK_GRACE)
            # Create calls already made get a moment to be answered and recorded (the sink still runs).
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(runtime.dispatcher.drain(), timeout=_CREATES_GRACE)
            await runtime.dispatcher.aclose()
            # Webhooks being received are answered and their news committed before the sink stops: a sender
            # cut off mid-request would only send again, but the stop should be clean.
            if self._http is not None:
                await self._http.stop()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(runtime.sink.drain(), timeout=_CREATES_GRACE)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            if started:  # what the last changes caused: result files, alerts (`run --once` ends right after)
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(outbox.round(), timeout=_CREATES_GRACE)
            await outbox.aclose()
            await self._shutdown(runtime, started)
        if not started:
            store.close()
            return RunResult([])
        return RunResult(await self._summaries(store))

    async def _trigger_once(self, runtime: Runtime, jobs: list[str]) -> None:
        """`--once`: fire the named jobs (all when none are named)."""
        names = jobs or sorted(runtime.catalog.jobs)
        if not jobs:
            # A job after another fired here runs when that fire ends, not by hand as well.
            firing = set(names)
            names = [
                n
                for n in names
                if (after := runtime.catalog.jobs[n].loaded.spec.after) is None or after.job not in firing
            ]
        unknown = [n for n in names if n not in runtime.catalog.jobs]
        if unknown:
            raise UnknownJobs(
                f"--once: no job named {', '.join(map(repr, unknown))} "
                f"(known: {', '.join(sorted(runtime.catalog.jobs)) or 'none'})"
            )
        await runtime.trigger(names)

    async def _summaries(self, store: Store) -> list[JobSummary]:
        """What this daemon's run did, per job; then the store is closed."""
        try:
            return await asyncio.to_thread(store.counts.summary_since, self.started_at)
        except Exception as exc:
            if not is_database_error(exc):
                raise
            raise StoreUnusable(
                f"stopped, but the summary cannot be read from the store: {describe_error(exc)}"
            ) from None
        finally:
            store.close()

    async def _start_runtime(self, runtime: Runtime) -> bool:
        """Start the runtime once the store answers; False if asked to stop first. A store out of reach (down,
        restarting, failing over) is waited for, with backoff; one that refuses us for good is StoreUnusable."""
        delay = 1.0
        while not self._stop.is_set():
            try:
                await runtime.start()
                return True
            except Exception as exc:
                if not is_database_error(exc):
                    raise
                if not is_transient(exc):
                    raise StoreUnusable(
                        f"cannot use the store {self.config.store_display}: {describe_error(exc)}"
                    ) from None
                self.notifier.status(f"waiting for the store: {describe_error(exc)}")
                log.warning(
                    "store_unreachable_at_start",
                    store=self.config.store_display,
                    error=describe_error(exc),
                    retry_in=delay,
                    effect="waiting for the store; nothing is dispatched meanwhile",
                )
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), timeout=delay)
                delay = min(delay * 2, _STORE_WAIT_MAX)
        return False

    def _start_loops(self, runtime: Runtime, options: RunOptions) -> list[asyncio.Task[Any]]:
        poll_every = self.config.tracking.poll_interval.total_seconds()
        tasks = [
            asyncio.create_task(runtime.sink.run(), name="sink"),
            self._loops.loop("jobs", runtime.reload_jobs, _JOB_RELOAD_EVERY),
            self._loops.loop("fleet", runtime.refresh_fleet, poll_every),
            self._loops.loop(
                "dispatch",
                functools.partial(runtime.dispatch_round, wait=False),
                _DISPATCH_EVERY,
                wake=self._wake_dispatch,
            ),
            self._loops.schedule_loop(runtime),
            self._loops.loop("poll", runtime.poll_round, poll_every),
            self._loops.loop("reap", runtime.reap_round, min(poll_every, 2.0)),
            self._loops.loop(
                "heartbeat",
                self._heartbeat,
                min(_HEARTBEAT_EVERY, self.config.dispatch.lease.total_seconds() / 3),
            ),
            self._loops.loop("retention", self._retention, _RETENTION_EVERY),
            # Wake promptly when another daemon (or the CLI) makes work due; returns at once on SQLite.
            asyncio.create_task(listen_for_work(self.config.store, self._wake, self._stop), name="listen"),
        ]
        if options.until_idle or options.once is not None:
            tasks.append(asyncio.create_task(self._stop_when_idle(runtime), name="idle"))
        watchdog = self.notifier.watchdog_interval
        if self.notifier.enabled and watchdog is not None:
            tasks.append(self._loops.loop("watchdog", self._pet_watchdog, watchdog.total_seconds()))
        return tasks

    async def _pet_watchdog(self) -> None:
        """Pet systemd's watchdog only while every loop is completing rounds: a stuck daemon gets restarted."""
        alive, _ = self._health()
        if alive:
            self.notifier.watchdog()

    def _status_line(self, runtime: Runtime) -> str:
        where = f", page and health on {self.http_url}" if self.http_url else ""
        return f"running: {len(runtime.catalog.jobs)} jobs{where}"

    def request_stop(self) -> None:
        self._stop.set()

    async def _shutdown(self, runtime: Runtime, started: bool) -> None:
        """Hand back what this daemon holds, so other daemons (or the next start) take over at once; close."""
        try:
            if started:
                await runtime.refresh_gauges()
                await asyncio.to_thread(runtime.store.dispatch.release_creating, self.clock.now())
                await asyncio.to_thread(runtime.store.daemons.release_leases, self.id)
                await asyncio.to_thread(
                    runtime.store.daemons.heartbeat,
                    self.id,
                    self._health()[1],
                    self.clock.now(),
                    stopped=True,
                )
        except Exception as exc:
            log.warning("store_unreachable_at_exit", error=describe_error(exc))
        await runtime.client.aclose()
        if self._emulator_server is not None:
            self._emulator_server.stop()

    # -- loops -----------------------------------------------------------------------------------------

    async def _heartbeat(self) -> None:
        assert self.runtime is not None
        store = self.runtime.store
        await asyncio.to_thread(store.daemons.heartbeat, self.id, self._health()[1], self.clock.now())
        await self.runtime.refresh_gauges()
        # Keep this daemon's claims on slow create calls, so no other daemon repeats them meanwhile.
        await self.runtime.dispatcher.renew_claims()

    async def _retention(self) -> None:
        """Delete finished history older than `dispatch.retention`, one daemon at a time, in batches."""
        assert self.runtime is not None
        store, now = self.runtime.store, self.clock.now()
        if await asyncio.to_thread(store.daemons.try_lease, "retention", self.id, now, timedelta(hours=2)):
            purged = await asyncio.to_thread(
                store.retention.purge, now - self.config.dispatch.retention, 1000
            )
            if purged:
                log.info("history_purged", fires=purged, older_than=str(self.config.dispatch.retention))

    async def _stop_when_idle(self, runtime: Runtime) -> None:
        await asyncio.sleep(_IDLE_CHECK_EVERY)  # let requested fires get a first dispatch round
        while not self._stop.is_set():
            counts = await asyncio.to_thread(runtime.store.counts.work)
            if counts.idle and not await runtime.downstream.waiting():
                log.info("idle", reason="nothing pending or in flight")
                self.request_stop()
                return
            await asyncio.sleep(_IDLE_CHECK_EVERY)

    def _health(self) -> tuple[bool, dict[str, Any]]:
        return self._loops.health(self.id, self.webhook_url)
