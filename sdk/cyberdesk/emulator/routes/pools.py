"""/v1/pools: named groups of desktops that runs select by intersection."""

from __future__ import annotations

from uuid import UUID

from fastapi import APIRouter
from fastapi.responses import Response

from cyberdesk.emulator import serializers as ser
from cyberdesk.emulator.emulator import Emulator
from cyberdesk.emulator.routes.common import (
    Limit,
    Skip,
    includes,
    json_response,
    make_router,
    no_content,
    route,
    window,
)
from cyberdesk.emulator.schemas import MachinePoolAssignment, PoolCreate, PoolUpdate


class _Routes:
    def __init__(self, em: Emulator) -> None:
        self.em = em
        self.world = em.world

    def machines_json(self, pool_id: str) -> list[ser.JSON]:
        now = self.em.now()
        return [ser.machine(m, now) for m in self.world.machines_of(self.world.pools[pool_id])]

    @route("GET", "")
    async def list_pools(self, include: str | None = None, skip: Skip = 0, limit: Limit = 100) -> Response:
        pools = list(self.world.pools.values())
        shown = window(pools, skip, limit)
        extra: list[ser.JSON] | None = None
        if "machines" in includes(include):
            seen: dict[str, ser.JSON] = {}
            for pool in shown:
                for m in self.machines_json(pool.id):
                    seen.setdefault(m["id"], ser.included("machine", m))
            extra = list(seen.values())
        return json_response(
            ser.page_with_includes([ser.pool(p) for p in shown], len(pools), skip, limit, extra)
        )

    @route("POST", "", status_code=201)
    async def create_pool(self, body: PoolCreate) -> Response:
        pool = self.em.add_pool(
            body.name, body.description, body.pool_parameters, body.pool_sensitive_parameters
        )
        return json_response(ser.pool(pool), 201)

    @route("GET", "/{pool_id}")
    async def get_pool(
        self, pool_id: UUID, include_machines: bool = False, include: str | None = None
    ) -> Response:
        pool = self.em.pool(str(pool_id))
        body = ser.pool(pool)
        if include_machines:
            body["machines"] = self.machines_json(pool.id)
        if "machines" in includes(include):
            body["included"] = [ser.included("machine", m) for m in self.machines_json(pool.id)]
        return json_response(body)

    @route("PATCH", "/{pool_id}")
    async def update_pool(self, pool_id: UUID, body: PoolUpdate) -> Response:
        pool = self.em.pool(str(pool_id))
        given = body.model_fields_set
        if body.name is not None:
            pool.name = body.name
        if "description" in given:
            pool.description = body.description
        if "pool_parameters" in given:
            pool.parameters = body.pool_parameters
        if "pool_sensitive_parameters" in given:
            self.world.vault_drop(pool.sensitive)
            pool.sensitive = self.world.vault_put(body.pool_sensitive_parameters)
        pool.updated_at = self.em.now()
        return json_response(ser.pool(pool))

    @route("DELETE", "/{pool_id}", status_code=204)
    async def delete_pool(self, pool_id: UUID) -> Response:
        self.em.delete_pool(str(pool_id))
        return no_content()

    @route("POST", "/{pool_id}/machines")
    async def add_machines(self, pool_id: UUID, body: MachinePoolAssignment) -> Response:
        pool = self.em.pool(str(pool_id))
        machines = [self.em.machine(str(m)) for m in body.machine_ids]
        for machine in machines:
            self.world.assign(machine, pool)
            self.em.simulation.machine_changed(machine)
        pool.updated_at = self.em.now()
        return json_response({**ser.pool(pool), "machines": self.machines_json(pool.id)})

    @route("DELETE", "/{pool_id}/machines", status_code=204)
    async def remove_machines(self, pool_id: UUID, body: MachinePoolAssignment) -> Response:
        pool = self.em.pool(str(pool_id))
        machines = [self.em.machine(str(m)) for m in body.machine_ids]
        for machine in machines:
            self.world.unassign(machine, pool)
            self.em.simulation.machine_changed(machine)
        pool.updated_at = self.em.now()
        return no_content()


def build(em: Emulator) -> APIRouter:
    return make_router(_Routes(em), prefix="/v1/pools", tags=["pools"])
