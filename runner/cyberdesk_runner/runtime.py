"""The runner's moving parts, wired together, and one step of each: what the daemon's loops repeat.

Tests drive these steps directly with controlled time; the daemon (`daemon.py`) only adds loops, HTTP,
signals and the embedded emulator around them.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import random
import threading
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, TypeVar

import attrs

from cyberdesk import CyberdeskClient
from cyberdesk_runner import bulk
from cyberdesk_runner.api_access import is_key_refused, key_refused_message, status_of
from cyberdesk_runner.catalog import CatalogChange, JobCatalog
from cyberdesk_runner.clock import Clock
from cyberdesk_runner.dispatch import Dispatcher
from cyberdesk_runner.downstream import DownstreamFirer
from cyberdesk_runner.fleet import Fleet
from cyberdesk_runner.fleet_listing import list_fleet
from cyberdesk_runner.logs import bound_for_batch, get_logger
from cyberdesk_runner.metrics import Metrics
from cyberdesk_runner.outcome import make_outcome_policy
from cyberdesk_runner.planning import fail_fire, plan_fire
from cyberdesk_runner.references import ApiNames, list_workflows, unknown_references
from cyberdesk_runner.scheduling import Scheduler
from cyberdesk_runner.spec import SpecError
from cyberdesk_runner.store import Store
from cyberdesk_runner.store.records import (
    FINISHED_ATTEMPT_EVENTS,
    FinishedAttempt,
    ItemOutcome,
    NewFire,
    Transition,
)
from cyberdesk_runner.tracking.poller import Poller
from cyberdesk_runner.tracking.reaper import Reaper
from cyberdesk_runner.tracking.sink import ObservationSink

log = get_logger("cyberdesk_runner")

_T = TypeVar("_T")

#: A daemon round that claimed fewer than this many attempts makes the next one wait DISPATCH_GATHER seconds first:
#: when desktops free up one by one (slow news), a round per freed desktop costs a store transaction each; a short
#: wait lets a few share one. Busy rounds (a burst of freed desktops, a backlog) never wait.
SMALL_ROUND = 16
DISPATCH_GATHER = 0.025

#: How often a daemon looks for retries and cancels left midway (their claim lapsed) to finish.
_BULK_EVERY = timedelta(seconds=1)
#: How often a daemon looks for pending items of removed jobs that nobody cancelled (a daemon stopped midway):
#: they wait harmlessly meanwhile, as dispatch takes none of them.
_RETIRE_EVERY = timedelta(seconds=30)

_FIRE_OUTCOMES = frozenset(
    {"fire_started", "fire_succeeded", "fire_failed", "fire_cancelled", "fire_skipped"}
)


class Runtime:
    def __init__(
        self,
        *,
        store: Store,
        client: CyberdeskClient,
        catalog: JobCatalog,
        clock: Clock,
        owner: str,
        metrics: Metrics | None = None,
        rng: random.Random | None = None,
        max_in_flight_requests: int = 32,
        lease: timedelta = timedelta(seconds=30),
        poll_interval: timedelta = timedelta(seconds=15),
        news_window: timedelta | None = None,
        on_wake: Callable[[], None] = lambda: None,
    ) -> None:
        self.store = store
        self.client = client
        #: Workflows the API says export no files: their runs' output attachments are not listed (files/outputs.py).
        self.workflows_without_exports: frozenset[str] = frozenset()
        self.catalog = catalog
        self.clock = clock
        self.owner = owner
        self.metrics = metrics or Metrics()
        store.core.transaction_timer = self.metrics.store_transaction  # /metrics: the store's transactions
        self.rng = rng or random.Random()
        self.poll_interval = poll_interval
        self.fleet = Fleet()
        #: False until the first successful listing of desktops: until then no fire is planned.
        self.fleet_loaded = False
        self.api_ok: bool | None = None
        #: 401 or 403 when the API refused the key at its last request (wrong, revoked, or being rotated).
        self.api_refusal: int | None = None
        #: What the API knows by name, from the last refresh; None until then.
        self.api_names: ApiNames | None = None
        #: The jobs' references (workflow, pool, desktops) the API does not know, from the last check.
        self.reference_errors: list[SpecError] = []
        self._on_wake = on_wake
        self._workflow_names: dict[str, str | None] = {}
        #: Attempts the last daemon round claimed (see SMALL_ROUND).
        self._last_claimed = SMALL_ROUND
        #: Set when the daemon stops: chunked work (plans, retries, cancels) ends after its chunk (`bulk`).
        self.stopping = threading.Event()
        self._bulk_work: set[asyncio.Future[Any]] = set()
        self._bulk_seen: datetime | None = None
        self._retire_seen: datetime | None = None
        self._bulk_round: asyncio.Task[None] | None = None
        self.sink = ObservationSink(
            store=store,
            clock=clock,
            outcome=self.policy,
            on_transitions=self.on_transitions,
            metrics=self.metrics,
            news_window=news_window.total_seconds() if news_window is not None else 0.0,
        )
        self.dispatcher = Dispatcher(
            store=store,
            client=client,
            catalog=catalog,
            fleet=lambda: self.fleet,
            clock=clock,
            metrics=self.metrics,
            outcome=self.policy,
            on_transitions=self.on_transitions,
            record_created=self.sink.record,
            on_room=on_wake,
            max_in_flight_requests=max_in_flight_requests,
            lease=lease,
        )
        self.sink.refill = self.dispatcher  # a batch that frees desktops fills them in its own transaction
        self.poller = Poller(store=store, client=client, sink=self.sink, clock=clock, metrics=self.metrics)
        self.reaper = Reaper(
            store=store,
            client=client,
            sink=self.sink,
            clock=clock,
            outcome=self.policy,
            on_transitions=self.on_transitions,
        )
        self.downstream = DownstreamFirer(store=store, catalog=catalog, fleet=lambda: self.fleet, clock=clock)
        self.scheduler = Scheduler(
            store=store,
            catalog=catalog,
            fleet=lambda: self.fleet,
            clock=clock,
            on_transitions=self.on_transitions,
            rng=self.rng,
        )

    def policy(self, now: datetime) -> Callable[[FinishedAttempt], ItemOutcome]:
        return make_outcome_policy(self.catalog.retry_policy, now, self.rng)

    def on_transitions(self, transitions: Sequence[Transition], *, refilled: bool = False) -> None:
        """Log every state change (one event each), count it, and wake the dispatcher when work may be due
        (`refilled`: the desktops freed by these transitions were filled in their own transaction already)."""
        wake = False
        events, logged = bound_for_batch(log)
        for t in transitions:
            if logged:
                fields = {
                    k: v
                    for k, v in (
                        ("job", t.job_name),
                        ("fire", t.fire_id),
                        ("item", t.item_id),
                        ("attempt", t.attempt_id),
                        ("run", t.run_id),
                    )
                    if v
                }
                events.info(t.kind, **fields, **dict(t.data))
            metrics = self.metrics
            if t.kind == "run_created":  # recorded once per run, even when a create call was repeated
                metrics.child(metrics.runs_created, t.job_name).inc()
            elif t.kind.startswith("attempt_") and t.kind != "attempt_created":
                metrics.child(metrics.runs_finished, t.job_name, t.kind.removeprefix("attempt_")).inc()
                # Counted once per run: the store finishes an attempt once, whichever daemon hears of it.
                if t.data.get("tokens"):
                    metrics.child(metrics.tokens, t.job_name).inc(t.data["tokens"])
                if t.data.get("billed_seconds"):
                    metrics.child(metrics.billed_seconds, t.job_name).inc(t.data["billed_seconds"])
            elif t.kind == "item_retry_scheduled":
                metrics.child(metrics.retries, t.job_name).inc()
            elif t.kind in _FIRE_OUTCOMES:
                metrics.child(metrics.fires, t.job_name, t.kind.removeprefix("fire_")).inc()
            wake = (
                wake
                or t.kind in ("item_retry_scheduled", "fire_started", "fire_requested")
                or (not refilled and t.kind in FINISHED_ATTEMPT_EVENTS)
            )
        if wake:
            self._on_wake()

    # -- steps -----------------------------------------------------------------------------------------

    async def start(self) -> None:
        """Prepare the store and load the jobs; the API may be down (its loops keep trying)."""
        await asyncio.to_thread(self.store.upgrade)  # schema migrations to head (Alembic)
        try:
            await self.reload_jobs(force=True)
            await self.refresh_fleet()
        except Exception as exc:
            self._api_failed(exc)
            if self.api_key_refused:
                log.warning(
                    "api_key_refused_at_start",
                    error=key_refused_message(self.client.base_url, status_of(exc)),
                    effect="will keep trying, in case the key is being rotated; nothing is dispatched meanwhile",
                )
            else:
                log.warning(
                    "api_unreachable_at_start", error=str(exc), effect="will keep trying; nothing is lost"
                )

    @property
    def api_key_refused(self) -> bool:
        return self.api_refusal is not None

    def _api_failed(self, exc: BaseException) -> None:
        self.api_ok = False
        self.api_refusal = status_of(exc) if is_key_refused(exc) else None

    async def reload_jobs(self, *, force: bool = False) -> CatalogChange:
        change = self.catalog.reload()
        for error in change.errors:
            log.error("job_file_error", error=str(error))
        if change or force:
            await asyncio.to_thread(self.store.jobs.sync, self.catalog.definitions(), self.clock.now())
            for name in change.removed:
                await asyncio.to_thread(self.store.control.stop_plans_of_job, name, self.clock.now())
            if change.removed:
                await self._retire_removed_jobs()
            if any(
                job.workflow_id is None and job.workflow_error is None for job in self.catalog.jobs.values()
            ):
                await self.resolve_workflows()
            self._check_references()
        return change

    async def resolve_workflows(self) -> None:
        quiet: set[str] = set()
        try:
            workflows = await list_workflows(self.client, without_exports=quiet)
        except Exception as exc:
            self._api_failed(exc)
            raise
        self._workflow_names = workflows
        self.workflows_without_exports = frozenset(quiet)
        if self.api_names is not None:
            self.api_names = attrs.evolve(self.api_names, workflows=workflows)
        for name in self.catalog.resolve_workflows(workflows):
            job = self.catalog.jobs[name]
            if job.workflow_id and not job.workflow_error:
                await asyncio.to_thread(self.store.jobs.set_workflow, name, job.workflow_id)
        self.api_ok, self.api_refusal = True, None

    async def refresh_fleet(self) -> None:
        """List the desktops (and which pools they are in), then resolve workflows: one refresh of the API's view."""
        try:
            pool_members = any(job.loaded.spec.target.pool for job in self.catalog.jobs.values())
            previous = self.fleet if self.fleet_loaded else None
            listing = await list_fleet(self.client, pool_members=pool_members, previous=previous)
            await self.resolve_workflows()
        except Exception as exc:
            self._api_failed(exc)
            raise
        # An unchanged fleet is the same object (list_fleet): the names of its desktops are the same too.
        names = self.api_names
        machines: Mapping[str, str | None] = (
            names.machines
            if names is not None and listing.fleet is self.fleet
            else {d.id: d.name for d in listing.fleet.desktops.values()}
        )
        self.fleet = listing.fleet
        self.fleet_loaded = True
        self.api_names = ApiNames(workflows=self._workflow_names, pools=listing.pools, machines=machines)
        self._check_references()
        self._on_wake()

    def _check_references(self) -> None:
        """Log, once each, the jobs' references the API does not know (as `validate` reports them)."""
        if self.api_names is None:
            return
        names = self.api_names
        errors = [e for job in self.catalog.jobs.values() for e in unknown_references(job.loaded, names)]
        for error in errors:
            if error not in self.reference_errors:
                log.error("job_reference_error", error=str(error))
        self.reference_errors = errors

    async def plan_requested_fires(self) -> int:
        """Give fires requested from the CLI (manual triggers) their items, by chunks (`planning.plan_fire`), and
        continue plans another daemon (or this one, before a restart) left midway.

        A fire waits (stays requested) while the API's view is not known yet: an outage delays it, never fails it.
        """
        if not self.fleet_loaded:
            return 0
        requests = await asyncio.to_thread(self.store.fires.requested, now=self.clock.now())
        for request in requests:
            if self.stopping.is_set():
                break
            if request.copies_failed:  # a retry whose copy of failed items stopped midway: continue_bulk_work
                continue
            job = self.catalog.get(request.job_name)
            if job is not None and job.workflow_id is None and job.workflow_error is None:
                continue  # its workflow is not resolved yet
            if job is None:
                error = f"no job named {request.job_name!r}"
                outcome = await asyncio.to_thread(fail_fire, self.store, request, error, self.clock.now)
            else:
                outcome = await self._bulk(
                    plan_fire,
                    self.store,
                    job,
                    self.fleet,
                    request,
                    self.clock.now,
                    stopping=self.stopping.is_set,
                )
            self.on_transitions(outcome.transitions)
            if outcome.error is not None and not outcome.transitions:  # failed before it had items
                log.error("fire_failed", job=request.job_name, fire=request.id, error=outcome.error)
                self.metrics.fires.labels(request.job_name, "failed").inc()
            elif outcome.error is not None:  # stopped midway: its events (on_transitions) say how it ended
                log.error("fire_plan_abandoned", job=request.job_name, fire=request.id, error=outcome.error)
            elif outcome.items is not None:
                log.info(
                    "fire_planned",
                    job=request.job_name,
                    fire=request.id,
                    items=outcome.items,
                    trigger=request.trigger,
                )
        return len(requests)

    async def continue_bulk_work(self) -> int:
        """Finish what a process (the CLI, a daemon) left between two chunks, once its claim lapsed or was given
        back (`bulk`): a retry's copy of failed items, a fire's cancel. Looked for at most once a second; how many
        this daemon took over."""
        if not self._bulk_due():
            return 0
        taken = 0
        for request in await asyncio.to_thread(self.store.fires.requested, now=self.clock.now()):
            if not request.copies_failed or self.stopping.is_set():
                continue
            copied = await self._bulk(
                bulk.continue_retry, self.store, request, self.clock.now, stopping=self.stopping.is_set
            )
            if copied is not None:
                taken += 1
                self.on_transitions(copied)
                log.info("retry_copied", job=request.job_name, fire=request.id)
        if not self.stopping.is_set():
            taken += await self._bulk(
                bulk.continue_cancels,
                self.store,
                self.clock.now,
                stopping=self.stopping.is_set,
                on_transitions=self.on_transitions,
            )
        # A removed job's pending items left by a daemon that stopped (or crashed) before cancelling them all.
        now = self.clock.now()
        if self._retire_seen is None or now - self._retire_seen >= _RETIRE_EVERY:
            self._retire_seen = now
            await self._retire_removed_jobs()
        return taken

    async def _retire_removed_jobs(self) -> None:
        if not self.stopping.is_set():
            await self._bulk(
                bulk.retire_removed_jobs,
                self.store,
                self.clock.now,
                stopping=self.stopping.is_set,
                on_transitions=self.on_transitions,
            )

    def _bulk_due(self) -> bool:
        now = self.clock.now()
        if self.stopping.is_set() or (self._bulk_seen is not None and now - self._bulk_seen < _BULK_EVERY):
            return False
        self._bulk_seen = now
        return True

    def _continue_bulk_work_aside(self) -> None:
        """`continue_bulk_work` as a task of its own: a cancel of 100,000 items takes a minute, and the dispatch
        round goes on meanwhile. One at a time."""
        if self._bulk_round is not None and not self._bulk_round.done():
            return

        async def run() -> None:
            try:
                await self.continue_bulk_work()
            except Exception as exc:  # tried again a second later, like a loop's round
                log.error("loop_error", loop="bulk", error=f"{type(exc).__name__}: {exc}")

        self._bulk_round = asyncio.create_task(run(), name="bulk")

    async def _bulk(self, work: Callable[..., _T], *args: Any, **kwargs: Any) -> _T:
        """Run chunked store work in a worker thread that a stop does not cut off: the daemon's stop sets
        `stopping` (the work ends after its chunk, giving back its claim) and waits for it (`bulk_work_done`)."""
        call = functools.partial(contextvars.copy_context().run, work, *args, **kwargs)
        future = asyncio.get_running_loop().run_in_executor(None, call)
        self._bulk_work.add(future)
        future.add_done_callback(self._bulk_work.discard)
        return await asyncio.shield(future)

    async def bulk_work_done(self) -> None:
        """Wait for chunked work under way to end its chunk and give back its claim (the caller bounds the wait)."""
        if self._bulk_work:
            await asyncio.wait(set(self._bulk_work))
        if self._bulk_round is not None:
            await asyncio.wait([self._bulk_round])

    async def dispatch_round(self, *, wait: bool = True) -> int:
        """Plan requested fires, start runs for every due item that limits allow, settle unknown creates.

        With `wait`, returns once every create call is answered and recorded (steps driven one at a time, as
        in tests); the daemon's loop does not wait: answers are recorded as they come, and a round ends when
        enough calls are waiting.
        """
        if not wait and self._last_claimed < SMALL_ROUND:
            await asyncio.sleep(DISPATCH_GATHER)  # freed desktops trickle in: gather a few per round
        await self.plan_requested_fires()
        if wait:
            await self.continue_bulk_work()
        else:
            self._continue_bulk_work_aside()
        if self.fleet_loaded:
            await self.downstream.fire_once()  # upstream fires that ended: their `after:` jobs' fires
        started = 0
        while True:
            batch = await self.dispatcher.dispatch_once()
            started += batch
            if wait:
                await self.dispatcher.drain()
            # Desktops freed meanwhile wake the next round; only a full batch says more is due right now.
            if not self.dispatcher.more_due or self.dispatcher.throttled:
                break
        settled = await self.dispatcher.settle_once()
        if wait:
            await self.dispatcher.drain()
        self._last_claimed = started + settled
        return started

    async def refresh_gauges(self) -> None:
        """Items pending and runs in flight, from the store (so they are right whoever changed them)."""
        counts = await asyncio.to_thread(self.store.counts.work)
        self.metrics.items_pending.set(counts.pending_items)
        self.metrics.items_in_flight.set(counts.in_flight_attempts)

    @property
    def _tracking_lease(self) -> timedelta:
        # Renewed every round; a dead holder's lease lapses after three missed rounds.
        return max(self.poll_interval * 3, timedelta(seconds=3))

    async def poll_round(self) -> bool:
        """Reconcile in-flight runs, if this daemon holds the poller lease (one daemon polls for all)."""
        lease = self._tracking_lease
        if not await asyncio.to_thread(
            self.store.daemons.try_lease, "poller", self.owner, self.clock.now(), lease
        ):
            return False
        await self.poller.poll_once()
        return True

    async def reap_round(self) -> int:
        await self.sink.sweep()  # this daemon's own: news about runs that never became ours
        lease = self._tracking_lease
        if not await asyncio.to_thread(
            self.store.daemons.try_lease, "reaper", self.owner, self.clock.now(), lease
        ):
            return 0
        return await self.reaper.reap_once()

    def schedule_tick(self) -> datetime | None:
        if not self.fleet_loaded:
            return None  # slots wait (unconsidered) until the API's view is known; then catch-up decides
        return self.scheduler.tick()

    async def trigger(self, names: Sequence[str]) -> list[str]:
        fire_ids = []
        for name in names:
            fire_id = await asyncio.to_thread(
                self.store.fires.request, NewFire(name, "manual", None), self.clock.now()
            )
            log.info("fire_requested", job=name, fire=fire_id, trigger="manual")
            fire_ids.append(fire_id)
        self._on_wake()
        return fire_ids
