"""/v1/connections: the websocket sessions of desktops (the simulation opens and closes them too)."""

from __future__ import annotations

from uuid import UUID

from fastapi import APIRouter
from fastapi.responses import Response

from cyberdesk.emulator import serializers as ser
from cyberdesk.emulator.emulator import Emulator
from cyberdesk.emulator.errors import NotFound
from cyberdesk.emulator.records import Connection
from cyberdesk.emulator.routes.common import (
    Limit,
    Skip,
    json_response,
    make_router,
    no_content,
    route,
    window,
)
from cyberdesk.emulator.schemas import ConnectionCreate, ConnectionUpdate, MachineStatus


class _Routes:
    def __init__(self, em: Emulator) -> None:
        self.em = em
        self.world = em.world

    def find(self, connection_id: UUID) -> Connection:
        found = self.world.connections.get(str(connection_id))
        if found is None:
            raise NotFound("Connection not found")
        return found

    @route("GET", "")
    async def list_connections(
        self,
        machine_id: UUID | None = None,
        status: MachineStatus | None = None,
        skip: Skip = 0,
        limit: Limit = 100,
    ) -> Response:
        found = [
            c
            for c in self.world.connections.values()
            if (machine_id is None or c.machine_id == str(machine_id))
            and (status is None or c.status == status)
        ]
        return json_response(
            ser.page([ser.connection(c) for c in window(found, skip, limit)], len(found), skip, limit)
        )

    @route("POST", "", status_code=201)
    async def create_connection(self, body: ConnectionCreate) -> Response:
        machine = self.em.machine(str(body.machine_id))
        now = self.em.now()
        conn = Connection(
            self.em.ids.uuid(),
            body.websocket_id,
            machine.id,
            now,
            now,
            ip_address=body.ip_address,
            user_agent=body.user_agent,
        )
        self.world.connections[conn.id] = conn
        return json_response(ser.connection(conn), 201)

    @route("GET", "/{connection_id}")
    async def get_connection(self, connection_id: UUID) -> Response:
        return json_response(ser.connection(self.find(connection_id)))

    @route("PATCH", "/{connection_id}")
    async def update_connection(self, connection_id: UUID, body: ConnectionUpdate) -> Response:
        conn = self.find(connection_id)
        if body.status is not None:
            conn.status = body.status.value
        if body.last_ping is not None:
            conn.last_ping = body.last_ping.timestamp()
        if "disconnected_at" in body.model_fields_set:
            conn.disconnected_at = None if body.disconnected_at is None else body.disconnected_at.timestamp()
        return json_response(ser.connection(conn))

    @route("DELETE", "/{connection_id}", status_code=204)
    async def delete_connection(self, connection_id: UUID) -> Response:
        del self.world.connections[self.find(connection_id).id]
        return no_content()


def build(em: Emulator) -> APIRouter:
    return make_router(_Routes(em), prefix="/v1/connections", tags=["connections"])
