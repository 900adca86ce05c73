"""``client.workflows``: the prompts (and schemas, checks, settings) that runs execute."""

from collections.abc import Sequence
from datetime import datetime
from uuid import UUID

from .._operation import Call, Query, Resource, csv, ids, json_body, no_content, operation, page_of, uuid_arg
from ..models import (
    Page,
    WorkflowCreate,
    WorkflowDuplicateRequest,
    WorkflowResponse,
    WorkflowResponseWithIncludes,
    WorkflowUpdate,
)
from ..pagination import paginated

_ONE = "/v1/workflows/{workflow_id}"


def _tag_ids(tag_ids: Sequence[UUID | str] | str | None) -> str | None:
    if tag_ids is None or isinstance(tag_ids, str):
        return tag_ids
    return ",".join(str(uuid_arg("tag_ids", t)) for t in tag_ids)


class Workflows(Resource):
    def _get(
        self, workflow_id: UUID | str, *, include: Sequence[str] | None = None
    ) -> Call[WorkflowResponseWithIncludes]:
        """Get one workflow; ``include``: ``tags``, ``post_run_checks`` (the server includes both by default)."""
        return Call(
            "GET",
            _ONE,
            json_body(WorkflowResponseWithIncludes.from_dict),
            path_params=ids(workflow_id=workflow_id),
            query={"include": csv(include)},
        )

    get, get_sync = operation(_get)

    def _create(self, data: WorkflowCreate, *, idempotency_key: str | None = None) -> Call[WorkflowResponse]:
        return Call(
            "POST",
            "/v1/workflows",
            json_body(WorkflowResponse.from_dict),
            body=data,
            success=201,
            idempotency_key=idempotency_key,
        )

    create, create_sync = operation(_create)

    def _update(
        self, workflow_id: UUID | str, data: WorkflowUpdate, *, idempotency_key: str | None = None
    ) -> Call[WorkflowResponse]:
        """Partial update; the server keeps the previous version in the workflow's history."""
        return Call(
            "PATCH",
            _ONE,
            json_body(WorkflowResponse.from_dict),
            path_params=ids(workflow_id=workflow_id),
            body=data,
            idempotency_key=idempotency_key,
        )

    update, update_sync = operation(_update)

    def _delete(self, workflow_id: UUID | str, *, idempotency_key: str | None = None) -> Call[None]:
        """Delete a workflow with all of its runs and trajectories. Success: ``data is None``."""
        return Call(
            "DELETE",
            _ONE,
            no_content,
            path_params=ids(workflow_id=workflow_id),
            success=204,
            idempotency_key=idempotency_key,
        )

    delete, delete_sync = operation(_delete)

    def _duplicate(
        self,
        workflow_id: UUID | str,
        *,
        include_trajectories: bool = False,
        idempotency_key: str | None = None,
    ) -> Call[WorkflowResponse]:
        """Copy a workflow (not its version history), optionally with its generated trajectories."""
        return Call(
            "POST",
            _ONE + "/duplicate",
            json_body(WorkflowResponse.from_dict),
            path_params=ids(workflow_id=workflow_id),
            body=WorkflowDuplicateRequest(include_trajectories=include_trajectories),
            success=201,
            idempotency_key=idempotency_key,
        )

    duplicate, duplicate_sync = operation(_duplicate)

    def _list(
        self,
        skip: int | None = None,
        limit: int | None = None,
        *,
        search: str | None = None,
        created_at_from: datetime | str | None = None,
        created_at_to: datetime | str | None = None,
        updated_at_from: datetime | str | None = None,
        updated_at_to: datetime | str | None = None,
        tag_ids: Sequence[UUID | str] | str | None = None,
        include_tags: bool | None = None,
        include: Sequence[str] | None = None,
    ) -> Call[Page[WorkflowResponse]]:
        """List workflows, most recently updated first. ``tag_ids``: workflows having all of these tags;
        ``include``: ``tags``, ``post_run_checks``."""
        query: Query = {
            "skip": skip,
            "limit": limit,
            "search": search,
            "created_at_from": created_at_from,
            "created_at_to": created_at_to,
            "updated_at_from": updated_at_from,
            "updated_at_to": updated_at_to,
            "tag_ids": _tag_ids(tag_ids),
            "include_tags": include_tags,
            "include": csv(include),
        }
        return Call("GET", "/v1/workflows", page_of(WorkflowResponse.from_dict), query=query)

    list, list_sync = operation(_list)
    iter, iter_sync = paginated(_list)
