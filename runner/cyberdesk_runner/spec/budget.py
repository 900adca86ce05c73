"""The `budget:` job key: how much one fire may spend before it stops creating runs (`store/usage.py` applies it)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["Budget"]


class Budget(BaseModel):
    """Spending limits of one fire, counted from its runs' usage as they end."""

    model_config = ConfigDict(extra="forbid", frozen=True, title="Budget")

    tokens_per_fire: int = Field(
        ge=1,
        description="Once a fire's runs have used more tokens than this, its items still waiting fail (the "
        "fire stops creating runs, records why and fails; runs in flight finish).",
        examples=[500_000],
    )
