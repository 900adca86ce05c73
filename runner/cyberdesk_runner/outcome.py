"""What an attempt's final status means for its item: success, a retry after a backoff, or a final failure."""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import datetime, timedelta

import attrs

from cyberdesk_runner.store.records import Cancel, Fail, FinishedAttempt, ItemOutcome, Retry, Succeed

#: The runner's own verdicts count as these run statuses for the job's `retry.on` list.
_COUNTS_AS = {"timed_out": "error"}


@attrs.frozen
class RetryPolicy:
    max_attempts: int = 1
    backoff: timedelta = timedelta(seconds=30)
    max_backoff: timedelta = timedelta(minutes=10)
    on: frozenset[str] = frozenset({"error", "task_failed"})

    def delay(self, attempt_number: int, rng: random.Random) -> timedelta:
        """Delay before attempt `attempt_number + 1`: exponential from `backoff`, capped, with equal jitter.

        Half the delay is fixed and half random, so retries spread out without ever collapsing to zero.
        """
        base: timedelta = min(self.backoff * (2 ** max(attempt_number - 1, 0)), self.max_backoff)
        return base / 2 + (base / 2) * rng.random()


def decide(policy: RetryPolicy, attempt: FinishedAttempt, now: datetime, rng: random.Random) -> ItemOutcome:
    if attempt.status == "success":
        return Succeed()
    if attempt.item_cancel_requested:
        return Cancel("cancelled on request")
    if attempt.status == "cancelled":
        # Cancelled runs are never retried: someone (or something) meant it.
        return Cancel("the run was cancelled")
    reason = _describe(attempt)
    retryable = _COUNTS_AS.get(attempt.status, attempt.status) in policy.on
    if retryable and attempt.number < policy.max_attempts:
        return Retry(now + policy.delay(attempt.number, rng))
    if retryable:
        return Fail(f"{reason} (attempt {attempt.number} of {policy.max_attempts})")
    return Fail(reason)


def _describe(attempt: FinishedAttempt) -> str:
    detail = "; ".join(attempt.error) if attempt.error else "no error message"
    return f"{attempt.status}: {detail}"


def make_outcome_policy(
    policy_for: Callable[[str], RetryPolicy], now: datetime, rng: random.Random
) -> Callable[[FinishedAttempt], ItemOutcome]:
    """Bind the job policies and the current time into the callback the store calls."""
    return lambda attempt: decide(policy_for(attempt.job_name), attempt, now, rng)
