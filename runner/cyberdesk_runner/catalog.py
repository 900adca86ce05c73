"""The jobs the daemon runs: the last good version of every job file, with its workflow resolved.

A job file that breaks keeps its previous good version running (the error is reported with file:line);
a removed job is retired: nothing new starts, but its retry policy stays known while its runs finish.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import attrs

from cyberdesk_runner.fleet import TargetSpec
from cyberdesk_runner.outcome import RetryPolicy
from cyberdesk_runner.references import resolve_workflow
from cyberdesk_runner.spec import LoadedJob, SpecError, load_jobs
from cyberdesk_runner.store.records import JobDefinition

_NO_RETRY = RetryPolicy()


@attrs.frozen
class ActiveJob:
    loaded: LoadedJob
    #: The (first step's) workflow id; None until resolved.
    workflow_id: str | None = None
    #: Why the workflow could not be resolved (unknown name, ambiguous name); fires fail with it.
    workflow_error: str | None = None
    #: Every step's workflow id in order (one entry for a single-workflow job).
    workflow_ids: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        return self.loaded.spec.name

    @property
    def target(self) -> TargetSpec:
        t = self.loaded.spec.target
        return TargetSpec(pool=t.pool, machines=t.machines, match=t.match)

    @property
    def retry(self) -> RetryPolicy:
        r = self.loaded.spec.retry
        return RetryPolicy(
            max_attempts=r.max_attempts,
            backoff=r.backoff,
            max_backoff=r.max_backoff,
            on=frozenset(str(s) for s in r.on),
        )

    def definition(self) -> JobDefinition:
        return JobDefinition(
            name=self.name,
            definition_hash=self.loaded.definition_hash,
            definition=self.loaded.spec.model_dump(mode="json"),
            source_path=str(self.loaded.path),
        )


@attrs.define
class CatalogChange:
    added: list[str] = attrs.Factory(list)
    changed: list[str] = attrs.Factory(list)
    removed: list[str] = attrs.Factory(list)
    #: Errors of this reload; the jobs they concern keep their previous good version.
    errors: list[SpecError] = attrs.Factory(list)

    def __bool__(self) -> bool:
        return bool(self.added or self.changed or self.removed)


class JobCatalog:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.jobs: dict[str, ActiveJob] = {}
        self.errors: list[SpecError] = []
        #: Removed jobs, remembered while their runs finish (retry policy, sensitive inputs of settling creates).
        self._retired: dict[str, ActiveJob] = {}

    def reload(self) -> CatalogChange:
        result = load_jobs(self.folder)
        change = CatalogChange(errors=list(result.errors))
        broken_files = {Path(e.file).resolve() for e in result.errors if e.file}
        fresh: dict[str, ActiveJob] = {}
        for name, loaded in result.jobs.items():
            previous = self.jobs.get(name)
            if previous is not None and previous.loaded.definition_hash == loaded.definition_hash:
                fresh[name] = previous
                continue
            if previous is not None and previous.loaded.spec.workflows == loaded.spec.workflows:
                fresh[name] = attrs.evolve(previous, loaded=loaded)
            else:
                fresh[name] = ActiveJob(loaded)
            self._retired.pop(name, None)
            (change.changed if previous is not None else change.added).append(name)
        for name, previous in self.jobs.items():
            if name in fresh:
                continue
            if previous.loaded.path.resolve() in broken_files and previous.loaded.path.exists():
                fresh[name] = previous  # the file broke: keep running its last good version
                continue
            change.removed.append(name)
            self._retired[name] = previous
        self.jobs = fresh
        self.errors = change.errors
        return change

    def get(self, name: str) -> ActiveJob | None:
        return self.jobs.get(name)

    def find(self, name: str) -> ActiveJob | None:
        """The job, or its last version if it was removed."""
        return self.jobs.get(name) or self._retired.get(name)

    def retry_policy(self, name: str) -> RetryPolicy:
        job = self.find(name)
        return job.retry if job is not None else _NO_RETRY

    def definitions(self) -> list[JobDefinition]:
        return [job.definition() for job in self.jobs.values()]

    def resolve_workflows(self, workflows: Mapping[str, str | None]) -> list[str]:
        """Resolve each job's `workflow` (a name or an id) against `workflows` (id -> name).

        Returns the names of jobs whose resolution changed, so callers can record it.
        """
        changed = []
        for name, job in self.jobs.items():
            resolved = resolved_job(job, workflows)
            if resolved != job:
                self.jobs[name] = resolved
                changed.append(name)
        return changed


def resolved_job(job: ActiveJob, workflows: Mapping[str, str | None]) -> ActiveJob:
    """`job` with its workflow (or each step's) resolved against `workflows` (id -> name), or the reason why not."""
    refs = job.loaded.spec.workflows
    resolved = [resolve_workflow(ref, workflows) for ref in refs]
    errors = [error for _, error in resolved if error is not None]
    if len(refs) > 1:
        errors = [f"step {i + 1}: {error}" for i, (_, error) in enumerate(resolved) if error is not None]
    error = "; ".join(errors) or None
    ids = () if error else tuple(str(wf_id) for wf_id, _ in resolved)
    workflow_id = ids[0] if ids else None
    if (workflow_id, error, ids) == (job.workflow_id, job.workflow_error, job.workflow_ids):
        return job
    return attrs.evolve(job, workflow_id=workflow_id, workflow_error=error, workflow_ids=ids)
