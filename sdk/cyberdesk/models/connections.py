"""Machine connections (the WebSocket sessions of a desktop)."""

from datetime import datetime
from uuid import UUID

from attrs import define, field

from .._types import UNSET, Unset
from ._base import Model, to_uuid
from .enums import ConnectionStatus, UnknownValue


@define(kw_only=True)
class ConnectionCreate(Model):
    websocket_id: str
    machine_id: UUID = field(converter=to_uuid)
    ip_address: str | None | Unset = UNSET
    user_agent: str | None | Unset = UNSET


@define(kw_only=True)
class ConnectionUpdate(Model):
    status: ConnectionStatus | None | Unset = UNSET
    last_ping: datetime | None | Unset = UNSET
    disconnected_at: datetime | None | Unset = UNSET


@define(kw_only=True)
class ConnectionResponse(Model):
    id: UUID
    websocket_id: str
    machine_id: UUID
    connected_at: datetime
    #: The key is required, the value may be null.
    disconnected_at: datetime | None
    last_ping: datetime
    status: ConnectionStatus | UnknownValue
    ip_address: str | None = None
    user_agent: str | None = None
