"""Webhook event payloads: the raw body of a delivery is the event object itself (no envelope)."""

from datetime import datetime
from uuid import UUID

from attrs import define

from .._types import UNSET, Unset
from ._base import Model
from .enums import MachineStatus, UnknownValue
from .runs import RunResponse


@define(kw_only=True)
class RunCompletedWebhookRunPayload(RunResponse):
    """Field for field a ``RunResponse`` (so ``cast(RunResponse, evt.run)`` is honest)."""


@define(kw_only=True)
class RunCompletedEvent(Model):
    """The ``run_complete`` event."""

    run: RunCompletedWebhookRunPayload
    #: For idempotent handling of redeliveries.
    event_id: UUID | Unset = UNSET
    event_type: str = "run_complete"
    occurred_at: datetime | Unset = UNSET


@define(kw_only=True)
class DownedMachine(Model):
    machine_id: UUID
    organization_id: str
    status: MachineStatus | UnknownValue
    last_seen: datetime
    reason: str
    name: str | None = None


@define(kw_only=True)
class DownedMachinesEvent(Model):
    """The ``downed_machines`` event: machines that currently appear down."""

    organization_id: str
    machines: list[DownedMachine]
    event_id: UUID | Unset = UNSET
    event_type: str = "downed_machines"
    occurred_at: datetime | Unset = UNSET


@define(kw_only=True)
class UnknownWebhookEvent(Model):
    """An event of a type this SDK does not know (added to Cyberdesk after this version): accept the delivery,
    then ignore it or read its fields from ``additional_properties``."""

    event_type: UnknownValue
