"""News about runs, in the store's terms: what a create call, a webhook or a poll says about a Cyberdesk run."""

from __future__ import annotations

import threading
from datetime import datetime

import attrs

from cyberdesk import RunResponse, UnknownValue
from cyberdesk_runner.logs import get_logger
from cyberdesk_runner.store.records import NewStepRun, RunObservation

log = get_logger(__name__)


@attrs.frozen
class CreatedRun:
    """A create call's answer: the run the API made for one of our attempts (for a chain: its first step's run,
    and every step's run in `steps`)."""

    attempt_id: str
    run: RunObservation
    steps: tuple[NewStepRun, ...] = ()


News = CreatedRun | RunObservation


def status_of(run: RunResponse) -> str:
    """The run's status as the store writes it (an unknown status from the API stays a plain string)."""
    return str(run.status.value if hasattr(run.status, "value") else run.status)


class UnknownStatuses:
    """Run statuses Cyberdesk sent that this SDK does not know (one added after it): such a run is still in
    flight for the runner (the store moves an attempt only on statuses it knows), so polling goes on until a
    known final status or the job's timeout. Each new value is logged once per process, not once per run."""

    def __init__(self) -> None:
        self._seen: set[str] = set()
        self._lock = threading.Lock()

    def is_known(self, run: RunResponse) -> bool:
        """False (and one warning per new value) for a status the SDK does not know."""
        if not isinstance(run.status, UnknownValue):
            return True
        value = run.status.value
        with self._lock:
            new = value not in self._seen
            self._seen.add(value)
        if new:
            log.warning(
                "run_status_unknown",
                status=value,
                run_id=str(run.id),
                meaning="treated as still in flight: polling goes on until a known final status or the timeout",
            )
        return False


#: The process's one record of unknown statuses (the daemon's loops share it, so each value warns once).
unknown_statuses = UnknownStatuses()


def is_news(run: RunResponse, stored_status: str) -> bool:
    """Whether what the API says about a run moves it from ``stored_status``; a status the SDK does not know
    never does (see :class:`UnknownStatuses`)."""
    return unknown_statuses.is_known(run) and status_of(run) != stored_status


def observation(run: RunResponse, source: str) -> RunObservation:
    """What a RunResponse (from any call or webhook) says, in the store's terms."""
    error = run.error if isinstance(run.error, list) else None
    output = run.output_data if isinstance(run.output_data, dict) else None
    usage = run.usage_metadata if isinstance(run.usage_metadata, dict) else None
    return RunObservation(
        run_id=str(run.id),
        status=status_of(run),
        started_at=run.started_at if isinstance(run.started_at, datetime) else None,
        ended_at=run.ended_at if isinstance(run.ended_at, datetime) else None,
        error=[str(e) for e in error] if error else None,
        output=output,
        source=source,
        usage=usage,
    )
