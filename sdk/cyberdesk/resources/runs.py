"""``client.runs``: executions of a workflow on a machine."""

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
    RunBulkCreate,
    RunBulkCreateResponse,
    RunCreate,
    RunField,
    RunImageSignedUrlResponse,
    RunListSortMode,
    RunResponse,
    RunResponseWithIncludes,
    RunRetry,
    RunStatus,
    RunUpdate,
    TrajectoryResponse,
    WorkflowChainCreate,
    WorkflowChainResponse,
)
from ..pagination import paginated

_ONE = "/v1/runs/{run_id}"


class Runs(Resource):
    def _get(
        self, run_id: UUID | str, *, include: Sequence[str] | None = None
    ) -> Call[RunResponseWithIncludes]:
        """Get one run; ``include``: ``workflow``, ``machine``, ``machine.pools``."""
        return Call(
            "GET",
            _ONE,
            json_body(RunResponseWithIncludes.from_dict),
            path_params=ids(run_id=run_id),
            query={"include": csv(include)},
        )

    get, get_sync = operation(_get)

    def _create(self, data: RunCreate, *, idempotency_key: str | None = None) -> Call[RunResponse]:
        """Create a run; it starts in ``scheduling``. Pass ``idempotency_key`` to make a repeat replay it."""
        return Call(
            "POST",
            "/v1/runs",
            json_body(RunResponse.from_dict),
            body=data,
            success=201,
            idempotency_key=idempotency_key,
        )

    create, create_sync = operation(_create)

    def _update(
        self, run_id: UUID | str, data: RunUpdate, *, idempotency_key: str | None = None
    ) -> Call[RunResponse]:
        return Call(
            "PATCH",
            _ONE,
            json_body(RunResponse.from_dict),
            path_params=ids(run_id=run_id),
            body=data,
            idempotency_key=idempotency_key,
        )

    update, update_sync = operation(_update)

    def _delete(self, run_id: UUID | str, *, idempotency_key: str | None = None) -> Call[None]:
        """Delete a run and its attachments. Success: ``data is None``."""
        return Call(
            "DELETE",
            _ONE,
            no_content,
            path_params=ids(run_id=run_id),
            success=204,
            idempotency_key=idempotency_key,
        )

    delete, delete_sync = operation(_delete)

    def _retry(
        self, run_id: UUID | str, retry: RunRetry | None = None, *, idempotency_key: str | None = None
    ) -> Call[RunResponse]:
        """Retry a terminal run in place (same id); ``retry`` defaults to ``RunRetry()`` (reuse the session)."""
        return Call(
            "POST",
            _ONE + "/retry",
            json_body(RunResponse.from_dict),
            path_params=ids(run_id=run_id),
            body=retry if retry is not None else RunRetry(),
            idempotency_key=idempotency_key,
        )

    retry, retry_sync = operation(_retry)

    def _bulk_create(
        self, data: RunBulkCreate, *, idempotency_key: str | None = None
    ) -> Call[RunBulkCreateResponse]:
        """Create ``data.count`` (at most 1000) identical runs in one transaction."""
        return Call(
            "POST",
            "/v1/runs/bulk",
            json_body(RunBulkCreateResponse.from_dict),
            body=data,
            success=201,
            idempotency_key=idempotency_key,
        )

    bulk_create, bulk_create_sync = operation(_bulk_create)

    def _chain(
        self, data: WorkflowChainCreate, *, idempotency_key: str | None = None
    ) -> Call[WorkflowChainResponse]:
        """Run several workflows in order on one reserved session/machine."""
        return Call(
            "POST",
            "/v1/runs/chain",
            json_body(WorkflowChainResponse.from_dict),
            body=data,
            success=201,
            idempotency_key=idempotency_key,
        )

    chain, chain_sync = operation(_chain)

    def _get_trajectory(self, run_id: UUID | str) -> Call[TrajectoryResponse]:
        """The run's latest trajectory (generated or not)."""
        return Call(
            "GET",
            _ONE + "/trajectory",
            json_body(TrajectoryResponse.from_dict),
            path_params=ids(run_id=run_id),
        )

    get_trajectory, get_trajectory_sync = operation(_get_trajectory)

    def _generate_trajectory(
        self, run_id: UUID | str, *, idempotency_key: str | None = None
    ) -> Call[TrajectoryResponse]:
        """Promote the run's latest trajectory to generated (used for later runs, shown to users)."""
        return Call(
            "POST",
            _ONE + "/generate-trajectory",
            json_body(TrajectoryResponse.from_dict),
            path_params=ids(run_id=run_id),
            idempotency_key=idempotency_key,
        )

    generate_trajectory, generate_trajectory_sync = operation(_generate_trajectory)

    def _get_image_signed_url(
        self, run_id: UUID | str, *, image_url: str, expires_in: int = 3600
    ) -> Call[RunImageSignedUrlResponse]:
        """A temporary URL of a screenshot of the run: ``image_url`` is the exact ``supabase://run-images/...``
        reference from its message history; ``expires_in`` seconds (10-3600)."""
        return Call(
            "GET",
            _ONE + "/image/signed-url",
            json_body(RunImageSignedUrlResponse.from_dict),
            path_params=ids(run_id=run_id),
            query={"image_url": image_url, "expires_in": expires_in},
        )

    get_image_signed_url, get_image_signed_url_sync = operation(_get_image_signed_url)

    def _list(
        self,
        skip: int | None = None,
        limit: int | None = None,
        status: RunStatus | None = None,
        workflow_id: UUID | str | None = None,
        machine_id: UUID | str | None = None,
        session_id: UUID | str | None = None,
        *,
        created_at_from: datetime | str | None = None,
        created_at_to: datetime | str | None = None,
        search: str | None = None,
        deep_search: bool | None = None,
        sort_mode: RunListSortMode | None = None,
        fields: Sequence[RunField | str] | None = None,
        include: Sequence[str] | None = None,
    ) -> Call[Page[RunResponse]]:
        """List runs (default order: active first, then recent completions; ``sort_mode`` changes it).

        ``search``: substring of id, inputs, outputs, error, session alias (``deep_search`` adds the message
        history); ``fields``: a projection (id, workflow_id, machine_id, status, created_at always come);
        ``include``: ``workflow``, ``machine``, ``machine.pools``.
        """
        query: Query = {
            "skip": skip,
            "limit": limit,
            "status": status,
            "workflow_id": opt_uuid_arg("workflow_id", workflow_id),
            "machine_id": opt_uuid_arg("machine_id", machine_id),
            "session_id": opt_uuid_arg("session_id", session_id),
            "created_at_from": created_at_from,
            "created_at_to": created_at_to,
            "search": search,
            "deep_search": deep_search,
            "sort_mode": sort_mode,
            "fields": list(fields) if fields is not None else None,
            "include": csv(include),
        }
        return Call("GET", "/v1/runs", page_of(RunResponse.from_dict), query=query)

    list, list_sync = operation(_list)
    iter, iter_sync = paginated(_list)
