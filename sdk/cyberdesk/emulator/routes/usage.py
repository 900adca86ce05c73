"""/v1/usage/aggregate: the steps of the runs created in a period, simulated or billed."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter
from fastapi.responses import Response

from cyberdesk.emulator.clock import epoch, iso
from cyberdesk.emulator.emulator import Emulator
from cyberdesk.emulator.routes.common import in_range, json_response, make_router, route
from cyberdesk.emulator.schemas import UsageMode
from cyberdesk.emulator.usage import aggregate


class _Routes:
    def __init__(self, em: Emulator) -> None:
        self.em = em

    @route("GET", "/aggregate")
    async def usage_aggregate(
        self, from_date: datetime, to_date: datetime, mode: UsageMode = UsageMode.simulated
    ) -> Response:
        runs = (r for r in self.em.world.runs.values() if in_range(r.created_at, from_date, to_date))
        agentic, cached, counted = aggregate(runs, mode.value)
        return json_response(
            {
                "total_agentic_steps": agentic,
                "total_cached_steps": cached,
                "period_start": iso(epoch(from_date)),
                "period_end": iso(epoch(to_date)),
                "mode": mode.value,
                "runs_counted": counted,
            }
        )


def build(em: Emulator) -> APIRouter:
    return make_router(_Routes(em), prefix="/v1/usage", tags=["usage"])
