"""Job files -> `LoadedJob`s, collecting every error with its file:line:col."""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

from pydantic import ValidationError

from cyberdesk_runner.spec.diagnostics import describe, validation_errors
from cyberdesk_runner.spec.errors import JobFileError, SpecError, display_path
from cyberdesk_runner.spec.files import template_names
from cyberdesk_runner.spec.items import check_data_file, input_columns
from cyberdesk_runner.spec.job import LoadedJob
from cyberdesk_runner.spec.models import JobSpec
from cyberdesk_runner.spec.yamlpos import NodePos, YamlPath, parse_yaml, read_source

__all__ = ["JOB_FILE_SUFFIXES", "JobLoadResult", "job_files", "load_job_file", "load_jobs", "read_source"]

JOB_FILE_SUFFIXES = (".yaml", ".yml")
_SECRET_PATHS = [("sensitive_inputs",)]  # a literal there is probably the secret: never quote it


@dataclass(frozen=True)
class JobLoadResult:
    """The jobs that loaded (by name) and the errors of those that did not. One bad file never hides the
    others, so the daemon can keep running the good jobs."""

    jobs: dict[str, LoadedJob] = field(default_factory=dict)
    errors: list[SpecError] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors


def job_files(folder: Path) -> list[Path]:
    """The job files of `folder` (not recursive: `jobs/data/` holds data), in name order. Files starting
    with `.` or `_` are skipped, so a job can be disabled by renaming it."""
    return sorted(
        path
        for path in folder.iterdir()
        if path.suffix.lower() in JOB_FILE_SUFFIXES
        and not path.name.startswith((".", "_"))
        and path.is_file()
    )


def load_jobs(folder: Path) -> JobLoadResult:
    """Load every job file of `folder`. Jobs sharing a name are all rejected (which one to run is unclear)."""
    if not folder.is_dir():
        return JobLoadResult({}, [SpecError(folder, None, None, "", "jobs folder not found")])
    loaded: list[LoadedJob] = []
    errors: list[SpecError] = []
    for path in job_files(folder):
        try:
            loaded.append(load_job_file(path))
        except JobFileError as exc:
            errors.extend(exc.errors)
    by_name: defaultdict[str, list[LoadedJob]] = defaultdict(list)
    for job in loaded:
        by_name[job.name].append(job)
    jobs: dict[str, LoadedJob] = {}
    for name, same in by_name.items():
        if len(same) == 1:
            jobs[name] = same[0]
            continue
        for job in same:
            others = ", ".join(other.error_at(("name",), "").location for other in same if other is not job)
            errors.append(job.error_at(("name",), f"duplicate job name {name!r}, also used by {others}"))
    errors.extend(_after_errors(jobs))
    return JobLoadResult(jobs, sorted(errors, key=_error_order))


def _after_errors(jobs: dict[str, LoadedJob]) -> list[SpecError]:
    """`after:` must name a loaded job and never come back to itself; the jobs of a cycle are all rejected,
    each error naming every file and line of the cycle. Jobs after a rejected job are kept: they never fire."""
    errors: list[SpecError] = []
    upstream = {name: job.spec.after.job for name, job in jobs.items() if job.spec.after is not None}
    for name, target in upstream.items():
        if target not in jobs:
            errors.append(jobs[name].error_at(("after", "job"), f"no job is named {target!r}"))
    in_cycle: set[str] = set()
    for start in upstream:
        path, node = [start], upstream.get(start)
        while node is not None and node in jobs and node not in path and node not in in_cycle:
            path.append(node)
            node = upstream.get(node)
        if node is None or node in in_cycle or node not in path:
            continue
        cycle = path[path.index(node) :]
        in_cycle.update(cycle)
        places = [jobs[n].error_at(("after", "job"), "") for n in cycle]
        described = " -> ".join(f"{n} ({p.location})" for n, p in zip(cycle, places, strict=True))
        for n in cycle:
            errors.append(
                jobs[n].error_at(
                    ("after", "job"), f"jobs fire each other in a cycle: {described} -> {cycle[0]}"
                )
            )
    for name in in_cycle:
        del jobs[name]
    return errors


def load_job_file(path: Path) -> LoadedJob:
    """Load and validate one job file, including its items file; raises JobFileError with every problem."""
    source = read_source(path)
    spec, positions = _validated(path, source)
    job = LoadedJob(spec, path, "", source, positions)
    items_hash = ""
    if job.items_path is not None:
        items_hash = check_data_file(job.items_path, job)  # errors now rather than at the first fire
    if spec.files:
        _check_file_templates(job)
    return replace(job, definition_hash=_definition_hash(spec, items_hash))


#: The last text of each job file that validated, with what it gave. The daemon reloads its job files every few
#: seconds; YAML with positions is parsed in pure Python, so only a text that changed is parsed again.
_VALIDATED: dict[Path, tuple[str, JobSpec, Mapping[YamlPath, NodePos]]] = {}
_VALIDATED_KEPT = 1024


def _validated(path: Path, source: str) -> tuple[JobSpec, Mapping[YamlPath, NodePos]]:
    """The job of one file's text (a frozen JobSpec) and where each of its values is; raises JobFileError."""
    known = _VALIDATED.get(path)
    if known is not None and known[0] == source:
        return known[1], known[2]
    doc = parse_yaml(source, path)
    if doc.data is None:
        raise JobFileError(
            [SpecError(path, 1, 1, "", "empty file: expected a job with name, workflow and target")]
        )
    if not isinstance(doc.data, dict):
        pos = doc.positions[()]
        raise JobFileError(
            [
                SpecError(
                    path,
                    pos.line,
                    pos.column,
                    "",
                    f"expected a mapping of job settings, got {describe(doc.data)}",
                )
            ]
        )
    try:
        spec = JobSpec.model_validate(doc.data)
    except ValidationError as exc:
        errors = validation_errors(exc, doc, path, JobSpec, _SECRET_PATHS)
        if not {"workflow", "steps"} & set(doc.data) and not any(e.field_path == "workflow" for e in errors):
            # The model's own check (workflow or steps) runs only once every field is valid: say it now.
            pos = doc.positions[()]
            missing = "required key is missing (or give steps)"
            errors.append(SpecError(path, pos.line, pos.column, "workflow", missing))
        raise JobFileError(errors) from None
    _VALIDATED.pop(path, None)
    _VALIDATED[path] = (source, spec, doc.positions)
    while len(_VALIDATED) > _VALIDATED_KEPT:
        del _VALIDATED[next(iter(_VALIDATED))]
    return spec, doc.positions


def _check_file_templates(job: LoadedJob) -> None:
    """Every name a `files:` path uses is an input each item has (`validate` and the daemon say so at load)."""
    columns = input_columns(job)
    if columns is None:
        return
    errors = []
    for index, file in enumerate(job.spec.files):
        missing = [name for name in template_names(file.path) if name not in columns]
        if missing:
            known = ", ".join(sorted(columns)) or "none"
            source = "the items file's columns" if job.items_path is not None else "the inputs of every item"
            errors.append(
                job.error_at(
                    ("files", index, "path"),
                    f"{', '.join(f'{{{m}}}' for m in missing)} is not among {source} (known: {known})",
                )
            )
    if errors:
        raise JobFileError(errors)


def _definition_hash(spec: JobSpec, items_hash: str) -> str:
    canonical = json.dumps(
        spec.model_dump(mode="json"), sort_keys=True, separators=(",", ":"), ensure_ascii=False
    )
    return hashlib.sha256(f"{canonical}\n{items_hash}".encode()).hexdigest()


def _error_order(error: SpecError) -> tuple[str, int, int]:
    return (display_path(error.file), error.line or 0, error.column or 0)
