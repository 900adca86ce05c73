"""Usage of the organisation over a period, and model configurations (which LLM a workflow runs with)."""

from datetime import datetime
from uuid import UUID

from attrs import define

from .._types import UNSET, Unset
from ._base import JSONObject, Model
from .enums import UsageMode


@define(kw_only=True)
class UsageAggregateResponse(Model):
    """Agentic and cached steps summed over the runs of ``[period_start, period_end]``."""

    total_agentic_steps: int
    total_cached_steps: int
    period_start: datetime
    period_end: datetime
    mode: UsageMode
    runs_counted: int


@define(kw_only=True)
class ModelConfigurationCreate(Model):
    name: str
    #: A LangChain provider name, e.g. ``anthropic``, ``openai``.
    provider: str
    model: str
    description: str | None | Unset = UNSET
    temperature: float | None | Unset = UNSET
    max_tokens: int | None | Unset = UNSET
    timeout_seconds: float | None | Unset = UNSET
    max_retries: int | None | Unset = UNSET
    additional_params: JSONObject | None | Unset = UNSET
    agent_harness_version_string: str | None | Unset = UNSET
    is_computer_use_model: bool = False
    is_archived: bool = False
    #: Vaulted by the server; never returned (the response has ``api_key_alias``).
    api_key: str | None | Unset = UNSET


@define(kw_only=True)
class ModelConfigurationUpdate(Model):
    name: str | None | Unset = UNSET
    description: str | None | Unset = UNSET
    provider: str | None | Unset = UNSET
    model: str | None | Unset = UNSET
    api_key: str | None | Unset = UNSET
    #: True drops the stored key (Cyberdesk's own key is used again).
    clear_api_key: bool | None | Unset = UNSET
    temperature: float | None | Unset = UNSET
    max_tokens: int | None | Unset = UNSET
    timeout_seconds: float | None | Unset = UNSET
    max_retries: int | None | Unset = UNSET
    additional_params: JSONObject | None | Unset = UNSET
    agent_harness_version_string: str | None | Unset = UNSET
    is_computer_use_model: bool | None | Unset = UNSET
    is_archived: bool | None | Unset = UNSET


@define(kw_only=True)
class ModelConfigurationResponse(Model):
    name: str
    provider: str
    model: str
    id: UUID
    is_system_default: bool
    created_at: datetime
    updated_at: datetime
    description: str | None = None
    temperature: float | None = None
    max_tokens: int | None = None
    timeout_seconds: float | None = None
    max_retries: int | None = None
    additional_params: JSONObject | None = None
    agent_harness_version_string: str | None = None
    is_computer_use_model: bool = False
    is_archived: bool = False
    organization_id: str | None = None
    api_key_alias: str | None = None
