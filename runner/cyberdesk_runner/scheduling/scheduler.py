"""The scheduler's tick: every due slot of every job becomes exactly one fire record in the store.

Exactly once, across restarts and daemons: a slot is recorded under (job, scheduled instant) with
insert-or-nothing, in the transaction that creates its items, so a second daemon (or this one after a restart)
that decides the same slot records nothing. The scheduled instant never includes jitter, so every daemon
computes the same key.

Never silently missed: each job's watermark (`JobMark.last_slot_at`) says up to when its slots have been
considered. A tick looks at the slots in (watermark, now]; each due one is run, skipped (with its reason) or
failed (when it cannot be planned), and the watermark moves forward (monotonically) in the same transaction.

One transaction per tick, not per fire (`store.fires.record_slots`; a commit per fire was most of a tick's
time): the tick first decides and plans every job's slots, then records them all, each job's fires and
watermark together, at most `FIRES_PER_TRANSACTION` fires a transaction. A crash before a commit leaves those
jobs' slots unconsidered: the next tick (of any daemon) decides them again. A job whose records fail is rolled
back alone; its slots stay unconsidered and this scheduler forgets what it noted of the job in the tick. The one
exception is a `replace` run, recorded by itself (`store.fires.start`: it cancels the fires before it, which
locks their attempts and items) as soon as it is planned; if the tick then fails before its watermark moves,
the next tick finds the slot recorded.

Watermark rules:
- a job seen for the first time starts at now: no catch-up of slots from before it existed;
- a job edited, or added back to the catalog, while this scheduler runs starts from this scheduler's last tick,
  so the new definition is not "caught up" over time the old one (or no job) covered; edits made while the
  daemon was down are taken as in effect since the last recorded watermark;
- a slot whose jitter delay has not elapsed keeps the watermark just before it.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta

import attrs
from sqlalchemy.exc import DBAPIError

from cyberdesk_runner.catalog import ActiveJob, JobCatalog
from cyberdesk_runner.clock import Clock
from cyberdesk_runner.fleet import Fleet
from cyberdesk_runner.logs import get_logger
from cyberdesk_runner.planning import PlanningError, items_or_count
from cyberdesk_runner.scheduling.policy import (
    DEFAULT_GRACE,
    MAX_SLOTS_PER_TICK,
    Decision,
    DueSlot,
    Run,
    Skip,
    decide,
    draw_delay,
    overlap_skip_reason,
    summary_reason,
    supersede_for_replace,
)
from cyberdesk_runner.scheduling.slots import Schedule, Slot, SlotWindow
from cyberdesk_runner.store import Store
from cyberdesk_runner.store.records import (
    JobMark,
    JobSlots,
    NewFire,
    OverlapRule,
    SlotFire,
    Transition,
)

__all__ = ["FIRES_PER_TRANSACTION", "Scheduler"]

#: Most fires recorded in one transaction. SQLite has one writer at a time: a transaction of a few hundred
#: fires would hold up dispatch and news for that long, and the first fires would wait for the last.
FIRES_PER_TRANSACTION = 100

_TICK = timedelta(microseconds=1)
_log = get_logger("cyberdesk_runner.scheduling")


@attrs.frozen
class _Upcoming:
    """A job's next due time, valid while its definition and stored watermark stay the same."""

    definition_hash: str
    watermark: datetime
    slot_at: datetime | None
    due_at: datetime | None


@attrs.define
class _Tick:
    now: datetime
    get_fleet: Callable[[], Fleet]
    fleet: Fleet | None = None
    transitions: list[Transition] = attrs.Factory(list)
    #: Decided slots not recorded yet, per job, with the job's overlap rule.
    fires: dict[str, tuple[OverlapRule, list[SlotFire]]] = attrs.Factory(dict)
    fire_count: int = 0
    #: New watermarks not recorded yet; recorded with the job's fires.
    marks: dict[str, datetime] = attrs.Factory(dict)
    #: Each job's `Scheduler._through` before this tick, to go back to when its records fail.
    through_before: dict[str, datetime] = attrs.Factory(dict)
    #: Watermarks this tick started jobs from that are not the stored ones (first seen, edited, added back).
    start_marks: dict[str, datetime] = attrs.Factory(dict)

    def the_fleet(self) -> Fleet:
        if self.fleet is None:
            self.fleet = self.get_fleet()
        return self.fleet


class Scheduler:
    """Turns the catalog's schedules into fires in the store. `tick()` is synchronous; the daemon runs it in a
    thread, in a loop, sleeping until the time it returns (capped, so reloads and pauses are seen)."""

    def __init__(
        self,
        *,
        store: Store,
        catalog: JobCatalog,
        fleet: Callable[[], Fleet],
        clock: Clock,
        on_transitions: Callable[[Sequence[Transition]], None],
        rng: random.Random | None = None,
        grace: timedelta = DEFAULT_GRACE,
        max_slots_per_tick: int = MAX_SLOTS_PER_TICK,
    ) -> None:
        self._store = store
        self._catalog = catalog
        self._fleet = fleet
        self._clock = clock
        self._on_transitions = on_transitions
        self._rng = rng or random.Random()
        self._grace = grace
        self._max_slots = max_slots_per_tick
        self._schedules: dict[str, tuple[str, Schedule]] = {}
        self._delays: dict[str, dict[datetime, timedelta]] = {}
        self._upcoming: dict[str, _Upcoming] = {}
        #: Each catalog job's definition hash at the last tick, to see jobs added or edited since.
        self._hashes: dict[str, str] = {}
        #: Per job, up to when this scheduler has considered its slots.
        self._through: dict[str, datetime] = {}
        #: Jobs whose records failed: the watermark their failed tick started from, for the next tick to take.
        self._resume: dict[str, datetime] = {}
        self._last_now: datetime | None = None

    def tick(self) -> datetime | None:
        """Do all work due at `clock.now()`; return when the next slot is due (jitter included), or None."""
        tick = _Tick(self._clock.now(), self._fleet, through_before=dict(self._through))
        jobs = list(self._catalog.jobs.values())
        states = self._store.jobs.marks()
        hashes = dict(self._hashes)
        wake: datetime | None = None
        try:
            try:
                for job in jobs:
                    due_at = self._tick_or_wait(job, states.get(job.name), tick)
                    hashes[job.name] = job.loaded.definition_hash
                    if due_at is not None and (wake is None or due_at < wake):
                        wake = due_at
                    if tick.fire_count >= FIRES_PER_TRANSACTION:
                        self._record(tick)
            finally:
                self._record(tick)  # what was decided before a failure too (as it always was)
        finally:
            # Jobs not reached (the store failed) keep their previous hash, so an edit to them is still seen.
            self._hashes = {job.name: hashes[job.name] for job in jobs if job.name in hashes}
            self._forget({job.name for job in jobs})
            self._last_now = tick.now
            self._report(tick)
        return wake

    def _record(self, tick: _Tick) -> None:
        """Record the decided slots and watermarks of the tick so far, in one transaction."""
        names = sorted(tick.fires.keys() | tick.marks.keys())
        if not names:
            return
        allow = OverlapRule("allow")
        jobs = [
            JobSlots(name, *tick.fires.get(name, (allow, [])), last_slot_at=tick.marks.get(name))
            for name in names
        ]
        tick.fires, tick.fire_count, tick.marks = {}, 0, {}
        try:
            recorded = self._store.fires.record_slots(jobs, tick.now)
        except BaseException:
            for name in names:
                self._not_recorded(name, tick)
            raise
        tick.transitions += recorded.transitions
        for name, error in recorded.failed.items():
            _log.error("scheduling_failed", job=name, error=error)
            self._not_recorded(name, tick)
        self._report(tick)  # chunk by chunk, so the dispatcher can start on the first fires at once

    def _not_recorded(self, name: str, tick: _Tick) -> None:
        """Forget what this tick noted of a job whose records failed: its slots stay unconsidered, and the next
        tick starts it where this one did."""
        if name in tick.start_marks:
            self._resume[name] = tick.start_marks[name]
        self._upcoming.pop(name, None)
        if name in tick.through_before:
            self._through[name] = tick.through_before[name]
        else:
            self._through.pop(name, None)

    def _report(self, tick: _Tick) -> None:
        if tick.transitions:
            transitions, tick.transitions = tick.transitions, []
            self._on_transitions(transitions)

    def _tick_or_wait(self, job: ActiveJob, state: JobMark | None, tick: _Tick) -> datetime | None:
        if state is None:
            return None  # not in the store yet: the daemon records new job files before ticking
        if job.workflow_id is None and job.workflow_error is None:
            # Not resolved yet (the daemon is starting): wait rather than fail its slots. They stay
            # unconsidered, so once resolved they run, or are caught up or skipped by the job's policy.
            return None
        try:
            return self._tick_job(job, state, tick)
        except DBAPIError:
            raise
        except Exception:
            # A bug or a bad file for one job must not stop the others; its slots stay unconsidered.
            _log.exception("scheduling_failed", job=job.name)
            self._upcoming.pop(job.name, None)
            return None

    # -- one job ---------------------------------------------------------------------------------------

    def _tick_job(self, job: ActiveJob, state: JobMark, tick: _Tick) -> datetime | None:
        name, definition_hash = job.name, job.loaded.definition_hash
        schedule = self._schedule(job)
        watermark = self._watermark(job, state, tick)
        if not schedule:
            self._through[name] = tick.now
            return None
        upcoming = self._upcoming.get(name)
        if (
            upcoming is not None
            and upcoming.definition_hash == definition_hash
            and upcoming.watermark == watermark
            and (upcoming.due_at is None or upcoming.due_at > tick.now)
        ):
            # Nothing due since the last look: no need to walk the schedule again.
            slot_at = upcoming.slot_at
            self._through[name] = tick.now if slot_at is None or slot_at > tick.now else slot_at - _TICK
            return upcoming.due_at

        window = schedule.newest(watermark, tick.now, self._max_slots)
        due, pending = self._split(name, schedule, window.slots, tick.now)
        spec = job.loaded.spec
        decisions: list[Decision] = decide(
            due,
            now=tick.now,
            catchup=spec.catchup,
            max_delay=spec.max_delay,
            grace=self._grace,
            paused=state.paused,
        )
        if spec.overlap == "replace":
            decisions = supersede_for_replace(decisions)
        fires: list[SlotFire] = []
        if window.older_first is not None:
            fires.append(self._summary(job, window, state.paused))
        for decision in decisions:
            fires += self._carry_out(job, decision, tick)

        through = pending[0].at - _TICK if pending else tick.now
        nxt = pending[0].slot if pending else window.following  # the first slot after now
        due_at = nxt.at + self._delay(name, schedule, nxt) if nxt is not None else None
        # Nothing below raises: the job's fires and its watermark are handed over together, or neither.
        if fires:
            tick.fires[name] = (OverlapRule(spec.overlap, skip_reason=overlap_skip_reason), fires)
            tick.fire_count += len(fires)
        if window.slots and through > watermark:
            tick.marks[name] = through
            watermark = through
        self._through[name] = through
        self._prune_delays(name, through)
        self._upcoming[name] = _Upcoming(definition_hash, watermark, nxt.at if nxt else None, due_at)
        return due_at

    def _watermark(self, job: ActiveJob, state: JobMark, tick: _Tick) -> datetime:
        name = job.name
        start = self._start_mark(job, state, tick)
        if start is None:
            assert state.last_slot_at is not None
            return state.last_slot_at
        tick.marks[name] = tick.start_marks[name] = start
        return start

    def _start_mark(self, job: ActiveJob, state: JobMark, tick: _Tick) -> datetime | None:
        """Where to start the job from when not at its stored watermark."""
        name = job.name
        resume = self._resume.pop(name, None)
        if resume is not None and (state.last_slot_at is None or resume > state.last_slot_at):
            return resume  # where the tick whose records failed started it
        if state.last_slot_at is None:
            return tick.now  # first seen: no catch-up of slots from before the job existed
        if self._last_now is not None and self._hashes.get(name) != job.loaded.definition_hash:
            # Added (back) or edited since our last tick: the previous definition, or no job at all, covered the
            # time up to then, so slots of the new definition before it are not "missed".
            through = self._through.get(name, self._last_now) if name in self._hashes else self._last_now
            if through > state.last_slot_at:
                return through
        return None

    def _split(
        self, name: str, schedule: Schedule, slots: Sequence[Slot], now: datetime
    ) -> tuple[list[DueSlot], list[DueSlot]]:
        """Slots whose (jittered) time has come, and the rest. Delays never pass the next slot, so the due
        times are in slot order and the pending ones are all at the end."""
        due: list[DueSlot] = []
        for index, slot in enumerate(slots):
            item = DueSlot(slot, slot.at + self._delay(name, schedule, slot))
            if item.due_at > now:
                pending = [item] + [
                    DueSlot(s, s.at + self._delay(name, schedule, s)) for s in slots[index + 1 :]
                ]
                return due, pending
            due.append(item)
        return due, []

    def _delay(self, name: str, schedule: Schedule, slot: Slot) -> timedelta:
        if slot.jitter <= timedelta(0):
            return timedelta(0)
        delays = self._delays.setdefault(name, {})
        if slot.at not in delays:
            delays[slot.at] = draw_delay(slot, schedule.next_after(slot.at), self._rng)
        return delays[slot.at]

    # -- deciding what to record -----------------------------------------------------------------------

    def _carry_out(self, job: ActiveJob, decision: Decision, tick: _Tick) -> list[SlotFire]:
        """The slot's fire to record: skipped, failed (not planned), or run with its items. A `replace` run is
        recorded here and now (see the module's docstring)."""
        fire = NewFire(
            job.name,
            decision.trigger,
            decision.due.at,
            job.loaded.definition_hash,
            priority=job.loaded.spec.priority,
        )
        if isinstance(decision, Skip):
            return [SlotFire(fire, skip_reason=decision.reason)]
        assert isinstance(decision, Run)
        overlap = job.loaded.spec.overlap
        in_flight = self._store.fires.in_flight(job.name) if overlap == "forbid" else []
        if in_flight:  # known before planning: skip without reading the items
            return [SlotFire(fire, skip_reason=overlap_skip_reason(in_flight))]
        try:
            items = items_or_count(job, tick.the_fleet(), None)
        except PlanningError as exc:
            return [SlotFire(fire, error=str(exc))]
        except Exception as exc:
            _log.exception("planning_crashed", job=job.name)
            return [SlotFire(fire, error=f"could not plan the fire: {exc!r}")]
        requested = (
            items if isinstance(items, int) else None
        )  # too many for one transaction: planned by chunks
        listed = items if isinstance(items, list) else []
        if overlap != "replace":
            # Overlap is judged again where the fire is recorded: another daemon may have started a slot of this
            # job since the look above.
            return [SlotFire(fire, listed, requested=requested)]
        rule = OverlapRule(
            overlap,
            skip_reason=overlap_skip_reason,
            replace_reason=f"replaced by the fire of {decision.due.at.isoformat()} (overlap: replace)",
        )
        started = self._store.fires.start(fire, listed, tick.now, rule, requested=requested)
        # None: another daemon (or this one before a restart) recorded this slot first.
        if started is not None:
            tick.transitions += started.transitions
        return []

    def _summary(self, job: ActiveJob, window: SlotWindow, paused: bool) -> SlotFire:
        """The one skipped record standing for the slots too many to record one by one."""
        assert window.older_first is not None and window.slots
        reason = summary_reason(
            count=window.older_count,
            capped=window.older_capped,
            first=window.older_first.at,
            last_before=window.slots[0].at,
            paused=paused,
            catchup=job.loaded.spec.catchup,
        )
        _log.warning("slots_summarised", job=job.name, reason=reason)
        fire = NewFire(
            job.name,
            "catchup",
            window.older_first.at,
            job.loaded.definition_hash,
            priority=job.loaded.spec.priority,
        )
        return SlotFire(fire, skip_reason=reason)

    # -- caches ----------------------------------------------------------------------------------------

    def _schedule(self, job: ActiveJob) -> Schedule:
        cached = self._schedules.get(job.name)
        if cached is not None and cached[0] == job.loaded.definition_hash:
            return cached[1]
        schedule = Schedule(job.loaded.spec.schedule)
        self._schedules[job.name] = (job.loaded.definition_hash, schedule)
        self._delays.pop(job.name, None)
        return schedule

    def _prune_delays(self, name: str, through: datetime) -> None:
        delays = self._delays.get(name)
        if delays:
            for at in [at for at in delays if at <= through]:
                del delays[at]

    def _forget(self, present: set[str]) -> None:
        """Drop what we keep about jobs no longer in the catalog (a removed job stops scheduling)."""
        for cache in (self._schedules, self._delays, self._upcoming, self._through, self._resume):
            for name in [name for name in cache if name not in present]:
                del cache[name]
