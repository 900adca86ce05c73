"""News about runs, in the store's terms: what a create call, a webhook or a poll says about a Cyberdesk run."""

from __future__ import annotations

from datetime import datetime

import attrs

from cyberdesk import RunResponse
from cyberdesk_runner.store.records import RunObservation


@attrs.frozen
class CreatedRun:
    """A create call's answer: the run the API made for one of our attempts."""

    attempt_id: str
    run: RunObservation


News = CreatedRun | RunObservation


def status_of(run: RunResponse) -> str:
    """The run's status as the store writes it (an unknown status from the API stays a plain string)."""
    return str(run.status.value if hasattr(run.status, "value") else run.status)


def observation(run: RunResponse, source: str) -> RunObservation:
    """What a RunResponse (from any call or webhook) says, in the store's terms."""
    error = run.error if isinstance(run.error, list) else None
    output = run.output_data if isinstance(run.output_data, dict) else None
    return RunObservation(
        run_id=str(run.id),
        status=status_of(run),
        started_at=run.started_at if isinstance(run.started_at, datetime) else None,
        ended_at=run.ended_at if isinstance(run.ended_at, datetime) else None,
        error=[str(e) for e in error] if error else None,
        output=output,
        source=source,
    )
