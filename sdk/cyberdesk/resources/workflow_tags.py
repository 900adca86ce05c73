"""``client.workflow_tags`` and ``client.workflow_tag_groups``: labels of workflows; a workflow carries at most one
tag of a group (adding another tag of the group replaces it, server side)."""

from collections.abc import Sequence
from uuid import UUID

from .._operation import Call, Resource, ids, json_body, json_list, no_content, operation, uuid_arg
from .._types import UNSET, Unset
from ..models import (
    AddTagsRequest,
    BulkAddTagsRequest,
    ReorderRequest,
    WorkflowTagCreate,
    WorkflowTagGroupCreate,
    WorkflowTagGroupResponse,
    WorkflowTagGroupUpdate,
    WorkflowTagResponse,
    WorkflowTagUpdate,
)

_TAG = "/v1/workflow-tags/{tag_id}"
_GROUP = "/v1/workflow-tag-groups/{group_id}"


def _given(value: str | None) -> str | Unset:
    """The facade's ``None`` means "not given": the field is left out of the body."""
    return UNSET if value is None else value


def _reorder(path: str, values: Sequence[UUID | str], name: str, key: str | None) -> Call[None]:
    return Call(
        "PUT",
        path,
        no_content,
        body=ReorderRequest(ids=[uuid_arg(name, v) for v in values]),
        success=204,
        idempotency_key=key,
    )


class WorkflowTags(Resource):
    def _create(
        self,
        name: str,
        description: str | None = None,
        emoji: str | None = None,
        color: str | None = None,
        group_id: UUID | str | None = None,
        *,
        idempotency_key: str | None = None,
    ) -> Call[WorkflowTagResponse]:
        """A tag (its name unique in the organisation), in ``group_id``'s group if given."""
        body = WorkflowTagCreate(
            name=name,
            description=_given(description),
            emoji=_given(emoji),
            color=_given(color),
            group_id=UNSET if group_id is None else uuid_arg("group_id", group_id),
        )
        return Call(
            "POST",
            "/v1/workflow-tags",
            json_body(WorkflowTagResponse.from_dict),
            body=body,
            success=201,
            idempotency_key=idempotency_key,
        )

    create, create_sync = operation(_create)

    def _get(self, tag_id: UUID | str) -> Call[WorkflowTagResponse]:
        return Call("GET", _TAG, json_body(WorkflowTagResponse.from_dict), path_params=ids(tag_id=tag_id))

    get, get_sync = operation(_get)

    def _update(
        self,
        tag_id: UUID | str,
        *,
        name: str | None = None,
        description: str | None = None,
        emoji: str | None = None,
        color: str | None = None,
        group_id: UUID | str | None = None,
        idempotency_key: str | None = None,
    ) -> Call[WorkflowTagResponse]:
        """Change the given fields; ``group_id=""`` takes the tag out of its group."""
        group: UUID | None | Unset = UNSET
        if group_id == "":
            group = None
        elif group_id is not None:
            group = uuid_arg("group_id", group_id)
        body = WorkflowTagUpdate(
            name=_given(name),
            description=_given(description),
            emoji=_given(emoji),
            color=_given(color),
            group_id=group,
        )
        return Call(
            "PATCH",
            _TAG,
            json_body(WorkflowTagResponse.from_dict),
            path_params=ids(tag_id=tag_id),
            body=body,
            idempotency_key=idempotency_key,
        )

    update, update_sync = operation(_update)

    def _delete(self, tag_id: UUID | str, *, idempotency_key: str | None = None) -> Call[None]:
        """Delete the tag for good (it leaves every workflow); ``archive`` keeps it on them."""
        return Call(
            "DELETE",
            _TAG,
            no_content,
            path_params=ids(tag_id=tag_id),
            success=204,
            idempotency_key=idempotency_key,
        )

    delete, delete_sync = operation(_delete)

    def _archive(
        self, tag_id: UUID | str, *, idempotency_key: str | None = None
    ) -> Call[WorkflowTagResponse]:
        """Archive: the tag stays on its workflows but cannot be added to others."""
        return Call(
            "POST",
            _TAG + "/archive",
            json_body(WorkflowTagResponse.from_dict),
            path_params=ids(tag_id=tag_id),
            idempotency_key=idempotency_key,
        )

    archive, archive_sync = operation(_archive)

    def _unarchive(
        self, tag_id: UUID | str, *, idempotency_key: str | None = None
    ) -> Call[WorkflowTagResponse]:
        return Call(
            "POST",
            _TAG + "/unarchive",
            json_body(WorkflowTagResponse.from_dict),
            path_params=ids(tag_id=tag_id),
            idempotency_key=idempotency_key,
        )

    unarchive, unarchive_sync = operation(_unarchive)

    def _reorder(self, tag_ids: Sequence[UUID | str], *, idempotency_key: str | None = None) -> Call[None]:
        """Put the tags in this order."""
        return _reorder("/v1/workflow-tags/reorder", tag_ids, "tag_ids", idempotency_key)

    reorder, reorder_sync = operation(_reorder)

    def _add_to_workflow(
        self, workflow_id: UUID | str, tag_ids: Sequence[UUID | str], *, idempotency_key: str | None = None
    ) -> Call[list[WorkflowTagResponse]]:
        """Add tags to a workflow; a tag of a group replaces the workflow's tag of that group."""
        return Call(
            "POST",
            "/v1/workflows/{workflow_id}/tags",
            json_list(WorkflowTagResponse.from_dict),
            path_params=ids(workflow_id=workflow_id),
            body=AddTagsRequest(tag_ids=[uuid_arg("tag_ids", t) for t in tag_ids]),
            idempotency_key=idempotency_key,
        )

    add_to_workflow, add_to_workflow_sync = operation(_add_to_workflow)

    def _remove_from_workflow(
        self, workflow_id: UUID | str, tag_id: UUID | str, *, idempotency_key: str | None = None
    ) -> Call[None]:
        return Call(
            "DELETE",
            "/v1/workflows/{workflow_id}/tags/{tag_id}",
            no_content,
            path_params=ids(workflow_id=workflow_id, tag_id=tag_id),
            success=204,
            idempotency_key=idempotency_key,
        )

    remove_from_workflow, remove_from_workflow_sync = operation(_remove_from_workflow)

    def _get_for_workflow(self, workflow_id: UUID | str) -> Call[list[WorkflowTagResponse]]:
        return Call(
            "GET",
            "/v1/workflows/{workflow_id}/tags",
            json_list(WorkflowTagResponse.from_dict),
            path_params=ids(workflow_id=workflow_id),
        )

    get_for_workflow, get_for_workflow_sync = operation(_get_for_workflow)

    def _bulk_add_to_workflows(
        self,
        workflow_ids: Sequence[UUID | str],
        tag_ids: Sequence[UUID | str],
        *,
        idempotency_key: str | None = None,
    ) -> Call[None]:
        """Add the tags to every workflow (the group rule holds on each)."""
        body = BulkAddTagsRequest(
            workflow_ids=[uuid_arg("workflow_ids", w) for w in workflow_ids],
            tag_ids=[uuid_arg("tag_ids", t) for t in tag_ids],
        )
        return Call(
            "POST",
            "/v1/workflows/bulk/tags",
            no_content,
            body=body,
            success=204,
            idempotency_key=idempotency_key,
        )

    bulk_add_to_workflows, bulk_add_to_workflows_sync = operation(_bulk_add_to_workflows)

    def _list(self, include_archived: bool = False) -> Call[list[WorkflowTagResponse]]:
        """Every tag of the organisation, each with its ``workflow_count``."""
        return Call(
            "GET",
            "/v1/workflow-tags",
            json_list(WorkflowTagResponse.from_dict),
            query={"include_archived": include_archived},
        )

    list, list_sync = operation(_list)


class WorkflowTagGroups(Resource):
    def _create(
        self,
        name: str,
        description: str | None = None,
        emoji: str | None = None,
        color: str | None = None,
        *,
        idempotency_key: str | None = None,
    ) -> Call[WorkflowTagGroupResponse]:
        """A group (its name unique in the organisation): its tags are mutually exclusive on a workflow."""
        body = WorkflowTagGroupCreate(
            name=name, description=_given(description), emoji=_given(emoji), color=_given(color)
        )
        return Call(
            "POST",
            "/v1/workflow-tag-groups",
            json_body(WorkflowTagGroupResponse.from_dict),
            body=body,
            success=201,
            idempotency_key=idempotency_key,
        )

    create, create_sync = operation(_create)

    def _get(self, group_id: UUID | str) -> Call[WorkflowTagGroupResponse]:
        return Call(
            "GET", _GROUP, json_body(WorkflowTagGroupResponse.from_dict), path_params=ids(group_id=group_id)
        )

    get, get_sync = operation(_get)

    def _update(
        self,
        group_id: UUID | str,
        *,
        name: str | None = None,
        description: str | None = None,
        emoji: str | None = None,
        color: str | None = None,
        idempotency_key: str | None = None,
    ) -> Call[WorkflowTagGroupResponse]:
        body = WorkflowTagGroupUpdate(
            name=_given(name), description=_given(description), emoji=_given(emoji), color=_given(color)
        )
        return Call(
            "PATCH",
            _GROUP,
            json_body(WorkflowTagGroupResponse.from_dict),
            path_params=ids(group_id=group_id),
            body=body,
            idempotency_key=idempotency_key,
        )

    update, update_sync = operation(_update)

    def _delete(self, group_id: UUID | str, *, idempotency_key: str | None = None) -> Call[None]:
        """Delete the group; its tags stay, ungrouped."""
        return Call(
            "DELETE",
            _GROUP,
            no_content,
            path_params=ids(group_id=group_id),
            success=204,
            idempotency_key=idempotency_key,
        )

    delete, delete_sync = operation(_delete)

    def _reorder(self, group_ids: Sequence[UUID | str], *, idempotency_key: str | None = None) -> Call[None]:
        return _reorder("/v1/workflow-tag-groups/reorder", group_ids, "group_ids", idempotency_key)

    reorder, reorder_sync = operation(_reorder)

    def _list(self) -> Call[list[WorkflowTagGroupResponse]]:
        return Call("GET", "/v1/workflow-tag-groups", json_list(WorkflowTagGroupResponse.from_dict))

    list, list_sync = operation(_list)
