"""The world: every record of the emulated cloud plus the run indexes that keep requests O(result)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from cyberdesk.emulator.ids import IdFactory
from cyberdesk.emulator.records import (
    TERMINAL_STATUSES,
    Connection,
    Machine,
    Pool,
    Run,
    Trajectory,
    Workflow,
)

# An index maps a key to the ids of its runs; dicts keep insertion order, sets would not.
_Index = dict[str, dict[str, None]]


def _index_add(index: _Index, key: str | None, run_id: str) -> None:
    if key is not None:
        index.setdefault(key, {})[run_id] = None


def _index_remove(index: _Index, key: str | None, run_id: str) -> None:
    if key is None:
        return
    bucket = index.get(key)
    if bucket is not None:
        bucket.pop(run_id, None)
        if not bucket:
            del index[key]


class World:
    """Records by id. Run fields that are indexed change only through the `set_*` methods here."""

    def __init__(self, ids: IdFactory) -> None:
        self.ids = ids
        self.machines: dict[str, Machine] = {}
        self.pools: dict[str, Pool] = {}
        self.workflows: dict[str, Workflow] = {}
        self.runs: dict[str, Run] = {}
        self.connections: dict[str, Connection] = {}
        self.trajectories: dict[str, Trajectory] = {}
        # alias -> secret value: the only place secrets live; nothing serialises it.
        self.vault: dict[str, Any] = {}
        self.runs_by_status: _Index = {}
        self.runs_by_machine: _Index = {}
        self.runs_by_workflow: _Index = {}
        self.runs_by_session: _Index = {}
        # Terminal runs in the order they ended: the tail of the "activity" sort without sorting.
        self.ended_order: dict[str, None] = {}
        self.session_machines: dict[str, str] = {}
        self._run_seq = 0

    # -- runs ---------------------------------------------------------------------------------

    def next_run_seq(self) -> int:
        self._run_seq += 1
        return self._run_seq

    def add_run(self, run: Run) -> None:
        self.runs[run.id] = run
        _index_add(self.runs_by_status, run.status, run.id)
        _index_add(self.runs_by_machine, run.machine_id, run.id)
        _index_add(self.runs_by_workflow, run.workflow_id, run.id)
        _index_add(self.runs_by_session, run.session_id, run.id)

    def remove_run(self, run: Run) -> None:
        del self.runs[run.id]
        _index_remove(self.runs_by_status, run.status, run.id)
        _index_remove(self.runs_by_machine, run.machine_id, run.id)
        _index_remove(self.runs_by_workflow, run.workflow_id, run.id)
        _index_remove(self.runs_by_session, run.session_id, run.id)
        self.ended_order.pop(run.id, None)

    def set_status(self, run: Run, status: str) -> None:
        if status == run.status:
            return
        _index_remove(self.runs_by_status, run.status, run.id)
        _index_add(self.runs_by_status, status, run.id)
        run.status = status
        self.ended_order.pop(run.id, None)
        if status in TERMINAL_STATUSES:
            self.ended_order[run.id] = None

    def set_machine(self, run: Run, machine_id: str | None) -> None:
        if machine_id != run.machine_id:
            _index_remove(self.runs_by_machine, run.machine_id, run.id)
            _index_add(self.runs_by_machine, machine_id, run.id)
            run.machine_id = machine_id

    def set_session(self, run: Run, session_id: str | None) -> None:
        if session_id != run.session_id:
            _index_remove(self.runs_by_session, run.session_id, run.id)
            _index_add(self.runs_by_session, session_id, run.id)
            run.session_id = session_id

    def runs_with(self, index: _Index, key: str) -> Iterator[Run]:
        for run_id in index.get(key, {}):
            yield self.runs[run_id]

    def count_status(self, status: str) -> int:
        return len(self.runs_by_status.get(status, ()))

    # -- secrets ------------------------------------------------------------------------------

    def vault_put(self, values: Mapping[str, Any] | None) -> dict[str, str] | None:
        """Stores secret values and returns name -> alias, the only form the API ever shows."""
        if values is None:
            return None
        aliases: dict[str, str] = {}
        for name, value in values.items():
            alias = self.ids.token("tok")
            self.vault[alias] = value
            aliases[name] = alias
        return aliases

    def vault_drop(self, aliases: Mapping[str, str] | None) -> None:
        for alias in (aliases or {}).values():
            self.vault.pop(alias, None)

    # -- pools --------------------------------------------------------------------------------

    def assign(self, machine: Machine, pool: Pool) -> None:
        machine.pool_ids.add(pool.id)
        pool.machine_ids.add(machine.id)

    def unassign(self, machine: Machine, pool: Pool) -> None:
        machine.pool_ids.discard(pool.id)
        pool.machine_ids.discard(machine.id)

    def pools_of(self, machine: Machine) -> list[Pool]:
        return sorted((self.pools[p] for p in machine.pool_ids), key=lambda p: (p.created_at, p.name))

    def machines_of(self, pool: Pool) -> list[Machine]:
        return sorted(
            (self.machines[m] for m in pool.machine_ids), key=lambda m: (m.created_at, m.name or "")
        )

    def machine_named(self, name: str) -> Machine | None:
        return next((m for m in self.machines.values() if m.name == name), None)

    def pool_named(self, name: str) -> Pool | None:
        return next((p for p in self.pools.values() if p.name == name), None)

    def workflow_named(self, name: str) -> Workflow | None:
        return next((w for w in self.workflows.values() if w.name == name), None)

    def trajectories_of(self, workflow_id: str) -> Iterable[Trajectory]:
        return (t for t in self.trajectories.values() if t.workflow_id == workflow_id)
