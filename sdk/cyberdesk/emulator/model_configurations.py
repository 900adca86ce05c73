"""Model configurations: the organisation's own plus the system defaults every organisation sees.

Documented: system defaults cannot be changed or deleted; an `api_key` is vaulted and shown only as
`api_key_alias`; `clear_api_key` drops it. Emulator choices: two system defaults with fixed ids, and a change or
delete of one is a 403.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

from cyberdesk.emulator.errors import EmulatorError, NotFound
from cyberdesk.emulator.ids import IdFactory
from cyberdesk.emulator.records import ModelConfiguration
from cyberdesk.emulator.state import World

_SYSTEM_DEFAULTS = (
    ("Claude Sonnet (system default)", "anthropic", "claude-sonnet-4-5"),
    ("GPT (system default)", "openai", "gpt-4.1"),
)
# Settings a configuration keeps besides its name, provider and model (all in the response shape).
SETTINGS = (
    "description",
    "temperature",
    "max_tokens",
    "timeout_seconds",
    "max_retries",
    "additional_params",
    "agent_harness_version_string",
    "is_computer_use_model",
    "is_archived",
)
_DEFAULT_SETTINGS: dict[str, Any] = {s: None for s in SETTINGS} | {
    "is_computer_use_model": False,
    "is_archived": False,
}


class Forbidden(EmulatorError):
    status_code = 403


class ModelConfigurations:
    def __init__(self, ids: IdFactory, world: World, now: float) -> None:
        self.ids = ids
        self.world = world
        self.by_id: dict[str, ModelConfiguration] = {}
        for name, provider, model in _SYSTEM_DEFAULTS:
            # Fixed ids that draw nothing from the seeded id stream (the ids of everything else stay put).
            config_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"cyberdesk-emulator:model:{name}"))
            settings = {**_DEFAULT_SETTINGS, "is_computer_use_model": True, "api_key_alias": None}
            self.by_id[config_id] = ModelConfiguration(
                config_id, name, provider, model, now, now, True, settings
            )

    def get(self, config_id: str) -> ModelConfiguration:
        found = self.by_id.get(config_id)
        if found is None:
            raise NotFound("Model configuration not found")
        return found

    def create(
        self, name: str, provider: str, model: str, fields: Mapping[str, Any], api_key: str | None, now: float
    ) -> ModelConfiguration:
        settings = {**_DEFAULT_SETTINGS, **{k: v for k, v in fields.items() if k in SETTINGS}}
        settings["api_key_alias"] = self._vault(api_key)
        config = ModelConfiguration(self.ids.uuid(), name, provider, model, now, now, False, settings)
        self.by_id[config.id] = config
        return config

    def update(
        self, config: ModelConfiguration, changes: Mapping[str, Any], now: float
    ) -> ModelConfiguration:
        self._owned(config)
        for attr in ("name", "provider", "model"):
            if changes.get(attr) is not None:
                setattr(config, attr, changes[attr])
        for attr in SETTINGS:
            if attr in changes and (changes[attr] is not None or attr not in _NOT_NULL):
                config.settings[attr] = changes[attr]
        if changes.get("clear_api_key") or changes.get("api_key") is not None:
            self.world.vault_drop({"api_key": config.settings.get("api_key_alias") or ""})
            config.settings["api_key_alias"] = self._vault(changes.get("api_key"))
        config.updated_at = now
        return config

    def delete(self, config_id: str) -> None:
        config = self._owned(self.get(config_id))
        self.world.vault_drop({"api_key": config.settings.get("api_key_alias") or ""})
        del self.by_id[config_id]

    def _vault(self, api_key: str | None) -> str | None:
        aliases = self.world.vault_put(None if api_key is None else {"api_key": api_key})
        return None if aliases is None else aliases["api_key"]

    @staticmethod
    def _owned(config: ModelConfiguration) -> ModelConfiguration:
        if config.is_system_default:
            raise Forbidden("System default model configurations cannot be modified or deleted")
        return config


_NOT_NULL = frozenset({"is_computer_use_model", "is_archived"})
