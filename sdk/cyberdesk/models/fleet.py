"""Machines (desktops) and the pools that group them."""

from datetime import datetime
from typing import Any
from uuid import UUID

from attrs import define, field

from .._types import UNSET, Unset
from ._base import JSONObject, Model, to_opt_uuid, to_uuid_list
from .common import IncludedResource
from .enums import MachineStatus, UnknownValue


@define(kw_only=True)
class PoolCreate(Model):
    name: str
    description: str | None | Unset = UNSET
    #: Input values that auto-populate runs selecting this pool.
    pool_parameters: dict[str, Any] | None | Unset = UNSET
    #: Real secret values; the server vaults them and returns aliases.
    pool_sensitive_parameters: dict[str, str] | None | Unset = UNSET


@define(kw_only=True)
class PoolUpdate(Model):
    """Partial update: only given fields change; ``{}`` clears the parameters."""

    name: str | None | Unset = UNSET
    description: str | None | Unset = UNSET
    pool_parameters: dict[str, Any] | None | Unset = UNSET
    pool_sensitive_parameters: dict[str, str] | None | Unset = UNSET


@define(kw_only=True)
class PoolResponse(Model):
    id: UUID
    name: str
    organization_id: str
    created_at: datetime
    updated_at: datetime
    description: str | None = None
    pool_parameters: JSONObject | None = None
    pool_sensitive_parameters: dict[str, str] | None = None
    machine_count: int | None = 0


@define(kw_only=True)
class MachineCreate(Model):
    fingerprint: str
    unkey_key_id: str
    name: str | None | Unset = UNSET
    version: str | None | Unset = UNSET
    hostname: str | None | Unset = UNSET
    os_info: str | None | Unset = UNSET
    #: Desktop parameters: merged into runs on this machine, overriding run-level input values.
    machine_parameters: dict[str, Any] | None | Unset = UNSET
    #: Real secret values; the server vaults them and returns aliases.
    machine_sensitive_parameters: dict[str, str] | None | Unset = UNSET


@define(kw_only=True)
class MachineUpdate(Model):
    """Partial update. ``reserved_session_id=None`` clears the reservation (and cancels the machine's active run);
    ``{}`` clears the parameters."""

    name: str | None | Unset = UNSET
    version: str | None | Unset = UNSET
    hostname: str | None | Unset = UNSET
    os_info: str | None | Unset = UNSET
    status: MachineStatus | None | Unset = UNSET
    is_available: bool | None | Unset = UNSET
    alerts_enabled: bool | None | Unset = UNSET
    last_seen: datetime | None | Unset = UNSET
    reserved_session_id: UUID | None | Unset = field(default=UNSET, converter=to_opt_uuid)
    machine_parameters: dict[str, Any] | None | Unset = UNSET
    machine_sensitive_parameters: dict[str, str] | None | Unset = UNSET


@define(kw_only=True)
class MachineResponse(Model):
    id: UUID
    unkey_key_id: str
    status: MachineStatus | UnknownValue
    is_available: bool
    alerts_enabled: bool
    created_at: datetime
    last_seen: datetime
    name: str | None = None
    version: str | None = None
    hostname: str | None = None
    os_info: str | None = None
    machine_parameters: JSONObject | None = None
    #: Aliases of the vaulted secrets, not their values.
    machine_sensitive_parameters: dict[str, str] | None = None
    user_id: UUID | None = None
    organization_id: str | None = None
    reserved_session_id: UUID | None = None
    linked_keepalive_machine_id: UUID | None = None
    physical_server_id: str | None = None
    pools: list[PoolResponse] | None = None


@define(kw_only=True)
class MachineResponseWithIncludes(MachineResponse):
    included: list[IncludedResource] | None = None


@define(kw_only=True)
class MachinePoolUpdate(Model):
    """Replaces all pool assignments of a machine."""

    pool_ids: list[UUID] = field(converter=to_uuid_list)


@define(kw_only=True)
class MachinePoolAssignment(Model):
    machine_ids: list[UUID] = field(converter=to_uuid_list)


@define(kw_only=True)
class PoolResponseWithIncludes(PoolResponse):
    #: Deprecated by the API in favour of ``include=["machines"]``.
    machines: list[MachineResponse] | None = None
    included: list[IncludedResource] | None = None


@define(kw_only=True)
class PoolWithMachines(PoolResponse):
    machines: list[MachineResponse] = field(factory=list)
