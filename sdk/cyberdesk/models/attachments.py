"""Run attachments: files pushed to a desktop before a run (``input``) and files a run exported (``output``)."""

from datetime import datetime
from uuid import UUID

from attrs import define, field

from .._types import UNSET, Unset
from ._base import Model, to_uuid
from .enums import AttachmentType


@define(kw_only=True)
class RunAttachmentCreate(Model):
    """An attachment of an existing run (``content`` is base64); the API calls this "primarily internal"."""

    run_id: UUID = field(converter=to_uuid)
    filename: str
    content: str
    content_type: str
    attachment_type: AttachmentType
    target_path: str | None | Unset = UNSET
    cleanup_imports_after_run: bool = False
    expires_at: datetime | None | Unset = UNSET


@define(kw_only=True)
class RunAttachmentUpdate(Model):
    expires_at: datetime | None | Unset = UNSET


@define(kw_only=True)
class RunAttachmentResponse(Model):
    """An attachment's metadata (the bytes come from ``download``)."""

    id: UUID
    run_id: UUID
    filename: str
    content_type: str
    attachment_type: AttachmentType
    size_bytes: int
    storage_path: str
    created_at: datetime
    target_path: str | None = None
    cleanup_imports_after_run: bool = False
    user_id: UUID | None = None
    organization_id: str | None = None
    expires_at: datetime | None = None


@define(kw_only=True)
class RunAttachmentDownloadUrlResponse(Model):
    url: str
    expires_in: int
