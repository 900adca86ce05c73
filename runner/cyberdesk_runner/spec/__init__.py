"""Job files (`jobs/*.yaml`, one job each) -> validated `JobSpec`s, with file:line:col errors.

Public API: `load_jobs`, `load_job_file`, `load_items`, `resolve_sensitive_inputs`, `build_trigger`,
and the models. The JSON Schema lives in `cyberdesk_runner.spec.schema` (not imported here, so that
`python -m cyberdesk_runner.spec.schema` runs cleanly).

The names below are imported from their modules on first use: the config file shares the YAML reader and the
error messages (yamlpos, diagnostics), and a command that only loads its config (`fires`, `show F`) does not
pay for the job models, APScheduler's triggers and the items readers before its first line.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from cyberdesk_runner.spec.errors import JobFileError, SpecError
    from cyberdesk_runner.spec.items import load_items, read_data_file
    from cyberdesk_runner.spec.job import LoadedJob
    from cyberdesk_runner.spec.loader import JobLoadResult, job_files, load_job_file, load_jobs
    from cyberdesk_runner.spec.models import JobSpec, RetryableStatus, RetryPolicy, SensitiveRef, Target
    from cyberdesk_runner.spec.schedule import ScheduleEntry, build_trigger
    from cyberdesk_runner.spec.sensitive import SensitiveValues, resolve_sensitive_inputs

#: Each public name -> the module of this package that defines it.
_MODULES = {
    "JobFileError": "errors",
    "SpecError": "errors",
    "load_items": "items",
    "read_data_file": "items",
    "LoadedJob": "job",
    "JobLoadResult": "loader",
    "job_files": "loader",
    "load_job_file": "loader",
    "load_jobs": "loader",
    "JobSpec": "models",
    "RetryableStatus": "models",
    "RetryPolicy": "models",
    "SensitiveRef": "models",
    "Target": "models",
    "ScheduleEntry": "schedule",
    "build_trigger": "schedule",
    "SensitiveValues": "sensitive",
    "resolve_sensitive_inputs": "sensitive",
}

__all__ = [
    "JobFileError",
    "JobLoadResult",
    "JobSpec",
    "LoadedJob",
    "RetryPolicy",
    "RetryableStatus",
    "ScheduleEntry",
    "SensitiveRef",
    "SensitiveValues",
    "SpecError",
    "Target",
    "build_trigger",
    "job_files",
    "load_items",
    "load_job_file",
    "load_jobs",
    "read_data_file",
    "resolve_sensitive_inputs",
]


def __getattr__(name: str) -> Any:
    module = _MODULES.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value  # the next lookup is a plain one
    return value
