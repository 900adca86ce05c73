"""Fire -> items: which input sets run, and on which desktops when the job fans out over machines.

A requested fire is planned by `plan_fire` in bounded memory: the items file is read once to check it (every
error before any item is recorded), then again, streamed, a chunk of items per store transaction (`store.plans`;
chunks sized to last about `bulk.CHUNK_SECONDS`); a plan another daemon left midway (or gave back at a clean
stop) is continued after its last recorded item.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any

import attrs

from cyberdesk_runner.bulk import CHUNK_FIRST, CHUNK_MAX, CHUNK_MIN, ChunkSizer
from cyberdesk_runner.catalog import ActiveJob
from cyberdesk_runner.fleet import Desktop, Fleet
from cyberdesk_runner.spec import JobFileError
from cyberdesk_runner.spec.items import iter_items
from cyberdesk_runner.store import Store
from cyberdesk_runner.store.records import FireRequest, NewItem, Transition


class PlanningError(Exception):
    """A fire cannot be planned; the message says why (shown in `fires` and `show`)."""


def plan_items(
    *,
    fan_out: str,
    input_sets: Sequence[Mapping[str, Any]],
    overrides: Mapping[str, Any] | None,
    desktops: Sequence[Desktop],
    job_name: str,
) -> list[NewItem]:
    """Items of one fire.

    `fan_out: items` gives one item per input set, to run on any desktop of the target. `fan_out: machines`
    gives every input set once on every selected desktop, each run then picks up that desktop's parameters.
    """
    _require_desktops(fan_out, desktops, job_name)
    return list(_items(fan_out, input_sets, overrides, desktops))


def _require_desktops(fan_out: str, desktops: Sequence[Desktop], job_name: str) -> None:
    """A fan-out over machines needs at least one connected desktop to plan for."""
    if fan_out == "machines" and not desktops:
        raise PlanningError(f"job {job_name}: its target selects no desktop")


def _items(
    fan_out: str,
    input_sets: Iterable[Mapping[str, Any]],
    overrides: Mapping[str, Any] | None,
    desktops: Sequence[Desktop],
) -> Iterator[NewItem]:
    inputs = ({**dict(s), **dict(overrides or {})} for s in input_sets)
    if fan_out == "machines":
        every = list(inputs)  # desktop by desktop, every input set on each
        return (NewItem(i, machine_id=d.id, machine_name=d.name) for d in desktops for i in every)
    return (NewItem(i) for i in inputs)


def _checked_desktops(job: ActiveJob, fleet: Fleet) -> list[Desktop]:
    """The connected desktops of the job's target, or PlanningError saying why the job cannot run."""
    if job.workflow_error:
        raise PlanningError(job.workflow_error)
    if job.workflow_id is None:
        raise PlanningError(
            f"job {job.name}: its workflows {list(job.loaded.spec.workflows)!r} are not resolved yet"
        )
    selected = fleet.select(job.target)
    if not selected:
        raise PlanningError(f"job {job.name}: its target selects no desktop")
    return [d for d in selected if d.connected]


def build_items(job: ActiveJob, fleet: Fleet, overrides: Mapping[str, Any] | None) -> list[NewItem]:
    """The items of a new fire of `job`, or PlanningError saying why it cannot run."""
    desktops = _checked_desktops(job, fleet)
    try:
        input_sets = list(iter_items(job.loaded)[0])
    except JobFileError as exc:
        raise PlanningError(str(exc)) from exc
    return plan_items(
        fan_out=str(job.loaded.spec.fan_out),
        input_sets=input_sets,
        overrides=overrides,
        desktops=desktops,
        job_name=job.name,
    )


def items_or_count(
    job: ActiveJob, fleet: Fleet, overrides: Mapping[str, Any] | None, *, most: int | None = None
) -> list[NewItem] | int:
    """The items of a new fire of `job`, or only their number when there are more than `most` (default
    `PLAN_CHUNK_MAX`, one chunk): such a fire is recorded requested and planned by chunks (`plan_fire`), not
    inserted whole in one transaction. PlanningError says why it cannot run. Only a job with an items file can
    have that many: it is read once to count (kept only when few), inline items are built at once."""
    if job.loaded.items_path is None:
        return build_items(job, fleet, overrides)
    plan = check_plan(job, fleet, overrides)
    if plan.count > (PLAN_CHUNK_MAX if most is None else most):
        return plan.count
    return list(plan.items())


@attrs.frozen
class FirePlan:
    """A fire's items, checked and counted, to be read again one by one (`items()`); `digest` names what they
    are made of (the job, its items file's bytes, the overrides, the desktops of a fan-out over machines)."""

    job: ActiveJob
    overrides: Mapping[str, Any] | None
    desktops: Sequence[Desktop]
    count: int
    digest: str
    file_digest: str | None

    def items(self) -> Iterator[NewItem]:
        """The items in order, from a fresh read; PlanningError if the items file changed since it was checked."""
        input_sets, stream = iter_items(self.job.loaded)
        try:
            yield from _items(str(self.job.loaded.spec.fan_out), input_sets, self.overrides, self.desktops)
        except JobFileError as exc:
            raise PlanningError(str(exc)) from exc
        if stream is not None and stream.digest != self.file_digest:
            raise PlanningError(f"job {self.job.name}: its items file changed while the fire was planned")


def check_plan(job: ActiveJob, fleet: Fleet, overrides: Mapping[str, Any] | None) -> FirePlan:
    """Read a fire's items once, keeping none: their number and digest, or PlanningError saying why the fire
    cannot run (every error of the items file, before any item is recorded)."""
    desktops = _checked_desktops(job, fleet)
    fan_out = str(job.loaded.spec.fan_out)
    _require_desktops(fan_out, desktops, job.name)
    input_sets, stream = iter_items(job.loaded)
    try:
        rows = sum(1 for _ in input_sets)
    except JobFileError as exc:
        raise PlanningError(str(exc)) from exc
    pinned = [d.id for d in desktops] if fan_out == "machines" else []
    file_digest = stream.digest if stream is not None else None
    made_of = [job.loaded.definition_hash, file_digest, dict(overrides or {}), pinned]
    digest = hashlib.sha256(json.dumps(made_of, sort_keys=True, default=str).encode()).hexdigest()
    count = rows * len(desktops) if fan_out == "machines" else rows
    return FirePlan(job, overrides, desktops, count, digest, file_digest)


@attrs.frozen
class PlanOutcome:
    """What `plan_fire` did: `items` recorded (None when another daemon has the fire), or the `error` that ended
    it; the transitions to report."""

    items: int | None
    error: str | None = None
    transitions: Sequence[Transition] = ()


def plan_fire(
    store: Store,
    job: ActiveJob,
    fleet: Fleet,
    request: FireRequest,
    now: Callable[[], datetime],
    *,
    stopping: Callable[[], bool] = lambda: False,
) -> PlanOutcome:
    """Plan a requested fire (or continue a plan left midway), a chunk of items per transaction. Blocking: run it
    in a worker thread. `stopping` (the daemon stops) ends it between chunks, the claim given back: whoever comes
    next continues at once."""
    try:
        plan = check_plan(job, fleet, request.input_overrides)
    except PlanningError as exc:
        return fail_fire(store, request, str(exc), now)
    claim = store.plans.claim_plan(request.id, now(), expected=plan.count, digest=plan.digest)
    if claim is None:
        return PlanOutcome(None)
    if claim.digest != plan.digest:
        changed = f"job {job.name}: its items, inputs or desktops changed while the fire was planned"
        return _abandon(store, request, changed, now)
    seq = claim.next_seq
    priority = job.loaded.spec.priority
    sizer = ChunkSizer(PLAN_CHUNK, PLAN_CHUNK_MIN, PLAN_CHUNK_MAX)
    items = itertools.islice(plan.items(), seq, None)
    try:
        while chunk := list(itertools.islice(items, sizer.size)):
            if stopping():
                store.plans.release_plan(request.id, now())
                return PlanOutcome(None)
            sizer.start()
            if not store.plans.plan_chunk(request.id, seq, chunk, now(), priority=priority):
                return PlanOutcome(None)  # taken over or stopped: whoever has it now finishes it
            sizer.done()
            seq += len(chunk)
    except PlanningError as exc:
        return _abandon(store, request, str(exc), now)
    transitions = store.plans.finish_plan(request.id, now())
    if transitions is None:
        return PlanOutcome(None)
    return PlanOutcome(seq, transitions=transitions)


def fail_fire(store: Store, request: FireRequest, error: str, now: Callable[[], datetime]) -> PlanOutcome:
    """A fire that cannot be planned: failed while still requested; a plan left midway is taken over (once its
    claim lapsed) and ended with `error`, its pending items cancelled."""
    if not request.resumed:
        store.fires.fail(request.id, error, now())
        return PlanOutcome(None, error)
    if store.plans.claim_plan(request.id, now(), expected=0, digest=None) is None:
        return PlanOutcome(None)
    return _abandon(store, request, error, now)


#: The items of a plan's first chunk, and the fewest and most of any chunk (chunks sized by time: `bulk.ChunkSizer`).
PLAN_CHUNK = CHUNK_FIRST
PLAN_CHUNK_MIN = CHUNK_MIN
PLAN_CHUNK_MAX = CHUNK_MAX


def _abandon(store: Store, request: FireRequest, error: str, now: Callable[[], datetime]) -> PlanOutcome:
    transitions = store.plans.abandon_plan(request.id, error, now())
    return PlanOutcome(None, error if transitions else None, transitions)  # none: the plan changed hands
