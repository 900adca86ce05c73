"""``client.trajectories``: recorded action sequences of workflows (only approved ones are used at run time)."""

from collections.abc import Sequence
from datetime import datetime
from uuid import UUID

from .._operation import (
    Call,
    Query,
    Resource,
    csv,
    ids,
    json_body,
    no_content,
    operation,
    opt_uuid_arg,
    page_of,
)
from ..models import (
    Page,
    TrajectoryCreate,
    TrajectoryResponse,
    TrajectoryResponseWithIncludes,
    TrajectoryUpdate,
)
from ..pagination import paginated

_ONE = "/v1/trajectories/{trajectory_id}"


class Trajectories(Resource):
    def _get(
        self, trajectory_id: UUID | str, *, include: Sequence[str] | None = None
    ) -> Call[TrajectoryResponseWithIncludes]:
        """Get one trajectory; ``include``: ``["workflow"]``."""
        return Call(
            "GET",
            _ONE,
            json_body(TrajectoryResponseWithIncludes.from_dict),
            path_params=ids(trajectory_id=trajectory_id),
            query={"include": csv(include)},
        )

    get, get_sync = operation(_get)

    def _create(
        self, data: TrajectoryCreate, *, idempotency_key: str | None = None
    ) -> Call[TrajectoryResponse]:
        return Call(
            "POST",
            "/v1/trajectories",
            json_body(TrajectoryResponse.from_dict),
            body=data,
            success=201,
            idempotency_key=idempotency_key,
        )

    create, create_sync = operation(_create)

    def _update(
        self, trajectory_id: UUID | str, data: TrajectoryUpdate, *, idempotency_key: str | None = None
    ) -> Call[TrajectoryResponse]:
        return Call(
            "PATCH",
            _ONE,
            json_body(TrajectoryResponse.from_dict),
            path_params=ids(trajectory_id=trajectory_id),
            body=data,
            idempotency_key=idempotency_key,
        )

    update, update_sync = operation(_update)

    def _delete(self, trajectory_id: UUID | str, *, idempotency_key: str | None = None) -> Call[None]:
        """Success: ``data is None``."""
        return Call(
            "DELETE",
            _ONE,
            no_content,
            path_params=ids(trajectory_id=trajectory_id),
            success=204,
            idempotency_key=idempotency_key,
        )

    delete, delete_sync = operation(_delete)

    def _get_latest_for_workflow(self, workflow_id: UUID | str) -> Call[TrajectoryResponse]:
        """The workflow's most recently updated trajectory."""
        return Call(
            "GET",
            "/v1/workflows/{workflow_id}/latest-trajectory",
            json_body(TrajectoryResponse.from_dict),
            path_params=ids(workflow_id=workflow_id),
        )

    get_latest_for_workflow, get_latest_for_workflow_sync = operation(_get_latest_for_workflow)

    def _duplicate(
        self, trajectory_id: UUID | str, *, idempotency_key: str | None = None
    ) -> Call[TrajectoryResponse]:
        """Copy a trajectory (unapproved, named "<name> (Copy)")."""
        return Call(
            "POST",
            _ONE + "/duplicate",
            json_body(TrajectoryResponse.from_dict),
            path_params=ids(trajectory_id=trajectory_id),
            success=201,
            idempotency_key=idempotency_key,
        )

    duplicate, duplicate_sync = operation(_duplicate)

    def _list(
        self,
        skip: int | None = None,
        limit: int | None = None,
        workflow_id: UUID | str | None = None,
        run_id: UUID | str | None = None,
        is_approved: bool | None = None,
        is_generated: bool | None = None,
        *,
        search: str | None = None,
        created_at_from: datetime | str | None = None,
        created_at_to: datetime | str | None = None,
        updated_at_from: datetime | str | None = None,
        updated_at_to: datetime | str | None = None,
        include: Sequence[str] | None = None,
    ) -> Call[Page[TrajectoryResponse]]:
        """List trajectories. ``is_generated`` not given: the server's default applies (generated ones only);
        ``include``: ``["workflow"]``."""
        query: Query = {
            "skip": skip,
            "limit": limit,
            "workflow_id": opt_uuid_arg("workflow_id", workflow_id),
            "run_id": opt_uuid_arg("run_id", run_id),
            "is_approved": is_approved,
            "is_generated": is_generated,
            "search": search,
            "created_at_from": created_at_from,
            "created_at_to": created_at_to,
            "updated_at_from": updated_at_from,
            "updated_at_to": updated_at_to,
            "include": csv(include),
        }
        return Call("GET", "/v1/trajectories", page_of(TrajectoryResponse.from_dict), query=query)

    list, list_sync = operation(_list)
    iter, iter_sync = paginated(_list)
