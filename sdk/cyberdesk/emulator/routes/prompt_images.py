"""/v1/workflows/prompt-image(s): images to embed in prompts (upload, list, signed URL, delete).

Mounted in the /v1/workflows router ahead of `/{workflow_id}`, whose UUID would otherwise swallow these paths.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, File, Query, Request, UploadFile
from fastapi.responses import Response

from cyberdesk.emulator.clock import iso
from cyberdesk.emulator.emulator import Emulator
from cyberdesk.emulator.routes.common import json_response, make_router, no_content, route
from cyberdesk.emulator.storage import MAX_PROMPT_IMAGE_BYTES, PROMPT_IMAGES, reference

# The upload's signed URL lives an hour, as the real API's does by default.
_UPLOAD_URL_SECONDS = 3600


class _Routes:
    def __init__(self, em: Emulator) -> None:
        self.em = em
        self.images = em.prompt_images

    def signed(self, request: Request, path: str, seconds: int) -> str:
        expires = int(self.em.now()) + seconds
        return self.em.signer.url(str(request.base_url), PROMPT_IMAGES, path, expires)

    @route("POST", "/prompt-image", status_code=201)
    async def upload_prompt_image(self, request: Request, file: Annotated[UploadFile, File()]) -> Response:
        # One byte past the limit is enough for `upload` to refuse a larger file without reading all of it.
        content = await file.read(MAX_PROMPT_IMAGE_BYTES + 1)
        image = self.images.upload(file.filename, content, self.em.now())
        body = {
            "supabase_url": reference(PROMPT_IMAGES, image.path),
            "signed_url": self.signed(request, image.path, _UPLOAD_URL_SECONDS),
            "filename": image.filename,
            "content_type": image.content_type,
            "size_bytes": len(image.content),
        }
        return json_response(body, 201)

    @route("GET", "/prompt-images")
    async def list_prompt_images(self) -> Response:
        items = [
            {
                "supabase_url": reference(PROMPT_IMAGES, i.path),
                "path": i.path,
                "filename": i.filename,
                "created_at": iso(i.created_at),
                "size_bytes": len(i.content),
            }
            for i in sorted(self.images.by_path.values(), key=lambda i: (i.created_at, i.path))
        ]
        return json_response(items)

    @route("GET", "/prompt-image/signed-url")
    async def prompt_image_signed_url(self, request: Request, path: str = Query(min_length=1)) -> Response:
        image = self.images.get(_path_of(path))
        return json_response(
            {
                "supabase_url": reference(PROMPT_IMAGES, image.path),
                "signed_url": self.signed(request, image.path, _UPLOAD_URL_SECONDS),
                "expires_in": _UPLOAD_URL_SECONDS,
            }
        )

    @route("DELETE", "/prompt-image", status_code=204)
    async def delete_prompt_image(self, path: str = Query(min_length=1)) -> Response:
        self.images.delete(_path_of(path))
        return no_content()


def _path_of(path: str) -> str:
    """A storage path, given bare or as its `supabase://workflow-prompt-images/...` reference."""
    prefix = reference(PROMPT_IMAGES, "")
    return path[len(prefix) :] if path.startswith(prefix) else path


def build(em: Emulator) -> APIRouter:
    return make_router(_Routes(em), prefix="/v1/workflows", tags=["workflows"])
