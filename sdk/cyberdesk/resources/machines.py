"""``client.machines``: desktops, their parameters, pools and session reservation."""

from collections.abc import Sequence
from datetime import datetime
from uuid import UUID

from .._operation import (
    Call,
    Resource,
    csv,
    ids,
    json_body,
    json_list,
    no_content,
    operation,
    page_of,
)
from ..models import (
    MachineCreate,
    MachinePoolUpdate,
    MachineResponse,
    MachineResponseWithIncludes,
    MachineStatus,
    MachineUpdate,
    Page,
    PoolResponse,
)
from ..pagination import paginated

_ONE = "/v1/machines/{machine_id}"


class Machines(Resource):
    def _get(
        self, machine_id: UUID | str, *, include: Sequence[str] | None = None
    ) -> Call[MachineResponseWithIncludes]:
        """Get one machine; ``include``: ``["pools"]``."""
        return Call(
            "GET",
            _ONE,
            json_body(MachineResponseWithIncludes.from_dict),
            path_params=ids(machine_id=machine_id),
            query={"include": csv(include)},
        )

    get, get_sync = operation(_get)

    def _create(self, data: MachineCreate, *, idempotency_key: str | None = None) -> Call[MachineResponse]:
        """Register a machine."""
        return Call(
            "POST",
            "/v1/machines",
            json_body(MachineResponse.from_dict),
            body=data,
            success=201,
            idempotency_key=idempotency_key,
        )

    create, create_sync = operation(_create)

    def _update(
        self, machine_id: UUID | str, data: MachineUpdate, *, idempotency_key: str | None = None
    ) -> Call[MachineResponse]:
        """Partial update (desktop parameters included: ``{}`` clears them)."""
        return Call(
            "PATCH",
            _ONE,
            json_body(MachineResponse.from_dict),
            path_params=ids(machine_id=machine_id),
            body=data,
            idempotency_key=idempotency_key,
        )

    update, update_sync = operation(_update)

    def _clear_session(
        self, machine_id: UUID | str, *, idempotency_key: str | None = None
    ) -> Call[MachineResponse]:
        """Clear the machine's session reservation: the server cancels its active run and marks it available."""
        return self._update(
            machine_id, MachineUpdate(reserved_session_id=None), idempotency_key=idempotency_key
        )

    clear_session, clear_session_sync = operation(_clear_session)

    def _delete(self, machine_id: UUID | str, *, idempotency_key: str | None = None) -> Call[None]:
        """Delete a machine (its runs are kept, with ``machine_id`` set to null). Success: ``data is None``."""
        return Call(
            "DELETE",
            _ONE,
            no_content,
            path_params=ids(machine_id=machine_id),
            success=204,
            idempotency_key=idempotency_key,
        )

    delete, delete_sync = operation(_delete)

    def _get_pools(self, machine_id: UUID | str) -> Call[list[PoolResponse]]:
        """The pools this machine belongs to."""
        return Call(
            "GET",
            _ONE + "/pools",
            json_list(PoolResponse.from_dict),
            path_params=ids(machine_id=machine_id),
        )

    get_pools, get_pools_sync = operation(_get_pools)

    def _update_pools(
        self, machine_id: UUID | str, data: MachinePoolUpdate, *, idempotency_key: str | None = None
    ) -> Call[MachineResponse]:
        """Replace all of the machine's pool assignments."""
        return Call(
            "PUT",
            _ONE + "/pools",
            json_body(MachineResponse.from_dict),
            path_params=ids(machine_id=machine_id),
            body=data,
            idempotency_key=idempotency_key,
        )

    update_pools, update_pools_sync = operation(_update_pools)

    def _list(
        self,
        skip: int | None = None,
        limit: int | None = None,
        status: MachineStatus | None = None,
        *,
        search: str | None = None,
        name: str | None = None,
        created_at_from: datetime | str | None = None,
        created_at_to: datetime | str | None = None,
        include: Sequence[str] | None = None,
    ) -> Call[Page[MachineResponse]]:
        """List machines. ``search``: substring of id/name/hostname; ``name``: exact; ``include``: ``["pools"]``."""
        return Call(
            "GET",
            "/v1/machines",
            page_of(MachineResponse.from_dict),
            query={
                "skip": skip,
                "limit": limit,
                "status": status,
                "search": search,
                "name": name,
                "created_at_from": created_at_from,
                "created_at_to": created_at_to,
                "include": csv(include),
            },
        )

    list, list_sync = operation(_list)
    iter, iter_sync = paginated(_list)
