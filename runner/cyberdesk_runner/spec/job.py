"""`LoadedJob`: a validated job together with where it came from."""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from cyberdesk_runner.spec.errors import SpecError
from cyberdesk_runner.spec.models import JobSpec
from cyberdesk_runner.spec.yamlpos import NodePos, YamlPath, format_path

__all__ = ["LoadedJob"]


@dataclass(frozen=True)
class LoadedJob:
    """A job file that passed validation.

    `definition_hash` changes when the job's meaning changes (the validated spec, defaults included, plus
    the items file's content) and not for whitespace or comment edits.
    """

    spec: JobSpec = field(hash=False)  # pydantic models holding dicts are not hashable
    path: Path
    definition_hash: str
    source: str = field(repr=False, hash=False)
    positions: Mapping[YamlPath, NodePos] = field(default_factory=dict, repr=False, compare=False)

    @property
    def name(self) -> str:
        return self.spec.name

    def resolve_path(self, relative: str) -> Path:
        """A path written in the job file, resolved against the job file's folder."""
        return self.path.parent / Path(relative).expanduser()

    @property
    def items_path(self) -> Path | None:
        return self.resolve_path(self.spec.items_from) if self.spec.items_from is not None else None

    def error_at(self, path: Sequence[Hashable], message: str) -> SpecError:
        """A SpecError pointing at the value at `path` in this job file (or its closest parent)."""
        found: YamlPath = ()
        for part in path:
            if (*found, part) not in self.positions:
                break
            found = (*found, part)
        pos = self.positions.get(found)
        line, column = (pos.line, pos.column) if pos is not None else (None, None)
        return SpecError(self.path, line, column, format_path(path), message)
