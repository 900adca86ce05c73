"""/v1/computer/{machine_id}/display/*: a screenshot and the display size of a simulated desktop."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response

from cyberdesk.emulator.emulator import Emulator
from cyberdesk.emulator.errors import Conflict
from cyberdesk.emulator.png import HEIGHT, WIDTH, screenshot_png
from cyberdesk.emulator.records import Machine
from cyberdesk.emulator.routes.common import json_response, make_router, route


class _Routes:
    def __init__(self, em: Emulator) -> None:
        self.em = em
        self.world = em.world

    def connected(self, machine_id: str) -> Machine:
        # The path types machine_id as a plain string: an unknown or malformed id is a 404, not a 422.
        machine = self.em.machine(machine_id)
        if machine.status != "connected":
            raise Conflict("Machine is not connected")
        return machine

    @route("GET", "/{machine_id}/display/screenshot")
    async def screenshot(self, machine_id: str) -> Response:
        self.connected(machine_id)
        return Response(screenshot_png(), media_type="image/png")

    @route("GET", "/{machine_id}/display/dimensions")
    async def dimensions(self, machine_id: str) -> Response:
        self.connected(machine_id)
        return json_response({"width": WIDTH, "height": HEIGHT})


def build(em: Emulator) -> APIRouter:
    return make_router(_Routes(em), prefix="/v1/computer", tags=["computer"])
