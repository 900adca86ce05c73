"""/v1/runs: create (single, bulk, chain), list with filters, get, patch, delete, retry in place."""

from __future__ import annotations

import json
from datetime import datetime
from itertools import islice
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from cyberdesk.emulator import serializers as ser
from cyberdesk.emulator.attachments import FileUpload
from cyberdesk.emulator.emulator import Emulator
from cyberdesk.emulator.errors import NotFound
from cyberdesk.emulator.records import ACTIVE_STATUSES, Run, Trajectory
from cyberdesk.emulator.routes.common import (
    Limit,
    Skip,
    in_range,
    includes,
    json_response,
    make_router,
    no_content,
    route,
)
from cyberdesk.emulator.schemas import (
    FileInput,
    RunBulkCreate,
    RunCreate,
    RunField,
    RunListSortMode,
    RunRetry,
    RunStatus,
    RunUpdate,
    WorkflowChainCreate,
)
from cyberdesk.emulator.storage import RUN_IMAGES, run_image_path


def _ids(values: list[UUID] | None) -> list[str] | None:
    return None if values is None else [str(v) for v in values]


def _opt(value: UUID | None) -> str | None:
    return None if value is None else str(value)


def _model_metadata(
    metadata: dict[str, Any] | None, main_agent_model_id: UUID | None
) -> dict[str, Any] | None:
    if main_agent_model_id is None:
        return metadata
    return {**(metadata or {}), "main_agent_model_id": str(main_agent_model_id)}


def _uploads(files: list[FileInput] | None) -> list[FileUpload]:
    return [FileUpload(f.filename, f.data(), f.target_path, f.cleanup_imports_after_run) for f in files or ()]


def _activity_key(run: Run) -> tuple[int, float, int]:
    # Active work first (newest first), then completions (most recently ended first).
    if run.status in ACTIVE_STATUSES:
        return (0, -run.created_at, -run.seq)
    return (1, -(run.ended_at or run.created_at), -run.seq)


def _matches_search(run: Run, needle: str) -> bool:
    haystack = [run.id, run.session_alias or ""]
    for value in (run.input_values, run.output_data, run.error):
        if value is not None:
            haystack.append(json.dumps(value))
    lowered = needle.lower()
    return any(lowered in h.lower() for h in haystack)


class _Routes:
    def __init__(self, em: Emulator) -> None:
        self.em = em
        self.world = em.world

    def included_for(self, runs: list[Run], wanted: set[str]) -> list[ser.JSON] | None:
        if not wanted:
            return None
        seen: dict[tuple[str, str], ser.JSON] = {}
        now = self.em.now()
        for run in runs:
            workflow = self.world.workflows.get(run.workflow_id)
            if "workflow" in wanted and workflow is not None:
                seen.setdefault(("workflow", workflow.id), ser.included("workflow", ser.workflow(workflow)))
            machine = self.world.machines.get(run.machine_id or "")
            if machine is None:
                continue
            if "machine" in wanted or "machine.pools" in wanted:
                seen.setdefault(("machine", machine.id), ser.included("machine", ser.machine(machine, now)))
            if "machine.pools" in wanted:
                for pool in self.world.pools_of(machine):
                    seen.setdefault(("pool", pool.id), ser.included("pool", ser.pool(pool)))
        return list(seen.values())

    def candidates(
        self,
        status: RunStatus | None,
        workflow_id: UUID | None,
        machine_id: UUID | None,
        session_id: UUID | None,
    ) -> list[Run] | None:
        """Runs of the smallest matching index, or None when no indexed filter is given."""
        buckets = []
        if status is not None:
            buckets.append(self.world.runs_by_status.get(status.value, {}))
        if workflow_id is not None:
            buckets.append(self.world.runs_by_workflow.get(str(workflow_id), {}))
        if machine_id is not None:
            buckets.append(self.world.runs_by_machine.get(str(machine_id), {}))
        if session_id is not None:
            buckets.append(self.world.runs_by_session.get(str(session_id), {}))
        if not buckets:
            return None
        return [self.world.runs[i] for i in min(buckets, key=len)]

    @route("GET", "")
    async def list_runs(
        self,
        status: RunStatus | None = None,
        workflow_id: UUID | None = None,
        machine_id: UUID | None = None,
        session_id: UUID | None = None,
        created_at_from: datetime | None = None,
        created_at_to: datetime | None = None,
        search: str | None = None,
        deep_search: bool = False,  # noqa: ARG002 - always sent by the client; there is no message history
        sort_mode: RunListSortMode = RunListSortMode.activity,
        fields: Annotated[list[RunField] | None, Query()] = None,
        include: str | None = None,
        skip: Skip = 0,
        limit: Limit = 100,
    ) -> Response:
        pool = self.candidates(status, workflow_id, machine_id, session_id)
        plain = created_at_from is None and created_at_to is None and not search
        if pool is None and plain and sort_mode is RunListSortMode.created_at_desc:
            # Runs are stored in creation order: newest-first pages need no sort at all.
            total = len(self.world.runs)
            shown = [self.world.runs[i] for i in islice(reversed(self.world.runs), skip, skip + limit)]
        else:
            found = [
                r
                for r in (pool if pool is not None else self.world.runs.values())
                if (status is None or r.status == status.value)
                and (workflow_id is None or r.workflow_id == str(workflow_id))
                and (machine_id is None or r.machine_id == str(machine_id))
                and (session_id is None or r.session_id == str(session_id))
                and in_range(r.created_at, created_at_from, created_at_to)
                and (not search or _matches_search(r, search))
            ]
            if sort_mode is RunListSortMode.created_at_desc:
                found.sort(key=lambda r: (r.created_at, r.seq), reverse=True)
            else:
                found.sort(key=_activity_key)
            total = len(found)
            shown = found[skip : skip + limit]
        if fields:
            names = [f.value for f in fields]
            items = [ser.run_projection(r, names) for r in shown]
        else:
            items = [ser.run(r) for r in shown]
        return json_response(
            ser.page_with_includes(items, total, skip, limit, self.included_for(shown, includes(include)))
        )

    @route("POST", "", status_code=201)
    async def create_run(self, body: RunCreate, request: Request) -> Response:
        # Read from the request rather than declared as a Header parameter: cheaper on the hottest route.
        idempotency_key = request.headers.get("idempotency-key")
        run = self.em.create_run(
            str(body.workflow_id),
            machine_id=_opt(body.machine_id),
            pool_ids=_ids(body.pool_ids),
            input_values=body.input_values,
            sensitive_input_values=body.sensitive_input_values,
            is_priority=body.is_priority,
            main_prompt=body.main_prompt,
            model_metadata=_model_metadata(body.model_metadata, body.main_agent_model_id),
            session_id=_opt(body.session_id),
            start_session=bool(body.start_session),
            session_alias=body.session_alias,
            release_session_after=body.release_session_after,
            idempotency_key=idempotency_key,
            file_inputs=_uploads(body.file_inputs),
        )
        return json_response(ser.run(run), 201)

    @route("POST", "/bulk", status_code=201)
    async def bulk_create(self, body: RunBulkCreate) -> Response:
        self.em.check_refs(str(body.workflow_id), _opt(body.machine_id), _ids(body.pool_ids))
        # One shared session for all runs: the first to be placed reserves the desktop.
        session_id = _opt(body.session_id) or (self.em.ids.uuid() if body.start_session else None)
        uploads = _uploads(body.file_inputs)
        runs = [
            self.em.create_run(
                str(body.workflow_id),
                machine_id=_opt(body.machine_id),
                pool_ids=_ids(body.pool_ids),
                input_values=body.input_values,
                sensitive_input_values=body.sensitive_input_values,
                is_priority=body.is_priority,
                session_id=session_id,
                file_inputs=uploads,
            )
            for _ in range(body.count)
        ]
        return json_response(
            {"created_runs": [ser.run(r) for r in runs], "failed_count": 0, "errors": []}, 201
        )

    @route("POST", "/chain", status_code=201)
    async def chain(self, body: WorkflowChainCreate) -> Response:
        for step in body.steps:
            self.em.check_refs(str(step.workflow_id), _opt(body.machine_id), _ids(body.pool_ids))
        session_id = _opt(body.session_id)
        starting = session_id is None
        run_ids: list[str] = []
        # Emulator choice: the shared files go to every step's run (each step may run after a cleanup).
        uploads = _uploads(body.shared_file_inputs)
        last = len(body.steps) - 1
        for i, step in enumerate(body.steps):
            first_new = starting and i == 0
            run = self.em.create_run(
                str(step.workflow_id),
                # Only the step that opens the session picks the desktop; machine_id beats pool_ids.
                machine_id=_opt(body.machine_id) if first_new else None,
                pool_ids=_ids(body.pool_ids) if first_new and body.machine_id is None else None,
                input_values={**(body.shared_inputs or {}), **(step.inputs or {})} or None,
                sensitive_input_values={
                    **(body.shared_sensitive_inputs or {}),
                    **(step.sensitive_inputs or {}),
                }
                or None,
                is_priority=body.is_priority,
                session_id=session_id,
                start_session=first_new,
                session_alias=step.session_alias,
                release_session_after=(i == last and not body.keep_session_after_completion) or None,
                file_inputs=uploads,
            )
            session_id = run.session_id
            run_ids.append(run.id)
            run.chain = run_ids  # one list shared by every step: filled as the loop goes
        return json_response({"session_id": session_id, "run_ids": run_ids}, 201)

    @route("GET", "/{run_id}")
    async def get_run(self, run_id: UUID, include: str | None = None) -> Response:
        run = self.em.run(str(run_id))
        body = ser.run(run)
        extra = self.included_for([run], includes(include))
        if extra is not None:
            body["included"] = extra
        return json_response(body)

    @route("PATCH", "/{run_id}")
    async def update_run(self, run_id: UUID, body: RunUpdate) -> Response:
        run = self.em.run(str(run_id))
        given = body.model_fields_set
        for attr in (
            "output_attachment_ids",
            "run_message_history",
            "input_values",
            "usage_metadata",
            "post_run_checks",
            "release_session_after",
        ):
            if attr in given:
                setattr(run, attr, getattr(body, attr))
        if body.started_at is not None:
            run.started_at = body.started_at.timestamp()
        if body.status is not None:
            error = body.error if "error" in given else run.error
            output = body.output_data if "output_data" in given else run.output_data
            self.em.end_run(run, body.status.value, error, output)
        else:
            if "error" in given:
                run.error = body.error
            if "output_data" in given:
                run.output_data = body.output_data
        if body.ended_at is not None:
            run.ended_at = body.ended_at.timestamp()
        return json_response(ser.run(run))

    @route("DELETE", "/{run_id}", status_code=204)
    async def delete_run(self, run_id: UUID) -> Response:
        self.em.delete_run(str(run_id))
        return no_content()

    @route("POST", "/{run_id}/retry")
    async def retry_run(self, run_id: UUID, body: RunRetry) -> Response:
        given = body.model_fields_set
        extra: dict[str, Any] = {}
        if "session_alias" in given:
            extra["session_alias"] = body.session_alias
        if "release_session_after" in given:
            extra["release_session_after"] = body.release_session_after
        run = self.em.retry_run(
            str(run_id),
            input_values=body.input_values,
            sensitive_input_values=body.sensitive_input_values,
            machine_id=_opt(body.machine_id),
            pool_ids=_ids(body.pool_ids),
            reuse_session=body.reuse_session is not False,
            session_id=_opt(body.session_id),
            start_session=bool(body.start_session),
            is_priority=body.is_priority,
            file_inputs=None if body.file_inputs is None else _uploads(body.file_inputs),
            **extra,
        )
        return json_response(ser.run(run))

    def latest_trajectory(self, run_id: UUID) -> Trajectory:
        run = self.em.run(str(run_id))
        latest = max(
            (t for t in self.world.trajectories.values() if t.run_id == run.id),
            key=lambda t: t.updated_at,
            default=None,
        )
        if latest is None:
            raise NotFound("No trajectory found for this run")
        return latest

    @route("GET", "/{run_id}/trajectory")
    async def run_trajectory(self, run_id: UUID) -> Response:
        return json_response(ser.trajectory(self.latest_trajectory(run_id)))

    @route("POST", "/{run_id}/generate-trajectory")
    async def generate_trajectory(self, run_id: UUID) -> Response:
        latest = self.latest_trajectory(run_id)
        latest.is_generated = True
        latest.updated_at = self.em.now()
        return json_response(ser.trajectory(latest))

    @route("GET", "/{run_id}/image/signed-url")
    async def image_signed_url(
        self,
        run_id: UUID,
        request: Request,
        image_url: str = Query(min_length=1),
        expires_in: int = Query(3600, ge=10, le=3600),
    ) -> Response:
        path = run_image_path(self.em.run(str(run_id)), image_url)
        expires = int(self.em.now()) + expires_in
        url = self.em.signer.url(str(request.base_url), RUN_IMAGES, path, expires)
        return json_response({"supabase_url": image_url, "signed_url": url, "expires_in": expires_in})


def build(em: Emulator) -> APIRouter:
    return make_router(_Routes(em), prefix="/v1/runs", tags=["runs"])
