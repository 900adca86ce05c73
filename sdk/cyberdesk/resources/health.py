"""``client.health``: the API's basic health check."""

from typing import Any

from .._operation import Call, Resource, json_body, operation
from ..models import ModelError


def _strings(data: Any) -> dict[str, str]:
    if not isinstance(data, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in data.items()
    ):
        raise ModelError("expected an object of strings")
    return data


class Health(Resource):
    def _check(self) -> Call[dict[str, str]]:
        """``GET /v1/health``: a free-form object of strings (e.g. ``{"status": "healthy"}``)."""
        return Call("GET", "/v1/health", json_body(_strings))

    check, check_sync = operation(_check)
