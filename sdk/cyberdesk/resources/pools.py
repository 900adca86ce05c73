"""``client.pools``: groups of machines, with pool-level run defaults."""

from collections.abc import Sequence
from uuid import UUID

import ijson

from .._operation import (
    Call,
    ParseChunks,
    Query,
    Resource,
    csv,
    ids,
    json_body,
    no_content,
    operation,
    page_of,
)
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
        pool's answer is parsed as it arrives, without a model, a dict or even a whole document of it (a
        10,000-machine pool: a 5 MB answer, about 17 MB at its peak as models, under 2 MB this way)."""
        return Call(
            "GET",
            _ONE,
            ParseChunks(_MachineIds),
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


#: JSON's name of each kind of top-level value ijson reports, for the error of an answer that is no object.
_KINDS = {
    "start_array": "array",
    "string": "string",
    "number": "number",
    "boolean": "boolean",
    "null": "null",
}
#: The top-level keys whose arrays list a pool's machines: the deprecated ``machines``, and ``included`` (of
#: which only the resources of type ``machine``).
_LISTS = frozenset({"machines", "included"})


class _MachineIds:
    """Machine ids (canonical, in the answer's order, once each) from a pool's answer, parsed as it arrives by
    ijson's C parser: what is kept of each machine is its id, and of the answer, 64 KB at a time (a whole
    10,000-machine answer, 5 MB of JSON, peaked at 8 MB decoded whole, cut down to ids as it was parsed).

    ijson reports each value with its path (``included.item.id``); a path counts only under a top-level key
    that holds an array, so that no key with a dot in it (``{"included.item": {"id": ...}}``) nor an object
    where an array belongs (``{"included": {"item": ...}}``) passes for a machine."""

    def __init__(self) -> None:
        self._events = ijson.sendable_list()
        self._parser = ijson.parse_coro(self._events)
        self._found: dict[str, None] = {}
        self._started = False
        #: The top-level key being read, and ``<key>.item`` while that key holds one of `_LISTS`' arrays.
        self._key: str | None = None
        self._item: str | None = None
        #: The machine being read: its ``id`` (any JSON value) and ``type``.
        self._in_item = False
        self._id: object = None
        self._type: object = None

    def feed(self, chunk: bytes) -> None:
        self._send(chunk)

    def result(self) -> list[str]:
        self._send(None)  # the end of the body: a document cut short is an error
        return list(self._found)

    def _send(self, chunk: bytes | None) -> None:
        try:
            if chunk is None:
                self._parser.close()
            else:
                self._parser.send(chunk)
        except ijson.JSONError as exc:
            # Only yajl's first line: the next ones quote the answer, which may hold a machine's secrets.
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise ModelError(f"malformed JSON: {reason}") from None
        try:
            for prefix, event, value in self._events:
                self._take(prefix, event, value)
        finally:
            del self._events[:]

    def _take(self, prefix: str, event: str, value: object) -> None:
        item = self._item
        if item is not None and prefix.startswith(item):
            if prefix == item:
                if event == "start_map":
                    self._in_item, self._id, self._type = True, None, None
                elif event == "end_map":
                    self._in_item = False
                    self._end_item()
            elif self._in_item:
                field = prefix[len(item) :]
                if field == ".id":
                    self._id = value if event == "string" else None
                elif field == ".type":
                    self._type = value
        elif prefix == "":
            self._top(event, value)
        elif prefix == self._key and event == "start_array" and self._key in _LISTS:
            self._item = f"{prefix}.item"

    def _top(self, event: str, value: object) -> None:
        if not self._started:
            if event != "start_map":
                raise ModelError(f"expected an object, got {_KINDS.get(event, event)}")
            self._started = True
        elif event == "map_key":
            self._key, self._item = str(value), None

    def _end_item(self) -> None:
        if self._key == "included" and self._type != "machine":
            return
        if not isinstance(self._id, str):
            raise ModelError("a machine without an id", (str(self._key),))
        self._found[str(UUID(self._id))] = (
            None  # a malformed id: ValueError, a `decode` error as from a model
        )
