"""Big operations on recorded work, a chunk of items per store transaction: the retry of a fire's failed items
and the cancel of a whole fire (`cyberdesk-runner retry F`, `cancel F`), like the plan of a big fire
(`planning.plan_fire`).

On SQLite one transaction blocks every daemon's writes for its whole length, so neither is one transaction over
100,000 items: each chunk is sized to last about `CHUNK_SECONDS` (`ChunkSizer`), and on SQLite a pause between
chunks lets other processes' writers in (`SQLITE_PAUSE`). What has to be done is recorded
in the store before the first chunk, so a process that stops between chunks loses and duplicates nothing:
- a retry is a fire being planned (`store.plans.start_retry`): its items are copies of the failed items, each
  keeping its seq, so it goes on after its last copy; the same `retry F` run again, or any daemon once the
  claim lapsed (`fires.requested`), continues it;
- a cancel is marked on the fire (`store.control.request_cancel`; dispatch takes none of its items from then
  on): each chunk cancels pending items and flags running ones not flagged yet, so a chunk run twice does
  nothing twice; the same `cancel F` run again, or any daemon once the claim lapsed, finishes it;
- a removed job is marked removed (`store.jobs.sync`; dispatch takes none of its items, its catalog entry gone):
  each chunk cancels some of its pending items, and every daemon looks for any left (`retire_removed_jobs`).
A clean stop (`stopping`: a daemon stopping, the CLI on SIGINT or SIGTERM) ends between chunks and gives the
claim back, so whoever comes next continues at once.

Blocking: the daemon runs these in a worker thread.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Sequence
from datetime import datetime

import attrs

from cyberdesk_runner.store import Store
from cyberdesk_runner.store.records import FireRequest, PlanClaim, Transition

__all__ = [
    "CancelOutcome",
    "ChunkSizer",
    "RetryOutcome",
    "cancel_fire",
    "continue_cancels",
    "continue_retry",
    "pause_for_other_writers",
    "retire_removed_jobs",
    "retry_fire",
]

#: The items of a first chunk, and the fewest and most of any chunk (a big fire's plan, retry or cancel).
CHUNK_FIRST = 1_000
CHUNK_MIN = 250
CHUNK_MAX = 4_000
#: How long a chunk's transaction should last. Each commit has a cost that grows with the store (on SQLite the
#: random item ids dirty pages all over the primary key's index, written again at every commit), so chunks are
#: as big as this allows: they double while quicker than half of it, halve when slower (a loaded machine).
CHUNK_SECONDS = 0.25
#: On SQLite, a pause between two chunks: a writer of another process (a daemon, while the CLI retries or cancels)
#: waits for the write lock in SQLite's busy handler, which sleeps up to 100 ms between tries, so chunks back to
#: back would shut it out until the last one. (Within one process writers queue on a lock, and PostgreSQL locks
#: rows, not the database: no pause there.)
SQLITE_PAUSE = 0.12

#: Why a removed job's pending items are cancelled.
REMOVED_JOB = "the job was removed"

Stopping = Callable[[], bool]
OnTransitions = Callable[[Sequence[Transition]], None]


def _never() -> bool:
    return False


def _ignore(transitions: Sequence[Transition]) -> None:
    pass


class ChunkSizer:
    """How many items the next chunk takes, from how long the last one's transaction lasted."""

    def __init__(
        self, first: int | None = None, smallest: int | None = None, largest: int | None = None
    ) -> None:
        self.size = CHUNK_FIRST if first is None else first
        self.smallest = CHUNK_MIN if smallest is None else smallest
        self.largest = CHUNK_MAX if largest is None else largest
        self._started = 0.0

    def start(self) -> int:
        """A chunk begins: its size."""
        self._started = time.perf_counter()
        return self.size

    def done(self) -> None:
        """The chunk's transaction ended: the next one's size."""
        seconds = time.perf_counter() - self._started
        if seconds < CHUNK_SECONDS / 2:
            self.size = min(self.size * 2, self.largest)
        elif seconds > CHUNK_SECONDS:
            self.size = max(self.size // 2, self.smallest)


# -- retry ---------------------------------------------------------------------------------------------------


@attrs.frozen
class RetryOutcome:
    """What `retry_fire` did. `fire_id` None: the fire has nothing failed to retry."""

    fire_id: str | None
    #: Items this process copied into the retry fire.
    copied: int = 0
    #: Every failed item is in (or, `replan`, the retry is requested to be planned).
    finished: bool = False
    #: False: the fire's retry in flight was found (and its copy continued if it had stopped midway), not a
    #: second retry made.
    created: bool = True
    #: The fire failed before it had items: the retry is requested, planned like a trigger by a daemon.
    replan: bool = False
    #: Another process is copying the items right now (its claim holds): it, or a daemon after it, finishes.
    busy: bool = False
    transitions: Sequence[Transition] = ()


def retry_fire(
    store: Store, fire_id: str, now: Callable[[], datetime], *, stopping: Stopping = _never
) -> RetryOutcome:
    """Retry every failed item of a fire as a new fire, its items copied by chunks; while the fire has a retry in
    flight, that one instead (its copy continued if it stopped midway and its claim lapsed or was given back)."""
    start = store.plans.start_retry(fire_id, now())
    if start is None:
        return RetryOutcome(None)
    if start.claim is None:
        return RetryOutcome(
            start.fire_id,
            finished=not start.copying,
            created=start.created,
            replan=start.replan,
            busy=start.copying,
        )
    copied, transitions = _copy(store, start.claim, now, stopping)
    return RetryOutcome(
        start.fire_id, copied, transitions is not None, start.created, transitions=transitions or ()
    )


def continue_retry(
    store: Store, request: FireRequest, now: Callable[[], datetime], *, stopping: Stopping = _never
) -> Sequence[Transition] | None:
    """Continue the copy of a retry fire whose copier stopped midway (its claim lapsed or was given back). Its
    transitions once finished; None when another daemon has it or this one stopped first."""
    claim = store.plans.claim_plan(request.id, now(), expected=0, digest=None)
    if claim is None:
        return None
    return _copy(store, claim, now, stopping)[1]


def _copy(
    store: Store, claim: PlanClaim, now: Callable[[], datetime], stopping: Stopping
) -> tuple[int, Sequence[Transition] | None]:
    """Copy chunks until every failed item is in, then finish the retry fire: (items copied, its transitions),
    None for a copy given back at a stop or taken over (whoever has it now finishes it)."""
    sizer, seq, copied = ChunkSizer(), claim.next_seq, 0
    while True:
        if stopping():
            store.plans.release_plan(claim.fire_id, now())
            return copied, None
        chunk = store.plans.copy_failed(claim.fire_id, seq, now(), limit=sizer.start())
        sizer.done()
        if chunk is None:
            return copied, None
        seq, copied = chunk.next_seq, copied + chunk.copied
        if chunk.done:
            return copied, store.plans.finish_plan(claim.fire_id, now())
        pause_for_other_writers(store)


# -- cancel --------------------------------------------------------------------------------------------------


@attrs.frozen
class CancelOutcome:
    """What `cancel_fire` did: the kinds of transitions it made, counted (item_cancelled, cancel_requested,
    fire_cancelled); `started` False when the fire had ended (nothing to cancel)."""

    kinds: Counter[str]
    started: bool
    #: Every item is cancelled or flagged; False: stopped between chunks (run it again, or a daemon finishes).
    finished: bool
    reason: str | None = None


def cancel_fire(
    store: Store,
    fire_id: str,
    reason: str,
    now: Callable[[], datetime],
    *,
    stopping: Stopping = _never,
    on_transitions: OnTransitions = _ignore,
) -> CancelOutcome:
    """Cancel a fire: pending items at once and runs in flight flagged (the reaper cancels them), by chunks."""
    start = store.control.request_cancel(fire_id, reason, now())
    if start is None:
        return CancelOutcome(Counter(), started=False, finished=True)
    kinds = Counter(t.kind for t in start.transitions)
    on_transitions(start.transitions)
    finished = not start.chunks or _cancel_chunks(store, fire_id, now, stopping, kinds, on_transitions)
    return CancelOutcome(kinds, started=True, finished=finished, reason=start.reason)


def continue_cancels(
    store: Store,
    now: Callable[[], datetime],
    *,
    stopping: Stopping = _never,
    on_transitions: OnTransitions = _ignore,
) -> int:
    """Finish the cancels whose process stopped midway (their claim lapsed or was given back); how many fires
    this daemon took over."""
    taken = 0
    for fire_id in store.control.cancels_to_continue(now()):
        if stopping():
            break
        if store.control.claim_cancel(fire_id, now()):
            taken += 1
            _cancel_chunks(store, fire_id, now, stopping, Counter(), on_transitions)
    return taken


def retire_removed_jobs(
    store: Store,
    now: Callable[[], datetime],
    *,
    stopping: Stopping = _never,
    on_transitions: OnTransitions = _ignore,
) -> int:
    """Cancel the pending items of jobs removed from the job files, by chunks; how many were cancelled. Nothing
    to claim: each chunk checks its items again under their locks, so daemons doing this at once, or one
    finishing what a stopped one left, cancel each item once."""
    sizer, cancelled = ChunkSizer(), 0
    while not stopping():
        transitions, done = store.control.cancel_pending_of_removed_jobs(
            REMOVED_JOB, now(), limit=sizer.start()
        )
        sizer.done()
        cancelled += sum(1 for t in transitions if t.kind == "item_cancelled")
        on_transitions(transitions)
        if done:
            break
        pause_for_other_writers(store)
    return cancelled


def _cancel_chunks(
    store: Store,
    fire_id: str,
    now: Callable[[], datetime],
    stopping: Stopping,
    kinds: Counter[str],
    on_transitions: OnTransitions,
) -> bool:
    """Cancel the fire's open items chunk by chunk, counting what was done in `kinds`; False when stopped first
    (the claim given back)."""
    sizer, after = ChunkSizer(), -1
    while True:
        if stopping():
            store.control.release_cancel(fire_id, now())
            return False
        chunk = store.control.cancel_chunk(fire_id, after, now(), limit=sizer.start())
        sizer.done()
        kinds.update(t.kind for t in chunk.transitions)
        on_transitions(chunk.transitions)
        after = chunk.last_seq
        if chunk.done:
            return True
        pause_for_other_writers(store)


def pause_for_other_writers(store: Store) -> None:
    """Between two chunks, let writers of other processes in (SQLite: see SQLITE_PAUSE)."""
    if not store.core.is_postgres and SQLITE_PAUSE > 0:
        time.sleep(SQLITE_PAUSE)
