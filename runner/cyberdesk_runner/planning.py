"""Fire -> items: which input sets run, and on which desktops when the job fans out over machines.

A requested fire is planned by `plan_fire` in bounded memory: the items file is read once to check it (every
error before any item is recorded), then again, streamed, a chunk of items per store transaction (`store.plans`;
chunks sized to last about `bulk.CHUNK_SECONDS`); a plan another daemon left midway (or gave back at a clean
stop) is continued after its last recorded item.

The items of an `after:` job with `items_from_output` come from its upstream fire's outputs instead
(`outputs_plan`): one per element of the list at that path in each succeeded upstream item's output. The upstream
fire has ended, so its outputs read again give the same items in the same order, and a plan of them goes by
chunks the same way, its outputs read page by page (`store.lineage.succeeded_outputs`).
"""

from __future__ import annotations

import copy
import hashlib
import itertools
import json
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any

import attrs

from cyberdesk_runner.bulk import CHUNK_FIRST, CHUNK_MAX, CHUNK_MIN, ChunkSizer, pause_for_other_writers
from cyberdesk_runner.catalog import ActiveJob
from cyberdesk_runner.fleet import Desktop, Fleet
from cyberdesk_runner.spec import JobFileError
from cyberdesk_runner.spec.items import iter_items
from cyberdesk_runner.store import Store
from cyberdesk_runner.store.lineage import UpstreamOutput
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
    are made of (the job, its items file's bytes or its upstream fire, the overrides, the desktops of a fan-out
    over machines)."""

    job: ActiveJob
    overrides: Mapping[str, Any] | None
    desktops: Sequence[Desktop]
    count: int
    digest: str
    file_digest: str | None
    #: An `items_from_output` plan: its upstream fire's succeeded outputs, read afresh at each call, and how
    #: many succeeded upstream items there are.
    outputs: Callable[[], Iterable[UpstreamOutput]] | None = None
    upstream_items: int = 0

    def items(self) -> Iterator[NewItem]:
        """The items in order, from a fresh read; PlanningError if the items file changed since it was checked."""
        if self.outputs is not None:
            yield from _output_items(self.job, self.outputs, self.desktops)
            return
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


def elements_at(output: Any, path: str, by_alias: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
    """The input sets found at `path` (dotted) in one upstream output.

    For a multi-step upstream job, `by_alias` holds each aliased step's output, and a path starting with an
    alias reads that step; otherwise `output` (the last step's) is read. A list gives one input set per element
    (a mapping as is, anything else under `value`); a mapping gives one; nothing there gives none.
    """
    parts = path.split(".")
    node: Any = output
    if by_alias and parts[0] in by_alias:
        node, parts = by_alias[parts[0]], parts[1:]
    for part in parts:
        if isinstance(node, Mapping) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return []
    if node is None:
        return []
    values = node if isinstance(node, list) else [node]
    return [dict(v) if isinstance(v, Mapping) else {"value": v} for v in values]


def outputs_plan(store: Store, job: ActiveJob, fleet: Fleet, upstream_fire_id: str) -> FirePlan:
    """The items of an `after:` fire of a job with `items_from_output` (see `elements_at`), merged over the job's
    inputs, ordered by upstream item then element (then desktop by desktop for a fan-out over machines): read
    once to count, keeping none. PlanningError says why the fire cannot run. Blocking (it reads the store)."""
    path = job.loaded.spec.items_from_output
    assert path is not None
    if job.workflow_error:
        raise PlanningError(job.workflow_error)
    fan_out = str(job.loaded.spec.fan_out)
    desktops = [d for d in fleet.select(job.target) if d.connected]
    _require_desktops(fan_out, desktops, job.name)

    def outputs() -> Iterator[UpstreamOutput]:
        return store.lineage.succeeded_outputs(upstream_fire_id)

    upstream = sets = 0
    for out in outputs():
        upstream += 1
        sets += len(elements_at(out.output, path, out.by_alias))
    pinned = [d.id for d in desktops] if fan_out == "machines" else []
    made_of = [job.loaded.definition_hash, f"outputs-of:{upstream_fire_id}", pinned]
    digest = hashlib.sha256(json.dumps(made_of, sort_keys=True).encode()).hexdigest()
    count = sets * len(desktops) if fan_out == "machines" else sets
    return FirePlan(job, None, desktops, count, digest, None, outputs=outputs, upstream_items=upstream)


def _output_items(
    job: ActiveJob, outputs: Callable[[], Iterable[UpstreamOutput]], desktops: Sequence[Desktop]
) -> Iterator[NewItem]:
    """`outputs_plan`'s items in order, as `plan_items` would make them of every input set at once; a fan-out over
    machines reads the outputs again for each desktop rather than keep them."""
    spec = job.loaded.spec
    path = spec.items_from_output
    assert path is not None
    inputs = copy.deepcopy(spec.inputs)

    def input_sets() -> Iterator[dict[str, Any]]:
        for out in outputs():
            for element in elements_at(out.output, path, out.by_alias):
                yield {**inputs, **element}

    if str(spec.fan_out) == "machines":
        for d in desktops:
            yield from (NewItem(i, machine_id=d.id, machine_name=d.name) for i in input_sets())
    else:
        yield from (NewItem(i) for i in input_sets())


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
        if request.upstream_fire_id is not None and job.loaded.spec.items_from_output is not None:
            plan = outputs_plan(store, job, fleet, request.upstream_fire_id)
        else:
            plan = check_plan(job, fleet, request.input_overrides)
    except PlanningError as exc:
        return fail_fire(store, request, str(exc), now)
    claim = store.plans.claim_plan(request.id, now(), expected=plan.count, digest=plan.digest)
    if claim is None:
        return PlanOutcome(None)
    if claim.digest != plan.digest:
        changed = f"job {job.name}: its items, inputs or desktops changed while the fire was planned"
        return _abandon(store, request, changed, now, stopping)
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
        return _abandon(store, request, str(exc), now, stopping)
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


def _abandon(
    store: Store,
    request: FireRequest,
    error: str,
    now: Callable[[], datetime],
    stopping: Callable[[], bool] = lambda: False,
) -> PlanOutcome:
    """End a plan that cannot go on: its pending items cancelled by chunks (never one transaction over a big
    fire), then the fire ended with `error`. A stop between chunks gives the plan back: whoever takes it over
    finds it cannot go on either and carries on the cancel."""
    sizer, after = ChunkSizer(PLAN_CHUNK, PLAN_CHUNK_MIN, PLAN_CHUNK_MAX), -1
    cancelled: list[Transition] = []
    while True:
        if stopping():
            store.plans.release_plan(request.id, now())
            return PlanOutcome(None, transitions=cancelled)
        chunk = store.plans.abandon_chunk(request.id, error, after, now(), limit=sizer.start())
        sizer.done()
        if chunk is None:
            return PlanOutcome(None, transitions=cancelled)  # the plan changed hands
        cancelled += chunk.transitions
        if chunk.done:
            break
        after = chunk.last_seq
        pause_for_other_writers(store)
    ended = store.plans.abandon_plan(request.id, error, now())
    transitions = cancelled + ended
    return PlanOutcome(None, error if transitions else None, transitions)  # none: the plan changed hands
