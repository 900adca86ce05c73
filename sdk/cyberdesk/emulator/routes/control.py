"""/v1/health and /_emulator/*: health, and the control plane of tests and demos (no auth, no faults)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response

from cyberdesk.emulator.emulator import Emulator
from cyberdesk.emulator.errors import NotFound
from cyberdesk.emulator.png import screenshot_png
from cyberdesk.emulator.routes.common import json_response, make_router, route
from cyberdesk.emulator.schemas import AdvanceRequest, FaultsUpdate, WebhookEndpointCreate
from cyberdesk.emulator.storage import PROMPT_IMAGES, RUN_IMAGES, run_image_path

SERVICE_VERSION = "cyberdesk-emulator/1"


class _Routes:
    def __init__(self, em: Emulator) -> None:
        self.em = em
        self.world = em.world

    @route("GET", "/v1/health", tags=["health"])
    async def health(self) -> Response:
        return json_response(
            {"status": "healthy", "service": "cyberdesk-emulator", "version": SERVICE_VERSION}
        )

    @route("GET", "/_emulator/stats", tags=["emulator"])
    async def stats(self) -> Response:
        return json_response(self.em.stats_snapshot())

    @route("GET", "/_emulator/runs", tags=["emulator"])
    async def runs(self) -> Response:
        return json_response({"runs": self.em.timeline(), "overlaps": self.em.overlaps()})

    @route("GET", "/_emulator/faults", tags=["emulator"])
    async def get_faults(self) -> Response:
        return json_response(self.em.faults.settings.as_dict())

    @route("POST", "/_emulator/faults", tags=["emulator"])
    async def set_faults(self, body: FaultsUpdate) -> Response:
        changes = {k: v for k, v in body.model_dump().items() if v is not None}
        return json_response(self.em.set_faults(**changes).as_dict())

    @route("POST", "/_emulator/advance", tags=["emulator"])
    async def advance(self, body: AdvanceRequest) -> Response:
        self.em.advance(body.seconds)
        return json_response(self.em.stats_snapshot()["clock"])

    @route("GET", "/_emulator/webhooks", tags=["emulator"])
    async def webhooks(self) -> Response:
        return json_response(
            {
                "endpoints": [e.url for e in self.em.webhooks.endpoints],
                **self.em.webhooks.counters(),
                "log": list(self.em.webhooks.log),
            }
        )

    @route("POST", "/_emulator/webhooks", tags=["emulator"], status_code=201)
    async def add_webhook(self, body: WebhookEndpointCreate) -> Response:
        try:
            self.em.add_webhook_endpoint(body.url, body.secret)
        except Exception as exc:  # svix rejects a malformed secret with various error types
            return json_response({"detail": f"Invalid webhook secret: {exc}"}, 400)
        return json_response({"endpoints": [e.url for e in self.em.webhooks.endpoints]}, 201)

    @route("GET", "/_emulator/storage/{bucket}/{path:path}", tags=["emulator"])
    async def signed_file(self, bucket: str, path: str, expires: int, signature: str) -> Response:
        """What a signed URL serves: the image, without the API key, until the URL expires."""
        if not self.em.signer.valid(bucket, path, expires, signature, self.em.now()):
            return json_response({"detail": "Invalid or expired signed URL"}, 403)
        if bucket == PROMPT_IMAGES:
            image = self.em.prompt_images.get(path)
            return Response(image.content, media_type=image.content_type)
        run_id = path.split("/")[1] if path.count("/") >= 2 else ""
        run = self.world.runs.get(run_id)
        if bucket != RUN_IMAGES or run is None:
            raise NotFound("File not found")
        run_image_path(run, f"supabase://{RUN_IMAGES}/{path}")
        return Response(screenshot_png(), media_type="image/png")


def build(em: Emulator) -> APIRouter:
    return make_router(_Routes(em))
