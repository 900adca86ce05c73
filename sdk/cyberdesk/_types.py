"""The ``UNSET`` sentinel: "not given", as opposed to an explicit ``None`` (sent as JSON ``null``)."""

import enum
from typing import Final, Literal


class _UnsetType(enum.Enum):
    # An enum member so that ``x is UNSET`` narrows types under mypy.
    UNSET = "UNSET"

    def __bool__(self) -> bool:
        return False

    def __repr__(self) -> str:
        return "UNSET"


UNSET: Final = _UnsetType.UNSET
Unset = Literal[_UnsetType.UNSET]

__all__ = ["UNSET", "Unset"]
