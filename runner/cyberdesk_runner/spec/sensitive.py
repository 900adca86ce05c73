"""Sensitive inputs: references in the job file, resolved to values only at dispatch time."""

from __future__ import annotations

import os
from collections.abc import Mapping

from cyberdesk_runner.spec.errors import JobFileError, SpecError, display_path
from cyberdesk_runner.spec.job import LoadedJob
from cyberdesk_runner.spec.models import SensitiveRef

__all__ = ["SensitiveValues", "resolve_sensitive_inputs"]


class SensitiveValues(dict[str, str]):
    """Resolved sensitive inputs: a plain `dict[str, str]` for the API call, but its repr and str never
    show the values, so logging it (or an object holding it) leaks nothing. `dict(values)` or `.copy()`
    give an ordinary dict again: only do that at the API boundary."""

    def __repr__(self) -> str:
        return "SensitiveValues({" + ", ".join(f"{name!r}: '***'" for name in self) + "})"

    __str__ = __repr__


def resolve_sensitive_inputs(
    job: LoadedJob, environ: Mapping[str, str] | None = None, *, step: int | None = None
) -> SensitiveValues:
    """Read every sensitive input of `job` (or of its step number `step`, 0-based) from its environment
    variable or file.

    Raises JobFileError listing every input that cannot be resolved; messages name the input and the
    variable or path, never a value. A file's single trailing newline is dropped.
    """
    env = os.environ if environ is None else environ
    values = SensitiveValues()
    errors: list[SpecError] = []
    refs = job.spec.sensitive_inputs if step is None else (job.spec.steps or ())[step].sensitive_inputs
    where: tuple[str | int, ...] = () if step is None else ("steps", step)
    for name, ref in refs.items():
        value, problem = _read(job, ref, env)
        if problem is not None:
            key = "env" if ref.env is not None else "file"
            errors.append(job.error_at((*where, "sensitive_inputs", name, key), problem))
        elif value is not None:
            values[name] = value
    if errors:
        raise JobFileError(errors)
    return values


def _read(job: LoadedJob, ref: SensitiveRef, env: Mapping[str, str]) -> tuple[str | None, str | None]:
    """(value, None) or (None, problem)."""
    if ref.env is not None:
        if ref.env not in env:
            return None, f"environment variable {ref.env} is not set"
        if not env[ref.env]:
            return None, f"environment variable {ref.env} is empty"
        return env[ref.env], None
    assert ref.file is not None
    path = job.resolve_path(ref.file)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None, f"file not found: {display_path(path)}"
    except UnicodeDecodeError:
        return None, f"file {display_path(path)} is not UTF-8 text"
    except OSError as exc:
        return None, f"cannot read file {display_path(path)} ({exc.strerror})"
    text = text.removesuffix("\n").removesuffix("\r")
    if not text:
        return None, f"file {display_path(path)} is empty"
    return text, None
