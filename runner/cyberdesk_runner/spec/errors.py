"""Errors that point at a place in a source file: `jobs/claims.yaml:7:5: retry.backoff: message`."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

__all__ = ["JobFileError", "SpecError", "display_path"]


@dataclass(frozen=True)
class SpecError:
    """One problem in a job, config or data file. `line`/`column` are 1-based; None when not known."""

    file: Path
    line: int | None
    column: int | None
    field_path: str
    message: str

    @property
    def location(self) -> str:
        """`jobs/claims.yaml:7:5`, or less when line or column are not known."""
        where = display_path(self.file)
        if self.line is not None:
            where += f":{self.line}"
            if self.column is not None:
                where += f":{self.column}"
        return where

    def __str__(self) -> str:
        prefix = f"{self.location}: {self.field_path}" if self.field_path else self.location
        return f"{prefix}: {self.message}"


class JobFileError(Exception):
    """A job (or config) file could not be loaded; `errors` holds every problem found, in file order."""

    def __init__(self, errors: Iterable[SpecError]) -> None:
        self.errors = sorted(errors, key=_sort_key)
        super().__init__("\n".join(str(error) for error in self.errors))


def display_path(path: Path) -> str:
    """`path` relative to the working directory when it lies below it (shorter, clickable in terminals)."""
    if path.is_absolute():
        try:
            return str(path.relative_to(Path.cwd()))
        except ValueError:
            pass
    return str(path)


def _sort_key(error: SpecError) -> tuple[str, int, int, str]:
    return (str(error.file), error.line or 0, error.column or 0, error.field_path)
