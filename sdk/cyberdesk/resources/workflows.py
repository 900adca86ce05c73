"""``client.workflows``: the prompts (and schemas, checks, settings) that runs execute."""

import mimetypes
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from uuid import UUID

from .._operation import (
    Call,
    Query,
    Resource,
    csv,
    ids,
    json_body,
    json_list,
    no_content,
    operation,
    page_of,
    uuid_arg,
)
from ..models import (
    Page,
    WorkflowCreate,
    WorkflowDuplicateRequest,
    WorkflowMergeRequest,
    WorkflowPromptImageListItem,
    WorkflowPromptImageResponse,
    WorkflowPromptImageSignedUrlResponse,
    WorkflowResponse,
    WorkflowResponseWithIncludes,
    WorkflowUpdate,
)
from ..pagination import paginated

_ONE = "/v1/workflows/{workflow_id}"


_IMAGE = "/v1/workflows/prompt-image"
#: The image types the API takes for prompt images (at most 10 MB each).
PROMPT_IMAGE_TYPES = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".gif": "image/gif",
                      ".webp": "image/webp"}  # fmt: skip


def _image_part(
    file_path: str | Path | None, file_content: bytes | None, filename: str | None, content_type: str | None
) -> tuple[str, bytes, str]:
    if (file_path is None) == (file_content is None):
        raise ValueError("upload_prompt_image: give exactly one of file_path and file_content")
    if file_path is not None:
        content, name = Path(file_path).read_bytes(), filename or Path(file_path).name
    else:
        assert file_content is not None
        content, name = file_content, filename or "image"
    suffix = Path(name).suffix.lower()
    kind = content_type or PROMPT_IMAGE_TYPES.get(suffix) or mimetypes.guess_type(name)[0]
    return name, content, kind or "application/octet-stream"


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

    def _merge(
        self,
        workflow_id: UUID | str,
        *,
        target_workflow_id: UUID | str,
        copy_trajectories: bool = False,
        idempotency_key: str | None = None,
    ) -> Call[WorkflowResponse]:
        """Merge this workflow into ``target_workflow_id``: the target takes its data, this one is deleted.
        ``data`` is the updated target."""
        return Call(
            "POST",
            _ONE + "/merge",
            json_body(WorkflowResponse.from_dict),
            path_params=ids(workflow_id=workflow_id),
            body=WorkflowMergeRequest(
                target_workflow_id=uuid_arg("target_workflow_id", target_workflow_id),
                copy_trajectories=copy_trajectories,
            ),
            idempotency_key=idempotency_key,
        )

    merge, merge_sync = operation(_merge)

    def _upload_prompt_image(
        self,
        file_path: str | Path | None = None,
        file_content: bytes | None = None,
        filename: str | None = None,
        content_type: str | None = None,
        *,
        idempotency_key: str | None = None,
    ) -> Call[WorkflowPromptImageResponse]:
        """Upload an image (PNG, JPEG, GIF or WebP, at most 10 MB) for prompts: a file, or bytes with a
        ``filename``; the type comes from the name unless ``content_type`` is given. Embed the returned
        ``supabase_url`` in a prompt as ``<img src="...">``."""
        return Call(
            "POST",
            _IMAGE,
            json_body(WorkflowPromptImageResponse.from_dict),
            files={"file": _image_part(file_path, file_content, filename, content_type)},
            success=201,
            idempotency_key=idempotency_key,
        )

    upload_prompt_image, upload_prompt_image_sync = operation(_upload_prompt_image)

    def _list_prompt_images(self) -> Call[list[WorkflowPromptImageListItem]]:
        """Every prompt image of the organisation."""
        return Call("GET", "/v1/workflows/prompt-images", json_list(WorkflowPromptImageListItem.from_dict))

    list_prompt_images, list_prompt_images_sync = operation(_list_prompt_images)

    def _get_prompt_image_signed_url(self, path: str) -> Call[WorkflowPromptImageSignedUrlResponse]:
        """A fresh temporary URL of a prompt image, by its storage ``path``."""
        return Call(
            "GET",
            _IMAGE + "/signed-url",
            json_body(WorkflowPromptImageSignedUrlResponse.from_dict),
            query={"path": path},
        )

    get_prompt_image_signed_url, get_prompt_image_signed_url_sync = operation(_get_prompt_image_signed_url)

    def _delete_prompt_image(self, path: str, *, idempotency_key: str | None = None) -> Call[None]:
        """Delete a prompt image by its storage ``path``. Success: ``data is None``."""
        return Call(
            "DELETE", _IMAGE, no_content, query={"path": path}, success=204, idempotency_key=idempotency_key
        )

    delete_prompt_image, delete_prompt_image_sync = operation(_delete_prompt_image)

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
