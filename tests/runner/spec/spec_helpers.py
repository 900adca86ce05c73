"""Shared by the job-file tests (a uniquely named module: `import conftest` could find another one)."""

from __future__ import annotations

from cyberdesk_runner.spec import SpecError

ErrorTuple = tuple[str, int | None, int | None, str, str]

VALID_HEAD = """\
name: claims
workflow: Submit insurance claim
target: {pool: claims-team}
"""


def as_tuples(errors: list[SpecError]) -> list[ErrorTuple]:
    """(file name, line, column, field path, message) of each error, for exact assertions."""
    return [(e.file.name, e.line, e.column, e.field_path, e.message) for e in errors]
