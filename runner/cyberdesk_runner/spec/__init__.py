"""Job files (`jobs/*.yaml`, one job each) -> validated `JobSpec`s, with file:line:col errors.

Public API: `load_jobs`, `load_job_file`, `load_items`, `resolve_sensitive_inputs`, `build_trigger`,
and the models. The JSON Schema lives in `cyberdesk_runner.spec.schema` (not imported here, so that
`python -m cyberdesk_runner.spec.schema` runs cleanly).
"""

from cyberdesk_runner.spec.errors import JobFileError, SpecError
from cyberdesk_runner.spec.items import load_items, read_data_file
from cyberdesk_runner.spec.job import LoadedJob
from cyberdesk_runner.spec.loader import JobLoadResult, job_files, load_job_file, load_jobs
from cyberdesk_runner.spec.models import JobSpec, RetryableStatus, RetryPolicy, SensitiveRef, Target
from cyberdesk_runner.spec.schedule import ScheduleEntry, build_trigger
from cyberdesk_runner.spec.sensitive import SensitiveValues, resolve_sensitive_inputs

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
