"""/v1/model-configurations: the organisation's LLM settings, next to the system defaults."""

from __future__ import annotations

from uuid import UUID

from fastapi import APIRouter
from fastapi.responses import Response

from cyberdesk.emulator import serializers as ser
from cyberdesk.emulator.emulator import Emulator
from cyberdesk.emulator.routes.common import json_response, make_router, no_content, route
from cyberdesk.emulator.schemas import ModelConfigurationCreate, ModelConfigurationUpdate


class _Routes:
    def __init__(self, em: Emulator) -> None:
        self.em = em
        self.configs = em.model_configurations

    @route("GET", "")
    async def list_model_configurations(self) -> Response:
        # System defaults first, then the organisation's own, oldest first.
        ordered = sorted(self.configs.by_id.values(), key=lambda c: (not c.is_system_default, c.created_at))
        return json_response([ser.model_configuration(c) for c in ordered])

    @route("POST", "", status_code=201)
    async def create_model_configuration(self, body: ModelConfigurationCreate) -> Response:
        fields = body.model_dump(exclude={"name", "provider", "model", "api_key"})
        config = self.configs.create(
            body.name, body.provider, body.model, fields, body.api_key, self.em.now()
        )
        return json_response(ser.model_configuration(config), 201)

    @route("GET", "/{model_configuration_id}")
    async def get_model_configuration(self, model_configuration_id: UUID) -> Response:
        return json_response(ser.model_configuration(self.configs.get(str(model_configuration_id))))

    @route("PATCH", "/{model_configuration_id}")
    async def update_model_configuration(
        self, model_configuration_id: UUID, body: ModelConfigurationUpdate
    ) -> Response:
        changes = {f: getattr(body, f) for f in body.model_fields_set}
        config = self.configs.update(self.configs.get(str(model_configuration_id)), changes, self.em.now())
        return json_response(ser.model_configuration(config))

    @route("DELETE", "/{model_configuration_id}", status_code=204)
    async def delete_model_configuration(self, model_configuration_id: UUID) -> Response:
        self.configs.delete(str(model_configuration_id))
        return no_content()


def build(em: Emulator) -> APIRouter:
    return make_router(_Routes(em), prefix="/v1/model-configurations", tags=["model configurations"])
