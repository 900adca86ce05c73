"""The desktops the API knows, and which of them a job's target selects.

Desktops are listed once per refresh (one paged list call with their pools), not per job or per item.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import attrs


@attrs.frozen
class Desktop:
    id: str
    name: str | None
    params: Mapping[str, Any]
    pool_ids: frozenset[str]
    pool_names: frozenset[str]
    connected: bool

    @property
    def label(self) -> str:
        return self.name or self.id


@attrs.frozen
class TargetSpec:
    """What a job's `target` says, independent of how job files are parsed."""

    pool: str | None = None
    machines: Sequence[str] | None = None
    match: Mapping[str, Any] | None = None


class Fleet:
    """A snapshot of the desktops, replaced whole on every refresh."""

    def __init__(self, desktops: Iterable[Desktop] = ()) -> None:
        self.desktops: dict[str, Desktop] = {d.id: d for d in desktops}

    def __len__(self) -> int:
        return len(self.desktops)

    def get(self, desktop_id: str) -> Desktop | None:
        return self.desktops.get(desktop_id)

    def select(self, target: TargetSpec) -> list[Desktop]:
        """Every desktop the target selects (connected or not), in a stable order.

        The selectors combine with AND: `pool` and `machines` and `match` must all hold when given.
        """
        chosen = sorted(self.desktops.values(), key=lambda d: (d.label, d.id))
        if target.pool is not None:
            chosen = [d for d in chosen if target.pool in d.pool_ids or target.pool in d.pool_names]
        if target.machines is not None:
            wanted = set(target.machines)
            chosen = [d for d in chosen if d.id in wanted or (d.name is not None and d.name in wanted)]
        if target.match:
            chosen = [d for d in chosen if _matches(d.params, target.match)]
        return chosen


def _matches(params: Mapping[str, Any], match: Mapping[str, Any]) -> bool:
    for key, expected in match.items():
        if key not in params:
            return False
        accepted = expected if isinstance(expected, list | tuple | set | frozenset) else [expected]
        if not any(_same(params[key], a) for a in accepted):
            return False
    return True


def _same(actual: Any, expected: Any) -> bool:
    # Desktop parameters come back from the API as JSON; YAML may have typed `site: 7` as an int.
    return bool(actual == expected or str(actual) == str(expected))
