"""``client.pools``: groups of machines, with pool-level run defaults."""

from collections.abc import Sequence
from typing import Any
from uuid import UUID

import httpx

from .._operation import Call, Query, Resource, csv, ids, json_body, no_content, operation, page_of
from ..models import (
    MachinePoolAssignment,
    ModelError,
    Page,
    PoolCreate,
    PoolResponse,
    PoolResponseWithIncludes,
    PoolUpdate,
    PoolWithMachines,
)
from ..pagination import paginated

_ONE = "/v1/pools/{pool_id}"


class Pools(Resource):
    def _get(
        self,
        pool_id: UUID | str,
        include_machines: bool | None = None,
        *,
        include: Sequence[str] | None = None,
    ) -> Call[PoolResponseWithIncludes]:
        """Get one pool; ``include``: ``["machines"]`` (``include_machines=True`` is the deprecated form that
        puts the machines in the pool's ``machines``)."""
        return Call(
            "GET",
            _ONE,
            json_body(PoolResponseWithIncludes.from_dict),
            path_params=ids(pool_id=pool_id),
            query={"include_machines": include_machines, "include": csv(include)},
        )

    get, get_sync = operation(_get)

    def _get_machine_ids(self, pool_id: UUID | str) -> Call[list[str]]:
        """The ids of the pool's machines (``get`` with ``include=["machines"]``), and nothing else of them: a big
        pool's answer is read without a model, or a dict of every field, of each machine (a 10,000-machine pool:
        a 5 MB answer, about 17 MB at its peak as models, about 8 MB this way)."""
        return Call(
            "GET",
            _ONE,
            _machine_ids,
            path_params=ids(pool_id=pool_id),
            query={"include": "machines"},
        )

    get_machine_ids, get_machine_ids_sync = operation(_get_machine_ids)

    def _create(self, data: PoolCreate, *, idempotency_key: str | None = None) -> Call[PoolResponse]:
        return Call(
            "POST",
            "/v1/pools",
            json_body(PoolResponse.from_dict),
            body=data,
            success=201,
            idempotency_key=idempotency_key,
        )

    create, create_sync = operation(_create)

    def _update(
        self, pool_id: UUID | str, data: PoolUpdate, *, idempotency_key: str | None = None
    ) -> Call[PoolResponse]:
        return Call(
            "PATCH",
            _ONE,
            json_body(PoolResponse.from_dict),
            path_params=ids(pool_id=pool_id),
            body=data,
            idempotency_key=idempotency_key,
        )

    update, update_sync = operation(_update)

    def _delete(self, pool_id: UUID | str, *, idempotency_key: str | None = None) -> Call[None]:
        """Delete a pool (not its machines). Success: ``data is None``."""
        return Call(
            "DELETE",
            _ONE,
            no_content,
            path_params=ids(pool_id=pool_id),
            success=204,
            idempotency_key=idempotency_key,
        )

    delete, delete_sync = operation(_delete)

    def _add_machines(
        self, pool_id: UUID | str, data: MachinePoolAssignment, *, idempotency_key: str | None = None
    ) -> Call[PoolWithMachines]:
        return Call(
            "POST",
            _ONE + "/machines",
            json_body(PoolWithMachines.from_dict),
            path_params=ids(pool_id=pool_id),
            body=data,
            idempotency_key=idempotency_key,
        )

    add_machines, add_machines_sync = operation(_add_machines)

    def _remove_machines(
        self, pool_id: UUID | str, data: MachinePoolAssignment, *, idempotency_key: str | None = None
    ) -> Call[None]:
        """Remove machines from a pool (a DELETE with a JSON body). Success: ``data is None``."""
        return Call(
            "DELETE",
            _ONE + "/machines",
            no_content,
            path_params=ids(pool_id=pool_id),
            body=data,
            success=204,
            idempotency_key=idempotency_key,
        )

    remove_machines, remove_machines_sync = operation(_remove_machines)

    def _list(
        self, skip: int | None = None, limit: int | None = None, *, include: Sequence[str] | None = None
    ) -> Call[Page[PoolResponse]]:
        """List pools; ``include``: ``["machines"]``."""
        query: Query = {"skip": skip, "limit": limit, "include": csv(include)}
        return Call("GET", "/v1/pools", page_of(PoolResponse.from_dict), query=query)

    list, list_sync = operation(_list)
    iter, iter_sync = paginated(_list)


#: The keys `get_machine_ids` reads: every object of the answer is cut down to these as soon as it is parsed.
_ID_KEYS = frozenset({"id", "type", "machines", "included"})


def _only_id_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    return {key: value for key, value in pairs if key in _ID_KEYS}


def _machine_ids(response: httpx.Response) -> list[str]:
    """Machine ids (canonical, in the answer's order, once each) from a pool's ``included`` resources of type
    ``machine`` and from its deprecated ``machines``."""
    pool = response.json(object_pairs_hook=_only_id_keys)
    if not isinstance(pool, dict):
        raise ModelError(f"expected an object, got {type(pool).__name__}")
    machines = [m for m in pool.get("machines") or () if isinstance(m, dict)]
    machines += [r for r in pool.get("included") or () if isinstance(r, dict) and r.get("type") == "machine"]
    found: dict[str, None] = {}
    for machine in machines:
        machine_id = machine.get("id")
        if not isinstance(machine_id, str):
            raise ModelError("a machine without an id", ("included",))
        found[str(UUID(machine_id))] = None  # a malformed id: ValueError, a `decode` error as from a model
    return list(found)
