"""``client.connections``: the WebSocket connections of machines."""

from uuid import UUID

from .._operation import (
    Call,
    Query,
    Resource,
    ids,
    json_body,
    no_content,
    operation,
    opt_uuid_arg,
    page_of,
)
from ..models import ConnectionCreate, ConnectionResponse, ConnectionStatus, ConnectionUpdate, Page
from ..pagination import paginated

_ONE = "/v1/connections/{connection_id}"


class Connections(Resource):
    def _get(self, connection_id: UUID | str) -> Call[ConnectionResponse]:
        return Call(
            "GET",
            _ONE,
            json_body(ConnectionResponse.from_dict),
            path_params=ids(connection_id=connection_id),
        )

    get, get_sync = operation(_get)

    def _create(
        self, data: ConnectionCreate, *, idempotency_key: str | None = None
    ) -> Call[ConnectionResponse]:
        return Call(
            "POST",
            "/v1/connections",
            json_body(ConnectionResponse.from_dict),
            body=data,
            success=201,
            idempotency_key=idempotency_key,
        )

    create, create_sync = operation(_create)

    def _update(
        self, connection_id: UUID | str, data: ConnectionUpdate, *, idempotency_key: str | None = None
    ) -> Call[ConnectionResponse]:
        return Call(
            "PATCH",
            _ONE,
            json_body(ConnectionResponse.from_dict),
            path_params=ids(connection_id=connection_id),
            body=data,
            idempotency_key=idempotency_key,
        )

    update, update_sync = operation(_update)

    def _delete(self, connection_id: UUID | str, *, idempotency_key: str | None = None) -> Call[None]:
        """Success: ``data is None``."""
        return Call(
            "DELETE",
            _ONE,
            no_content,
            path_params=ids(connection_id=connection_id),
            success=204,
            idempotency_key=idempotency_key,
        )

    delete, delete_sync = operation(_delete)

    def _list(
        self,
        skip: int | None = None,
        limit: int | None = None,
        machine_id: UUID | str | None = None,
        status: ConnectionStatus | None = None,
    ) -> Call[Page[ConnectionResponse]]:
        query: Query = {
            "skip": skip,
            "limit": limit,
            "machine_id": opt_uuid_arg("machine_id", machine_id),
            "status": status,
        }
        return Call("GET", "/v1/connections", page_of(ConnectionResponse.from_dict), query=query)

    list, list_sync = operation(_list)
    iter, iter_sync = paginated(_list)
