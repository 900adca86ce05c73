"""Identifiers: lowercase UUIDs and secret aliases, reproducible for a given seed."""

from __future__ import annotations

import random
import uuid


class IdFactory:
    """Draws ids from its own RNG so a seeded emulator hands out the same ids every time."""

    def __init__(self, seed: int | None) -> None:
        self._rng = random.Random(None if seed is None else f"ids:{seed}")

    def uuid(self) -> str:
        return str(uuid.UUID(int=self._rng.getrandbits(128), version=4))

    def token(self, prefix: str, nbytes: int = 12) -> str:
        """An opaque alias such as `tok_3f9a...`: what the API shows in place of a secret."""
        return f"{prefix}_{self._rng.getrandbits(nbytes * 8):0{nbytes * 2}x}"
