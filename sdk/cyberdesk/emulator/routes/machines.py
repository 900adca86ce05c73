"""/v1/machines: desktops, their pools, and the PATCH that disconnects one or clears its session."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from fastapi import APIRouter
from fastapi.responses import Response

from cyberdesk.emulator import serializers as ser
from cyberdesk.emulator.emulator import Emulator
from cyberdesk.emulator.records import Machine
from cyberdesk.emulator.routes.common import (
    Limit,
    Skip,
    contains,
    in_range,
    includes,
    json_response,
    make_router,
    no_content,
    route,
    window,
)
from cyberdesk.emulator.schemas import MachineCreate, MachinePoolUpdate, MachineStatus, MachineUpdate


class _Routes:
    def __init__(self, em: Emulator) -> None:
        self.em = em
        self.world = em.world

    def included_pools(self, machines: list[Machine]) -> list[ser.JSON]:
        seen: dict[str, ser.JSON] = {}
        for m in machines:
            for pool in self.world.pools_of(m):
                seen.setdefault(pool.id, ser.included("pool", ser.pool(pool)))
        return list(seen.values())

    @route("GET", "")
    async def list_machines(
        self,
        search: str | None = None,
        name: str | None = None,
        status: MachineStatus | None = None,
        created_at_from: datetime | None = None,
        created_at_to: datetime | None = None,
        include: str | None = None,
        skip: Skip = 0,
        limit: Limit = 100,
    ) -> Response:
        found = [
            m
            for m in self.world.machines.values()
            if (name is None or m.name == name)
            and (status is None or m.status == status)
            and in_range(m.created_at, created_at_from, created_at_to)
            and contains(search, m.id, m.name, m.hostname)
        ]
        shown = window(found, skip, limit)
        now = self.em.now()
        extra = self.included_pools(shown) if "pools" in includes(include) else None
        return json_response(
            ser.page_with_includes([ser.machine(m, now) for m in shown], len(found), skip, limit, extra)
        )

    @route("POST", "", status_code=201)
    async def create_machine(self, body: MachineCreate) -> Response:
        machine = self.em.add_machine(
            body.name,
            body.machine_parameters,
            body.machine_sensitive_parameters,
            fingerprint=body.fingerprint,
            unkey_key_id=body.unkey_key_id,
            version=body.version,
            hostname=body.hostname,
            os_info=body.os_info,
        )
        return json_response(ser.machine(machine, self.em.now()), 201)

    @route("GET", "/{machine_id}")
    async def get_machine(self, machine_id: UUID, include: str | None = None) -> Response:
        machine = self.em.machine(str(machine_id))
        body = ser.machine(machine, self.em.now())
        if "pools" in includes(include):
            body["included"] = self.included_pools([machine])
        return json_response(body)

    @route("PATCH", "/{machine_id}")
    async def update_machine(self, machine_id: UUID, body: MachineUpdate) -> Response:
        machine = self.em.machine(str(machine_id))
        given = body.model_fields_set
        for attr in ("name", "version", "hostname", "os_info"):
            if attr in given:
                setattr(machine, attr, getattr(body, attr))
        if body.alerts_enabled is not None:
            machine.alerts_enabled = body.alerts_enabled
        if body.last_seen is not None:
            machine.last_seen = body.last_seen.timestamp()
        if "machine_parameters" in given:
            machine.parameters = body.machine_parameters
        if "machine_sensitive_parameters" in given:
            self.world.vault_drop(machine.sensitive)
            machine.sensitive = self.world.vault_put(body.machine_sensitive_parameters)
        if body.is_available is not None and body.is_available != machine.enabled:
            # False drains the desktop (no new runs); true puts it back into rotation.
            machine.enabled = body.is_available
            self.em.simulation.machine_changed(machine)
        if "reserved_session_id" in given:
            if body.reserved_session_id is None:
                self.em.clear_session(machine.id)
            else:
                self.em.simulation.reserve(machine, str(body.reserved_session_id))
        if body.status is not None:
            self.em.set_machine_status(machine.id, body.status.value)
        return json_response(ser.machine(machine, self.em.now()))

    @route("DELETE", "/{machine_id}", status_code=204)
    async def delete_machine(self, machine_id: UUID) -> Response:
        self.em.delete_machine(str(machine_id))
        return no_content()

    @route("GET", "/{machine_id}/pools")
    async def get_machine_pools(self, machine_id: UUID) -> Response:
        machine = self.em.machine(str(machine_id))
        return json_response([ser.pool(p) for p in self.world.pools_of(machine)])

    @route("PUT", "/{machine_id}/pools")
    async def update_machine_pools(self, machine_id: UUID, body: MachinePoolUpdate) -> Response:
        machine = self.em.machine(str(machine_id))
        self.em.set_pools(machine, [str(p) for p in body.pool_ids])
        return json_response(ser.machine(machine, self.em.now()))


def build(em: Emulator) -> APIRouter:
    return make_router(_Routes(em), prefix="/v1/machines", tags=["machines"])
