"""``client.usage`` (what the organisation's runs used) and ``client.model_configurations`` (the LLMs runs use)."""

from datetime import datetime
from uuid import UUID

from .._operation import Call, Resource, ids, json_body, json_list, no_content, operation
from ..models import (
    ModelConfigurationCreate,
    ModelConfigurationResponse,
    ModelConfigurationUpdate,
    UsageAggregateResponse,
    UsageMode,
)


class Usage(Resource):
    def _aggregate(
        self, from_date: datetime, to_date: datetime, mode: UsageMode | None = None
    ) -> Call[UsageAggregateResponse]:
        """Agentic and cached steps of the runs created in ``[from_date, to_date]`` (both inclusive).
        ``mode``: ``simulated`` (the server's default; infrastructure failures are free) or ``billed``."""
        return Call(
            "GET",
            "/v1/usage/aggregate",
            json_body(UsageAggregateResponse.from_dict),
            query={"from_date": from_date, "to_date": to_date, "mode": mode},
        )

    aggregate, aggregate_sync = operation(_aggregate)


_MODEL = "/v1/model-configurations/{model_configuration_id}"


class ModelConfigurations(Resource):
    def _create(
        self, data: ModelConfigurationCreate, *, idempotency_key: str | None = None
    ) -> Call[ModelConfigurationResponse]:
        """A configuration of the organisation; an ``api_key`` is vaulted (the response shows its alias)."""
        return Call(
            "POST",
            "/v1/model-configurations",
            json_body(ModelConfigurationResponse.from_dict),
            body=data,
            success=201,
            idempotency_key=idempotency_key,
        )

    create, create_sync = operation(_create)

    def _get(self, model_configuration_id: UUID | str) -> Call[ModelConfigurationResponse]:
        return Call(
            "GET",
            _MODEL,
            json_body(ModelConfigurationResponse.from_dict),
            path_params=ids(model_configuration_id=model_configuration_id),
        )

    get, get_sync = operation(_get)

    def _update(
        self,
        model_configuration_id: UUID | str,
        data: ModelConfigurationUpdate,
        *,
        idempotency_key: str | None = None,
    ) -> Call[ModelConfigurationResponse]:
        """Partial update of the organisation's own configuration (system defaults cannot change)."""
        return Call(
            "PATCH",
            _MODEL,
            json_body(ModelConfigurationResponse.from_dict),
            path_params=ids(model_configuration_id=model_configuration_id),
            body=data,
            idempotency_key=idempotency_key,
        )

    update, update_sync = operation(_update)

    def _delete(
        self, model_configuration_id: UUID | str, *, idempotency_key: str | None = None
    ) -> Call[None]:
        """Delete the organisation's own configuration. Success: ``data is None``."""
        return Call(
            "DELETE",
            _MODEL,
            no_content,
            path_params=ids(model_configuration_id=model_configuration_id),
            success=204,
            idempotency_key=idempotency_key,
        )

    delete, delete_sync = operation(_delete)

    def _list(self) -> Call[list[ModelConfigurationResponse]]:
        """The system defaults and the organisation's own configurations."""
        return Call("GET", "/v1/model-configurations", json_list(ModelConfigurationResponse.from_dict))

    list, list_sync = operation(_list)
