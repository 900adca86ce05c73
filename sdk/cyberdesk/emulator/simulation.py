"""Simulated time and the run lifecycle: placement, start, completion, cancel, disconnects.

Event driven: every future transition (a run finishing, a scheduled disconnect) sits on a heap keyed by
its due time. `process_due()` applies the due ones in time order, placing waiting runs after each, so a
queued run starts exactly when the desktop before it frees up, even inside one big `advance()`.
"""

from __future__ import annotations

import heapq
import itertools
import random
from collections.abc import Callable
from typing import Any

from cyberdesk.emulator.clock import Clock
from cyberdesk.emulator.options import EmulatorOptions
from cyberdesk.emulator.output_data import generate_output, parse_output_schema
from cyberdesk.emulator.placement import RunQueue
from cyberdesk.emulator.records import (
    ACTIVE_STATUSES,
    Connection,
    Execution,
    Machine,
    Outcome,
    Run,
    Workflow,
)
from cyberdesk.emulator.resolution import resolve, resolve_refs
from cyberdesk.emulator.state import World

DISCONNECTED_ERROR = "Desktop disconnected"
DELETED_ERROR = "Desktop deleted"
_INFRA_ERROR = "Simulated infrastructure error: the agent lost contact with the desktop"
_TASK_FAILURE = "Simulated task failure: the workflow could not be completed"
# Share of random failures that are infrastructure errors rather than task failures.
_ERROR_SHARE = 0.25

# (due epoch seconds, tie-break sequence, kind, target id, generation of the target when scheduled)
_Event = tuple[float, int, str, str, int]


class Simulation:
    def __init__(
        self,
        world: World,
        clock: Clock,
        options: EmulatorOptions,
        on_terminal: Callable[[Run], None],
    ) -> None:
        self.world = world
        self.clock = clock
        self.options = options
        self.on_terminal = on_terminal
        self.rng = random.Random(None if options.seed is None else f"sim:{options.seed}")
        self.queue = RunQueue(world.runs, world.session_machines)
        self.epoch = clock.now()
        self._events: list[_Event] = []
        self._event_seq = itertools.count()
        # Desktops that could take a run now (connected, enabled, idle); reserved ones included.
        self._free: dict[str, None] = {}
        self._dirty = False
        self._last_pass = self.epoch

    # -- time ---------------------------------------------------------------------------------

    def process_due(self) -> None:
        now = self.clock.now()
        # Runs submitted since the last pass are placed as of then (a run starts no earlier than its
        # creation): nothing changed in between, so a free desktop was free when the run arrived.
        self._place(self._last_pass)
        while self._events and self._events[0][0] <= now:
            due, _, kind, target, generation = heapq.heappop(self._events)
            self._apply(kind, target, generation, due)
            self._place(due)
        self._place(now)
        self._last_pass = now

    def next_due(self) -> float | None:
        return self._events[0][0] if self._events else None

    def at_simulated(self, seconds: float) -> float:
        """The epoch time of a moment given in simulated seconds since the emulator started."""
        return self.epoch + seconds / self.options.speed

    def schedule_machine_status(self, machine: Machine, at_seconds: float, status: str) -> None:
        self._push(self.at_simulated(at_seconds), f"machine:{status}", machine.id, 0)

    def _push(self, due: float, kind: str, target: str, generation: int) -> None:
        heapq.heappush(self._events, (due, next(self._event_seq), kind, target, generation))

    def _apply(self, kind: str, target: str, generation: int, due: float) -> None:
        if kind == "finish":
            run = self.world.runs.get(target)
            if run is not None and run.generation == generation and run.outcome is not None:
                outcome = run.outcome
                self._finish(run, due, outcome.status, outcome.error, outcome.output)
        elif kind.startswith("machine:"):
            machine = self.world.machines.get(target)
            if machine is not None:
                self.set_machine_status(machine, kind.removeprefix("machine:"), due)

    # -- placement ----------------------------------------------------------------------------

    def _place(self, now: float) -> None:
        if not self._dirty:
            return
        self._dirty = False
        if not self._free or not self.world.runs_by_status.get("scheduling"):
            return
        machines = self.world.machines
        bound = self.queue.bound_desktops()
        free = self._free if bound is None else [m for m in bound if m in self._free]
        for machine in sorted((machines[m] for m in free), key=lambda m: (m.idle_since, m.name or "", m.id)):
            run = self.queue.best_for(machine)
            if run is not None:
                self._start(run, machine, now)

    def _refresh(self, machine: Machine) -> None:
        idle = machine.status == "connected" and machine.enabled and machine.current_run_id is None
        if idle and machine.id in self.world.machines:
            self._free[machine.id] = None
            self._dirty = True
        else:
            self._free.pop(machine.id, None)

    def _start(self, run: Run, machine: Machine, now: float) -> None:
        started = max(now, run.created_at)
        workflow = self.world.workflows[run.workflow_id]
        self.world.set_status(run, "running")
        self.world.set_machine(run, machine.id)
        run.started_at, run.ended_at = started, None
        run.generation += 1
        machine.current_run_id = run.id
        self._free.pop(machine.id, None)
        if run.session_id is not None and machine.reserved_session_id is None:
            machine.reserved_session_id = run.session_id
            self.world.session_machines[run.session_id] = machine.id
        run.outcome = self._decide(run, workflow, machine)
        run.executions.append(Execution(machine.id, started))
        span = workflow.run_duration or self.options.run_duration
        duration = self.rng.uniform(span.low, span.high)
        self._push(started + duration / self.options.speed, "finish", run.id, run.generation)

    def _decide(self, run: Run, workflow: Workflow, machine: Machine) -> Outcome:
        """Resolves what the run executes and draws how it ends (a fixed number of draws per run)."""
        pools = [self.world.pools[p] for p in run.pool_ids or () if p in self.world.pools]
        inputs, unresolved = resolve_refs(
            run.input_values, lambda alias: self._session_output(run.session_id, alias)
        )
        secret_names = set(run.sensitive_aliases or ()) | set(machine.sensitive or ())
        for pool in pools:
            secret_names |= set(pool.sensitive or ())
        resolved = resolve(
            run.main_prompt or workflow.main_prompt,
            [p.parameters for p in pools],
            inputs,
            machine.parameters,
            secret_names,
        )
        run.resolved_inputs = resolved.inputs
        output: dict[str, Any] = {
            "resolved_prompt": resolved.prompt,
            "inputs": resolved.inputs,
            "machine_name": machine.name,
        }
        schema = parse_output_schema(workflow.output_schema)
        if schema is not None:
            generated = generate_output(schema, run_id=run.id, seq=run.seq, inputs=resolved.inputs)
            # output_data is an object on the wire; a schema of another type is wrapped, not dropped.
            output = generated if isinstance(generated, dict) else {"value": generated}
        draw, flavour = self.rng.random(), self.rng.random()
        if unresolved:
            return Outcome("error", unresolved, output)
        rule = next((r for r in workflow.fail_when if r.matches(resolved.inputs, machine.name)), None)
        if rule is not None:
            return Outcome(rule.status, [rule.message()], output)
        rate = self.options.failure_rate if workflow.failure_rate is None else workflow.failure_rate
        if draw < rate:
            if flavour < _ERROR_SHARE:
                return Outcome("error", [_INFRA_ERROR], output)
            return Outcome("task_failed", [_TASK_FAILURE], output)
        return Outcome("success", None, output)

    def _session_output(self, session_id: str | None, alias: str) -> Any:
        if session_id is None:
            return None
        for run in self.world.runs_with(self.world.runs_by_session, session_id):
            if run.session_alias == alias and run.status == "success":
                return run.output_data
        return None

    # -- run lifecycle ------------------------------------------------------------------------

    def submit(self, run: Run) -> None:
        """Queues a `scheduling` run; it is placed at the next `process_due()` (the next request or tick)."""
        self.queue.push(run)
        self._dirty = True

    def requeue(self, run: Run) -> None:
        """Sends a terminal run back to `scheduling` with its outputs cleared (retry in place)."""
        self.world.set_status(run, "scheduling")
        run.generation += 1
        run.started_at = run.ended_at = None
        run.error = run.output_data = run.run_message_history = run.outcome = None
        run.output_attachment_ids = None
        self.world.set_machine(run, run.requested_machine_id)
        self.submit(run)

    def end(
        self, run: Run, now: float, status: str, error: list[str] | None, output: dict[str, Any] | None
    ) -> None:
        """Ends an active run now with the given terminal status (cancel, or a status PATCHed by a client)."""
        self._finish(run, now, status, error, output)

    def _finish(
        self, run: Run, now: float, status: str, error: list[str] | None, output: dict[str, Any] | None
    ) -> None:
        self.world.set_status(run, status)
        run.ended_at = now
        run.error, run.output_data, run.outcome = error, output, None
        run.generation += 1
        if run.executions and run.executions[-1].ended_at is None:
            run.executions[-1].ended_at, run.executions[-1].status = now, status
        self._vacate(run, now)
        if run.release_session_after and run.session_id is not None:
            self.release_session(run.session_id)
        self.on_terminal(run)
        if run.chain is not None and status != "success":
            self._break_chain(run, now, status)

    def _break_chain(self, failed: Run, now: float, status: str) -> None:
        """A chain step that ends other than `success` cancels the steps after it and frees the session.

        The emulator's choice (the API does not document it): later steps end `cancelled` with an error
        naming the failed step. They are ended last first, so each names the step that really failed.
        """
        chain = failed.chain or []
        step = chain.index(failed.id) + 1
        workflow = self.world.workflows.get(failed.workflow_id)
        label = (
            failed.session_alias or (workflow.name if workflow is not None else None) or failed.workflow_id
        )
        message = f"Chain step {step} ({label}) ended {status}; this later step was cancelled"
        for run_id in reversed(chain[step:]):
            later = self.world.runs.get(run_id)
            if later is not None and later.status in ACTIVE_STATUSES:
                self.end(later, now, "cancelled", [message], None)
        if failed.session_id is not None:
            self.release_session(failed.session_id)

    def _vacate(self, run: Run, now: float) -> None:
        machine = self.world.machines.get(run.machine_id or "")
        if machine is not None and machine.current_run_id == run.id:
            machine.current_run_id = None
            machine.idle_since = now
            self._refresh(machine)

    def delete_run(self, run: Run, now: float) -> None:
        if run.status == "running":
            if run.executions and run.executions[-1].ended_at is None:
                run.executions[-1].ended_at, run.executions[-1].status = now, "deleted"
            self._vacate(run, now)
        run.generation += 1
        self.world.remove_run(run)

    # -- desktops -----------------------------------------------------------------------------

    def add_machine(self, machine: Machine, now: float) -> None:
        self.world.machines[machine.id] = machine
        machine.idle_since = now
        if machine.status == "connected":
            machine.last_seen = now
            self._open_connection(machine, now)
        self._refresh(machine)

    def machine_changed(self, machine: Machine) -> None:
        """Pools or the enabled flag changed: which runs it may take changed too."""
        self._refresh(machine)
        self._dirty = True

    def set_machine_status(self, machine: Machine, status: str, now: float) -> None:
        """Connect or disconnect a desktop; a disconnect ends its running run in `error`."""
        if status == machine.status:
            return
        machine.status = status
        if status == "connected":
            machine.last_seen = now
            self._open_connection(machine, now)
        else:
            self._close_connection(machine, status, now)
            self._fail_current(machine, now, DISCONNECTED_ERROR)
        self._refresh(machine)

    def clear_session(self, machine: Machine, now: float) -> None:
        """`reserved_session_id: null`: cancel the desktop's active runs, drop the reservation, rematch."""
        session_id = machine.reserved_session_id
        doomed = {r.id: r for r in self.world.runs_with(self.world.runs_by_machine, machine.id)}
        if session_id is not None:
            doomed.update((r.id, r) for r in self.world.runs_with(self.world.runs_by_session, session_id))
        for run in [r for r in doomed.values() if r.status in ACTIVE_STATUSES]:
            self.end(run, now, "cancelled", None, None)
        if session_id is not None:
            self.release_session(session_id)

    def reserve(self, machine: Machine, session_id: str) -> None:
        if machine.reserved_session_id is not None:
            self.release_session(machine.reserved_session_id)
        machine.reserved_session_id = session_id
        self.world.session_machines[session_id] = machine.id
        self._dirty = True

    def release_session(self, session_id: str) -> None:
        machine_id = self.world.session_machines.pop(session_id, None)
        machine = self.world.machines.get(machine_id or "")
        if machine is not None and machine.reserved_session_id == session_id:
            machine.reserved_session_id = None
            self._refresh(machine)
        self._dirty = True

    def delete_machine(self, machine: Machine, now: float) -> None:
        """Runs survive with `machine_id` null; the running one and those pinned to it end in `error`."""
        for run in list(self.world.runs_with(self.world.runs_by_machine, machine.id)):
            if run.status in ACTIVE_STATUSES:
                self.end(run, now, "error", [DELETED_ERROR], run.outcome.output if run.outcome else None)
            if run.requested_machine_id == machine.id:
                run.requested_machine_id = None
            self.world.set_machine(run, None)
        if machine.reserved_session_id is not None:
            self.release_session(machine.reserved_session_id)
        for pool_id in list(machine.pool_ids):
            self.world.unassign(machine, self.world.pools[pool_id])
        for conn in [c for c in self.world.connections.values() if c.machine_id == machine.id]:
            del self.world.connections[conn.id]
        self.world.vault_drop(machine.sensitive)
        del self.world.machines[machine.id]
        self._free.pop(machine.id, None)

    def _fail_current(self, machine: Machine, now: float, message: str) -> None:
        run = self.world.runs.get(machine.current_run_id or "")
        if run is not None and run.status == "running":
            self.end(run, now, "error", [message], run.outcome.output if run.outcome else None)

    def _open_connection(self, machine: Machine, now: float) -> None:
        conn = Connection(
            id=self.world.ids.uuid(),
            websocket_id=self.world.ids.token("ws"),
            machine_id=machine.id,
            connected_at=now,
            last_ping=now,
        )
        self.world.connections[conn.id] = conn
        machine.connection_id = conn.id

    def _close_connection(self, machine: Machine, status: str, now: float) -> None:
        conn = self.world.connections.get(machine.connection_id or "")
        if conn is not None and conn.status == "connected":
            conn.status = "error" if status == "error" else "disconnected"
            conn.disconnected_at = now
        machine.connection_id = None
