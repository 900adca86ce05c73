"""/v1/run-attachments: the files of runs (inputs from `file_inputs`, outputs a run exported) and their bytes."""

from __future__ import annotations

from urllib.parse import quote
from uuid import UUID

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from cyberdesk.emulator import serializers as ser
from cyberdesk.emulator.emulator import Emulator
from cyberdesk.emulator.records import Attachment
from cyberdesk.emulator.routes.common import Limit, Skip, json_response, make_router, no_content, route
from cyberdesk.emulator.schemas import AttachmentType, RunAttachmentCreate, RunAttachmentUpdate, decode_base64


class _Routes:
    def __init__(self, em: Emulator) -> None:
        self.em = em

    def one(self, attachment_id: UUID) -> Attachment:
        return self.em.attachments.get(str(attachment_id))

    @route("GET", "")
    async def list_attachments(
        self,
        run_id: UUID | None = None,
        attachment_type: AttachmentType | None = None,
        skip: Skip = 0,
        limit: Limit = 100,
    ) -> Response:
        found = [
            a
            for a in self.em.attachments
            if (run_id is None or a.run_id == str(run_id))
            and (attachment_type is None or a.attachment_type == attachment_type.value)
        ]
        shown = found[skip : skip + limit]
        return json_response(ser.page([ser.attachment(a) for a in shown], len(found), skip, limit))

    @route("POST", "", status_code=201)
    async def create_attachment(self, body: RunAttachmentCreate) -> Response:
        run = self.em.run(str(body.run_id))
        attachment = self.em.attachments.attach(
            run,
            body.filename,
            decode_base64(body.content),
            body.content_type,
            body.attachment_type.value,
            self.em.now(),
            body.target_path,
            body.cleanup_imports_after_run,
            None if body.expires_at is None else body.expires_at.timestamp(),
        )
        return json_response(ser.attachment(attachment), 201)

    @route("GET", "/{attachment_id}")
    async def get_attachment(self, attachment_id: UUID) -> Response:
        return json_response(ser.attachment(self.one(attachment_id)))

    @route("PUT", "/{attachment_id}")
    async def update_attachment(self, attachment_id: UUID, body: RunAttachmentUpdate) -> Response:
        attachment = self.one(attachment_id)
        if "expires_at" in body.model_fields_set:
            attachment.expires_at = None if body.expires_at is None else body.expires_at.timestamp()
        return json_response(ser.attachment(attachment))

    @route("DELETE", "/{attachment_id}", status_code=204)
    async def delete_attachment(self, attachment_id: UUID) -> Response:
        self.em.attachments.delete(str(attachment_id), self.em.world.runs)
        return no_content()

    @route("GET", "/{attachment_id}/download")
    async def download(self, attachment_id: UUID) -> Response:
        attachment = self.one(attachment_id)
        disposition = f"attachment; filename*=UTF-8''{quote(attachment.filename)}"
        return Response(
            attachment.content,
            media_type=attachment.content_type,
            headers={"Content-Disposition": disposition},
        )

    @route("GET", "/{attachment_id}/download-url")
    async def download_url(
        self, attachment_id: UUID, request: Request, expires_in: int = Query(300, ge=10, le=3600)
    ) -> Response:
        # Emulator choice: the "signed" URL is the emulator's own download route (it needs the API key).
        attachment = self.one(attachment_id)
        url = str(request.base_url).rstrip("/") + f"/v1/run-attachments/{attachment.id}/download"
        return json_response({"url": url, "expires_in": expires_in})


def build(em: Emulator) -> APIRouter:
    return make_router(_Routes(em), prefix="/v1/run-attachments", tags=["run attachments"])
