"""`Emulator`: the in-memory Cyberdesk cloud. The HTTP routes, the tests and the daemon all drive it here.

Thread safety: a served emulator runs on its own event-loop thread while tests inspect and steer it from
theirs, so every public method takes `lock` (re-entrant; the request middleware holds it too).
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterable, Mapping
from typing import Any

from cyberdesk.emulator import inspection, serializers
from cyberdesk.emulator.attachments import Attachments, FileUpload
from cyberdesk.emulator.clock import Clock, SystemClock, iso
from cyberdesk.emulator.errors import Conflict, NotFound
from cyberdesk.emulator.faults import FaultInjector
from cyberdesk.emulator.fleet import Fleet, load_fixture
from cyberdesk.emulator.idempotency import IdempotencyStore
from cyberdesk.emulator.ids import IdFactory
from cyberdesk.emulator.model_configurations import ModelConfigurations
from cyberdesk.emulator.options import DurationRange, EmulatorOptions, FaultSettings, WebhookEndpoint
from cyberdesk.emulator.records import (
    ACTIVE_STATUSES,
    TERMINAL_STATUSES,
    FailRule,
    Machine,
    Pool,
    Run,
    Workflow,
)
from cyberdesk.emulator.simulation import Simulation
from cyberdesk.emulator.state import World
from cyberdesk.emulator.stats import Stats
from cyberdesk.emulator.storage import PromptImages, Signer, message_history
from cyberdesk.emulator.tags import Tags
from cyberdesk.emulator.usage import usage_metadata
from cyberdesk.emulator.webhooks import WebhookDispatcher

_UNSET: Any = object()


class Emulator:
    """The emulated cloud: records, simulated fleet, webhooks, faults, idempotency and counters.

    `Emulator()` loads the demo fleet; `Emulator(EmulatorOptions(...))` or `Emulator(speed=100, seed=1)`
    customise it (keyword names as in `EmulatorOptions.build`).
    """

    def __init__(self, options: EmulatorOptions | None = None, **kwargs: Any) -> None:
        if options is not None and kwargs:
            raise TypeError("pass either options or keyword options, not both")
        self.options = options if options is not None else EmulatorOptions.build(**kwargs)
        self.clock: Clock = self.options.clock or SystemClock()
        self.lock = threading.RLock()
        self.ids = IdFactory(self.options.seed)
        self.world = World(self.ids)
        self.attachments = Attachments(self.ids)
        self.tags = Tags(self.ids, self.world.workflows)
        self.prompt_images = PromptImages(self.ids)
        self.model_configurations = ModelConfigurations(self.ids, self.world, self.now())
        self.signer = Signer(self.options.api_key)
        self.stats = Stats()
        self.faults = FaultInjector(self.options.faults, self.options.seed)
        self.idempotency = IdempotencyStore()
        self.webhooks = WebhookDispatcher(
            self.options.webhook_retry_delays,
            self.options.webhook_timeout,
            self.options.webhook_transport,
            rate=self.options.webhook_rate,
        )
        for endpoint in self.options.webhooks:
            self.webhooks.add_endpoint(endpoint.url, endpoint.secret)
        self.simulation = Simulation(self.world, self.clock, self.options, self._on_terminal)
        self.load_fleet(load_fixture(self.options.fixture))

    @property
    def api_key(self) -> str:
        return self.options.api_key

    def now(self) -> float:
        return self.clock.now()

    # -- time -----------------------------------------------------------------------------------

    def process_due(self) -> None:
        """Applies every transition due by now and places waiting runs."""
        with self.lock:
            self.simulation.process_due()

    def next_due_in(self) -> float | None:
        """Seconds until the next scheduled change (a run's end, a desktop's status); None when none is."""
        with self.lock:
            due = self.simulation.next_due()
            return None if due is None else max(0.0, due - self.clock.now())

    def advance(self, seconds: float) -> None:
        """Moves the clock forward (clock seconds: simulated durations are already divided by speed)."""
        with self.lock:
            self.clock.advance(seconds)
            self.simulation.process_due()

    def run_until_idle(self, max_seconds: float = 86_400.0) -> None:
        """Advances event by event until no run is scheduling or running (or max_seconds elapsed)."""
        with self.lock:
            deadline = self.now() + max_seconds
            self.simulation.process_due()
            while self._active_runs() and self.now() < deadline:
                due = self.simulation.next_due()
                if due is None:
                    break
                self.clock.advance(max(0.0, min(due, deadline) - self.now()))
                self.simulation.process_due()

    def _active_runs(self) -> int:
        return self.world.count_status("scheduling") + self.world.count_status("running")

    # -- fleet ----------------------------------------------------------------------------------

    def load_fleet(self, fleet: Fleet) -> None:
        with self.lock:
            for p in fleet.pools:
                self.add_pool(p.name, p.description, p.parameters, p.sensitive)
            for m in fleet.machines:
                machine = self.add_machine(m.name, m.parameters, m.sensitive, pools=m.pools, status=m.status)
                for at, status in m.schedule:
                    self.simulation.schedule_machine_status(machine, at, status)
            for w in fleet.workflows:
                self.add_workflow(
                    w.name,
                    w.prompt,
                    webhooks=w.webhooks,
                    run_duration=w.run_duration,
                    failure_rate=w.failure_rate,
                    fail_when=w.fail_when,
                    output_schema=w.output_schema,
                    includes_file_exports=w.includes_file_exports,
                    exports=None if w.exports is None else list(w.exports),
                )

    def add_pool(
        self,
        name: str,
        description: str | None = None,
        parameters: dict[str, Any] | None = None,
        sensitive: Mapping[str, Any] | None = None,
    ) -> Pool:
        with self.lock:
            now = self.now()
            pool = Pool(
                self.ids.uuid(), name, now, now, description, parameters, self.world.vault_put(sensitive)
            )
            self.world.pools[pool.id] = pool
            return pool

    def add_machine(
        self,
        name: str | None,
        parameters: dict[str, Any] | None = None,
        sensitive: Mapping[str, Any] | None = None,
        *,
        pools: Iterable[str] = (),
        status: str = "connected",
        fingerprint: str | None = None,
        unkey_key_id: str | None = None,
        version: str | None = "emulated",
        hostname: str | None = None,
        os_info: str | None = "Windows 11 (emulated)",
    ) -> Machine:
        """A simulated desktop, connected by default. `pools` are pool names or ids (created if unknown)."""
        with self.lock:
            now = self.now()
            machine = Machine(
                id=self.ids.uuid(),
                name=name,
                fingerprint=fingerprint or self.ids.token("fp"),
                unkey_key_id=unkey_key_id or self.ids.token("key"),
                created_at=now,
                version=version,
                hostname=hostname or name,
                os_info=os_info,
                status=status,
                parameters=parameters,
                sensitive=self.world.vault_put(sensitive),
            )
            for ref in pools:
                pool = self.world.pools.get(ref) or self.world.pool_named(ref) or self.add_pool(ref)
                self.world.assign(machine, pool)
            self.simulation.add_machine(machine, now)
            return machine

    def add_workflow(
        self,
        name: str | None,
        main_prompt: str,
        *,
        webhooks: bool = False,
        run_duration: Any = None,
        failure_rate: float | None = None,
        fail_when: Iterable[FailRule] = (),
        **fields: Any,
    ) -> Workflow:
        """A workflow; `run_duration`, `failure_rate` and `fail_when` tune only its simulated runs."""
        with self.lock:
            now = self.now()
            workflow = Workflow(
                id=self.ids.uuid(),
                main_prompt=main_prompt,
                created_at=now,
                updated_at=now,
                name=name,
                is_webhooks_enabled=webhooks,
                run_duration=None if run_duration is None else DurationRange.parse(run_duration),
                failure_rate=failure_rate,
                fail_when=list(fail_when),
                **fields,
            )
            self.world.workflows[workflow.id] = workflow
            return workflow

    # -- lookups (id or name) ---------------------------------------------------------------------

    def machine(self, ref: str) -> Machine:
        with self.lock:
            found = self.world.machines.get(ref) or self.world.machine_named(ref)
            if found is None:
                raise NotFound("Machine not found")
            return found

    def pool(self, ref: str) -> Pool:
        with self.lock:
            found = self.world.pools.get(ref) or self.world.pool_named(ref)
            if found is None:
                raise NotFound("Pool not found")
            return found

    def workflow(self, ref: str) -> Workflow:
        with self.lock:
            found = self.world.workflows.get(ref) or self.world.workflow_named(ref)
            if found is None:
                raise NotFound("Workflow not found")
            return found

    def run(self, run_id: str) -> Run:
        with self.lock:
            found = self.world.runs.get(run_id)
            if found is None:
                raise NotFound("Run not found")
            return found

    # -- runs -------------------------------------------------------------------------------------

    def create_run(
        self,
        workflow_id: str,
        *,
        machine_id: str | None = None,
        pool_ids: list[str] | None = None,
        input_values: dict[str, Any] | None = None,
        sensitive_input_values: Mapping[str, Any] | None = None,
        is_priority: bool = False,
        main_prompt: str | None = None,
        model_metadata: dict[str, Any] | None = None,
        session_id: str | None = None,
        start_session: bool = False,
        session_alias: str | None = None,
        release_session_after: bool | None = None,
        idempotency_key: str | None = None,
        file_inputs: Iterable[FileUpload] = (),
    ) -> Run:
        """A new `scheduling` run, placed at the next `process_due()` (every request does one first).
        `file_inputs` become its input attachments."""
        with self.lock:
            self.check_refs(workflow_id, machine_id, pool_ids)
            run_id = self.ids.uuid()
            if session_id is None and start_session:
                session_id = run_id
            run = Run(
                id=run_id,
                workflow_id=workflow_id,
                seq=self.world.next_run_seq(),
                created_at=self.now(),
                machine_id=machine_id,
                requested_machine_id=machine_id,
                pool_ids=pool_ids,
                is_priority=is_priority,
                main_prompt=main_prompt,
                model_metadata=model_metadata,
                input_values=input_values,
                sensitive_aliases=self.world.vault_put(sensitive_input_values),
                session_id=session_id,
                session_alias=session_alias,
                release_session_after=release_session_after,
                idempotency_key=idempotency_key,
            )
            self.world.add_run(run)
            self.attachments.replace_inputs(run, file_inputs, self.now())
            self.simulation.submit(run)
            self.stats.record_run_created(workflow_id, idempotency_key)
            return run

    def check_refs(self, workflow_id: str | None, machine_id: str | None, pool_ids: list[str] | None) -> None:
        if workflow_id is not None and workflow_id not in self.world.workflows:
            raise NotFound("Workflow not found")
        if machine_id is not None and machine_id not in self.world.machines:
            raise NotFound("Machine not found")
        if any(p not in self.world.pools for p in pool_ids or ()):
            raise NotFound("Pool not found")

    def cancel_run(self, run_id: str) -> Run:
        """Cancels an active run (what PATCH status=cancelled does); a terminal run is left as is."""
        with self.lock:
            run = self.run(run_id)
            if run.status in ACTIVE_STATUSES:
                self.simulation.end(run, self.now(), "cancelled", None, None)
            return run

    def end_run(self, run: Run, status: str, error: list[str] | None, output: dict[str, Any] | None) -> None:
        """Moves a run to a terminal status as a client PATCH would (a terminal run is only relabelled)."""
        with self.lock:
            if status not in TERMINAL_STATUSES:
                if status != run.status:
                    raise Conflict(
                        f"Cannot move a run from {run.status} to {status}: the emulator's lifecycle "
                        "drives scheduling/running; clients may only set a terminal status"
                    )
                return
            if run.status in ACTIVE_STATUSES:
                self.simulation.end(run, self.now(), status, error, output)
            else:
                self.world.set_status(run, status)

    def retry_run(
        self,
        run_id: str,
        *,
        input_values: dict[str, Any] | None = None,
        sensitive_input_values: Mapping[str, Any] | None = None,
        machine_id: str | None = None,
        pool_ids: list[str] | None = None,
        reuse_session: bool = True,
        session_id: str | None = None,
        start_session: bool = False,
        session_alias: str | None = _UNSET,
        release_session_after: bool | None = _UNSET,
        is_priority: bool | None = None,
        file_inputs: Iterable[FileUpload] | None = None,
    ) -> Run:
        """Retry in place: same id, back to `scheduling`, outputs (and output files) cleared; `file_inputs`
        replace the input files. Only terminal runs."""
        with self.lock:
            run = self.run(run_id)
            if run.status not in TERMINAL_STATUSES:
                raise Conflict(f"Run is {run.status}; only a terminal run can be retried")
            self.check_refs(None, machine_id, pool_ids)
            if input_values is not None:
                run.input_values = input_values
            if sensitive_input_values is not None:
                self.world.vault_drop(run.sensitive_aliases)
                run.sensitive_aliases = self.world.vault_put(sensitive_input_values)
            if machine_id is not None:
                run.requested_machine_id = machine_id
            if pool_ids is not None:
                run.pool_ids = pool_ids
            if is_priority is not None:
                run.is_priority = is_priority
            if start_session:
                self.world.set_session(run, self.ids.uuid())
            elif session_id is not None:
                self.world.set_session(run, session_id)
            elif not reuse_session:
                self.world.set_session(run, None)
            if session_alias is not _UNSET:
                run.session_alias = session_alias
            if release_session_after is not _UNSET:
                run.release_session_after = release_session_after
            if file_inputs is not None:
                self.attachments.replace_inputs(run, file_inputs, self.now())
            self.attachments.clear_outputs(run)
            run.usage_metadata = None
            self.simulation.requeue(run)
            return run

    def delete_run(self, run_id: str) -> None:
        with self.lock:
            run = self.run(run_id)
            self.world.vault_drop(run.sensitive_aliases)
            self.attachments.forget_run(run)
            self.simulation.delete_run(run, self.now())

    # -- desktops ---------------------------------------------------------------------------------

    def set_machine_status(self, ref: str, status: str) -> Machine:
        """`disconnected`/`error` end the running run in `error` and stop placement; `connected` resumes."""
        with self.lock:
            machine = self.machine(ref)
            self.simulation.set_machine_status(machine, status, self.now())
            self.simulation.process_due()
            return machine

    def disconnect(self, ref: str) -> Machine:
        return self.set_machine_status(ref, "disconnected")

    def reconnect(self, ref: str) -> Machine:
        return self.set_machine_status(ref, "connected")

    def clear_session(self, ref: str) -> Machine:
        with self.lock:
            machine = self.machine(ref)
            self.simulation.clear_session(machine, self.now())
            return machine

    def delete_machine(self, ref: str) -> None:
        with self.lock:
            self.simulation.delete_machine(self.machine(ref), self.now())

    def set_pools(self, machine: Machine, pool_ids: Iterable[str]) -> None:
        """Replaces the desktop's pool memberships."""
        with self.lock:
            wanted = [self.pool(p) for p in pool_ids]
            for pool_id in list(machine.pool_ids):
                self.world.unassign(machine, self.world.pools[pool_id])
            for pool in wanted:
                self.world.assign(machine, pool)
            self.simulation.machine_changed(machine)

    def delete_pool(self, ref: str) -> None:
        with self.lock:
            pool = self.pool(ref)
            for machine_id in list(pool.machine_ids):
                machine = self.world.machines[machine_id]
                self.world.unassign(machine, pool)
                self.simulation.machine_changed(machine)
            self.world.vault_drop(pool.sensitive)
            del self.world.pools[pool.id]

    def delete_workflow(self, ref: str) -> None:
        """Deletes the workflow with all its runs and trajectories, as the real API does."""
        with self.lock:
            workflow = self.workflow(ref)
            for run in list(self.world.runs_with(self.world.runs_by_workflow, workflow.id)):
                self.delete_run(run.id)
            for trajectory in list(self.world.trajectories_of(workflow.id)):
                del self.world.trajectories[trajectory.id]
            del self.world.workflows[workflow.id]

    # -- webhooks and faults ----------------------------------------------------------------------

    def add_webhook_endpoint(self, url: str, secret: str) -> WebhookEndpoint:
        """Sends `run_complete` events of webhook-enabled workflows to `url`, signed with `secret` (whsec_...)."""
        return self.webhooks.add_endpoint(url, secret)

    def remove_webhook_endpoint(self, url: str) -> None:
        self.webhooks.remove_endpoint(url)

    def set_faults(self, **changes: Any) -> FaultSettings:
        """Changes fault probabilities at runtime: rate_limit, server_errors, drop_responses, latency_ms."""
        return self.faults.update(**changes)

    def _on_terminal(self, run: Run) -> None:
        workflow = self.world.workflows.get(run.workflow_id)
        if workflow is None:
            return
        self.attachments.export(run, workflow, self.now())
        if run.started_at is not None:
            run.run_message_history = message_history(run, run.main_prompt or workflow.main_prompt)
        cached = any(t.is_generated for t in self.world.trajectories_of(workflow.id))
        run.usage_metadata = usage_metadata(run, self.options.speed, cached)
        if not workflow.is_webhooks_enabled or not self.webhooks.endpoints:
            return
        event = {
            "event_id": str(uuid.uuid4()),
            "event_type": "run_complete",
            "occurred_at": iso(run.ended_at if run.ended_at is not None else self.now()),
            "run": serializers.run(run),
        }
        self.webhooks.enqueue(event, msg_id=f"msg_{uuid.uuid4().hex}")

    async def deliver_webhooks(self, max_seconds: float = 10.0) -> None:
        """Delivers every pending webhook now, retrying with backoff: for emulators not served by uvicorn."""
        await self.webhooks.drain(max_seconds)

    # -- inspection -------------------------------------------------------------------------------

    def timeline(self) -> list[dict[str, Any]]:
        """Every run with its desktop and timestamps, plus each stay on a desktop (retries add stays)."""
        with self.lock:
            return inspection.timeline(self.world)

    def overlaps(self) -> list[dict[str, Any]]:
        """Pairs of runs that were on one desktop at the same time: must always be empty."""
        with self.lock:
            return inspection.overlaps(self.world)

    def stats_snapshot(self) -> dict[str, Any]:
        with self.lock:
            return inspection.snapshot(self)
