"""/v1/trajectories: recorded action sequences of workflows (stored, never replayed by the emulator)."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from fastapi import APIRouter
from fastapi.responses import Response

from cyberdesk.emulator import serializers as ser
from cyberdesk.emulator.emulator import Emulator
from cyberdesk.emulator.errors import NotFound
from cyberdesk.emulator.records import Trajectory
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
from cyberdesk.emulator.schemas import TrajectoryCreate, TrajectoryUpdate


class _Routes:
    def __init__(self, em: Emulator) -> None:
        self.em = em
        self.world = em.world

    def find(self, trajectory_id: UUID) -> Trajectory:
        found = self.world.trajectories.get(str(trajectory_id))
        if found is None:
            raise NotFound("Trajectory not found")
        return found

    def included_workflows(self, items: list[Trajectory]) -> list[ser.JSON]:
        seen: dict[str, ser.JSON] = {}
        for t in items:
            workflow = self.world.workflows.get(t.workflow_id)
            if workflow is not None:
                seen.setdefault(workflow.id, ser.included("workflow", ser.workflow(workflow)))
        return list(seen.values())

    @route("GET", "")
    async def list_trajectories(
        self,
        search: str | None = None,
        workflow_id: UUID | None = None,
        run_id: UUID | None = None,
        is_approved: bool | None = None,
        is_generated: bool | None = None,
        created_at_from: datetime | None = None,
        created_at_to: datetime | None = None,
        updated_at_from: datetime | None = None,
        updated_at_to: datetime | None = None,
        include: str | None = None,
        skip: Skip = 0,
        limit: Limit = 100,
    ) -> Response:
        found = [
            t
            for t in self.world.trajectories.values()
            if (workflow_id is None or t.workflow_id == str(workflow_id))
            and (run_id is None or t.run_id == str(run_id))
            and (is_approved is None or t.is_approved == is_approved)
            and (is_generated is None or t.is_generated == is_generated)
            and in_range(t.created_at, created_at_from, created_at_to)
            and in_range(t.updated_at, updated_at_from, updated_at_to)
            and contains(search, t.id, t.name, t.description)
        ]
        # Newest first; on equal timestamps the later-created one first.
        found = [x for _, x in sorted(enumerate(found), key=lambda p: (p[1].updated_at, p[0]), reverse=True)]
        shown = window(found, skip, limit)
        extra = self.included_workflows(shown) if "workflow" in includes(include) else None
        return json_response(
            ser.page_with_includes([ser.trajectory(t) for t in shown], len(found), skip, limit, extra)
        )

    @route("POST", "", status_code=201)
    async def create_trajectory(self, body: TrajectoryCreate) -> Response:
        workflow = self.em.workflow(str(body.workflow_id))
        now = self.em.now()
        trajectory = Trajectory(
            id=self.em.ids.uuid(),
            workflow_id=workflow.id,
            trajectory_data=body.trajectory_data,
            dimensions=body.dimensions,
            created_at=now,
            updated_at=now,
            name=body.name,
            description=body.description,
            run_id=None if body.run_id is None else str(body.run_id),
            original_input_values=body.original_input_values,
            is_approved=body.is_approved,
            has_been_approved=body.is_approved,
        )
        self.world.trajectories[trajectory.id] = trajectory
        return json_response(ser.trajectory(trajectory), 201)

    @route("GET", "/{trajectory_id}")
    async def get_trajectory(self, trajectory_id: UUID, include: str | None = None) -> Response:
        trajectory = self.find(trajectory_id)
        body = ser.trajectory(trajectory)
        if "workflow" in includes(include):
            body["included"] = self.included_workflows([trajectory])
        return json_response(body)

    @route("PATCH", "/{trajectory_id}")
    async def update_trajectory(self, trajectory_id: UUID, body: TrajectoryUpdate) -> Response:
        trajectory = self.find(trajectory_id)
        given = body.model_fields_set
        for attr in ("name", "description"):
            if attr in given:
                setattr(trajectory, attr, getattr(body, attr))
        if body.trajectory_data is not None:
            trajectory.trajectory_data = body.trajectory_data
        if body.is_approved is not None:
            trajectory.is_approved = body.is_approved
            trajectory.has_been_approved = trajectory.has_been_approved or body.is_approved
        if body.is_main is not None:
            if body.is_main:
                # At most one main trajectory per workflow.
                for other in self.world.trajectories_of(trajectory.workflow_id):
                    other.is_main = False
            trajectory.is_main = body.is_main
        trajectory.updated_at = self.em.now()
        return json_response(ser.trajectory(trajectory))

    @route("DELETE", "/{trajectory_id}", status_code=204)
    async def delete_trajectory(self, trajectory_id: UUID) -> Response:
        del self.world.trajectories[self.find(trajectory_id).id]
        return no_content()

    @route("POST", "/{trajectory_id}/duplicate", status_code=201)
    async def duplicate_trajectory(self, trajectory_id: UUID) -> Response:
        source = self.find(trajectory_id)
        now = self.em.now()
        copy = Trajectory(
            id=self.em.ids.uuid(),
            workflow_id=source.workflow_id,
            trajectory_data=[dict(step) for step in source.trajectory_data],
            dimensions=dict(source.dimensions),
            created_at=now,
            updated_at=now,
            name=f"{source.name or 'Trajectory'} (Copy)",
            description=source.description,
            run_id=source.run_id,
            original_input_values=source.original_input_values,
            is_generated=source.is_generated,
        )
        self.world.trajectories[copy.id] = copy
        return json_response(ser.trajectory(copy), 201)


def build(em: Emulator) -> APIRouter:
    return make_router(_Routes(em), prefix="/v1/trajectories", tags=["trajectories"])
