"""The daemon's outbox round: keep the store's outbox rules in step with the config and job files, write the
result files of fires that ended (one daemon at a time, by lease), raise the alerts the daemon notices (late
fires, desktops disconnected, daemons lost: `store.watch`, once each by id), send due alerts, count them for
/metrics. On a clean stop, alerts claimed and not sent are given back at once."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import timedelta
from typing import TYPE_CHECKING

import httpx

from cyberdesk_runner.alerts.sender import routes_of, send_round
from cyberdesk_runner.config import Config
from cyberdesk_runner.files.outputs import OutputListingError, download_round, note_fire_outputs
from cyberdesk_runner.fleet import Desktop
from cyberdesk_runner.logs import get_logger
from cyberdesk_runner.results.files import (
    ResultFileRule,
    outputs_folder,
    result_file_path,
    write_pending_result_files,
)
from cyberdesk_runner.store.consequences import OutboxRules

if TYPE_CHECKING:
    from cyberdesk_runner.runtime import Runtime

log = get_logger(__name__)

_RESULTS_LEASE = timedelta(minutes=5)
#: Another daemon silent this long, with no clean stop, is lost (twice what `status` calls silent).
DAEMON_LOST_AFTER = timedelta(seconds=60)


class Outbox:
    def __init__(self, runtime: Runtime, config: Config, owner: str) -> None:
        self.runtime = runtime
        self.config = config
        self.owner = owner
        self.destinations = {d.name: d for d in config.alerts}
        self._routes = routes_of(config.alerts)
        self._client: httpx.AsyncClient | None = None
        #: Alerts this daemon claimed and has not settled yet (given back by `aclose`).
        self._held: set[str] = set()
        #: Result files are relative to the config file's folder.
        self.base = config.source.parent if config.source is not None else config.jobs.parent
        self.rules: dict[str, ResultFileRule] = {}
        self.refresh_rules()

    def refresh_rules(self) -> None:
        """Rebuild the store's outbox rules from the jobs as loaded now (cheap; run every round)."""
        rules: dict[str, ResultFileRule] = {}
        sensitive: dict[str, tuple[str, ...]] = {}
        for name, job in self.runtime.catalog.jobs.items():
            spec = job.loaded.spec
            sensitive[name] = tuple(spec.sensitive_inputs)
            if spec.results is not None:
                rules[name] = ResultFileRule(spec.results.path, spec.results.format)
        self.rules = rules
        self.runtime.store.outbox.rules = OutboxRules(
            self._routes, {n: r.format for n, r in rules.items()}, sensitive
        )

    async def round(self) -> None:
        self.refresh_rules()
        store, clock, metrics = self.runtime.store, self.runtime.clock, self.runtime.metrics
        if self.rules:
            leased = await asyncio.to_thread(
                store.daemons.try_lease, "results", self.owner, clock.now(), _RESULTS_LEASE
            )
            if leased:
                not_yet = await self._note_outputs()
                await asyncio.to_thread(
                    write_pending_result_files, store, self.rules, self.base, clock.now(), not_yet=not_yet
                )
            # Any daemon downloads: each attachment is claimed by one at a time (store.files).
            await download_round(store, self.runtime.client, clock.now())
        if self.destinations:
            await self._watch()
            if self._client is None:
                self._client = httpx.AsyncClient()
            result = await send_round(store, self.destinations, self._client, clock.now, self._held)
            metrics.alerts_sent.inc(result.sent)
            metrics.alert_tries_failed.inc(result.failed_tries)
        counts = await asyncio.to_thread(store.outbox.alert_counts)
        for status in ("pending", "sent", "failed", "digested"):
            metrics.alerts.labels(status).set(counts.get(status, 0))

    async def _note_outputs(self) -> set[str]:
        """Record the output attachments of fires whose result file is due, before the file names them;
        returns the fires to leave for a later round (the API did not list their attachments)."""
        store = self.runtime.store
        not_yet: set[str] = set()
        for fire_id, job_name, _ in await asyncio.to_thread(store.outbox.pending_result_files):
            rule = self.rules.get(job_name)
            job = self.runtime.catalog.get(job_name)
            if rule is None or (
                job is not None
                and job.workflow_ids
                and set(job.workflow_ids) <= self.runtime.workflows_without_exports
            ):
                continue  # a workflow that exports nothing: no list call per item
            path = await asyncio.to_thread(
                result_file_path, store, fire_id, job_name, rule.template, self.base
            )
            if path is None:
                continue
            try:
                await note_fire_outputs(store, self.runtime.client, fire_id, job_name, outputs_folder(path))
            except OutputListingError as exc:
                log.warning("output_files_not_listed", fire=fire_id, job=job_name, error=str(exc))
                not_yet.add(fire_id)
        return not_yet

    async def _watch(self) -> None:
        """Raise what the daemon notices; each alert once by id, however many daemons look."""
        runtime = self.runtime
        store, now = runtime.store, runtime.clock.now()
        jobs = runtime.catalog.jobs
        late_after = {n: j.loaded.spec.late_after for n, j in jobs.items() if j.loaded.spec.schedule}
        await asyncio.to_thread(store.watch.raise_late_fires, late_after, now)
        await asyncio.to_thread(store.watch.raise_lost_daemons, self.owner, DAEMON_LOST_AFTER, now)
        if runtime.fleet_loaded:
            targeted: dict[str, Desktop] = {}
            jobs_of: dict[str, list[str]] = {}  # a desktop's alert goes to routes for the jobs that target it
            for name, job in jobs.items():
                for desktop in runtime.fleet.select(job.target):
                    targeted[desktop.id] = desktop
                    jobs_of.setdefault(desktop.id, []).append(name)
            down = {i: d.label for i, d in targeted.items() if not d.connected}
            up = [i for i, d in targeted.items() if d.connected]
            await asyncio.to_thread(store.watch.raise_disconnected, down, up, now, jobs_of)

    async def aclose(self) -> None:
        """Give back alerts claimed and not sent (a stop mid-send), so another sender takes them at once."""
        if self._held:
            with contextlib.suppress(Exception):  # unreachable store: the claims lapse on their own
                await asyncio.to_thread(
                    self.runtime.store.outbox.release_claims, sorted(self._held), self.runtime.clock.now()
                )
            self._held.clear()
        if self._client is not None:
            await self._client.aclose()
