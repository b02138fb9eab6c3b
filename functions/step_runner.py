"""One way to run an activity from an orchestrator, shared by migrate_instance and migrate_wave.

Transient conditions (throttling, 5xx, a connection that broke) are retried on a *time* budget, not an attempt
count: throttling waits exactly its Retry-After, other transient errors back off exponentially (capped), each
wait a durable timer. Only when the budget (hours; ``STEP_RETRY_BUDGET_SECONDS``, carried in the orchestration's
input so replays stay deterministic) has run out does a transient error reach the caller as a failure.

History stays bounded: one execution makes at most ``MAX_ATTEMPTS_PER_EXECUTION`` attempts of one step. When
that many have met transient errors and the budget is not spent, the outcome says so (``still_retrying``) and the
caller continues as new, carrying the moment the retries began (``RetryClock.since``), so the next execution goes
on against the same deadline with a fresh, short history. Each attempt costs about six history events (the
activity with its crash retry, the timer), so one execution holds at most ~50 of them however long ASR throttles.

An activity that crashed (a bug, a lost worker) is retried by the SDK and then answers as a permanent error, so
the orchestration ends with a reason instead of failing opaquely.
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar

import azure.durable_functions as df
from pydantic import BaseModel

from migration.contracts import Activity
from migration.outcome import Outcome, StepError

In = TypeVar("In", bound=BaseModel)
Out = TypeVar("Out", bound=BaseModel)
Task = Any  # the SDK's TaskBase; it has no public type stubs

CRASH_RETRY = df.RetryOptions(first_retry_interval_in_milliseconds=15_000, max_number_of_attempts=3)
# The default time budget for transient conditions (STEP_RETRY_BUDGET_SECONDS).
DEFAULT_RETRY_BUDGET = timedelta(hours=6)
# Attempts of one step in one execution before the caller continues as new (bounded history).
MAX_ATTEMPTS_PER_EXECUTION = 8
TRANSIENT_BACKOFF = timedelta(seconds=30)
LONGEST_BACKOFF = timedelta(minutes=10)
# A Retry-After longer than this is not believed as such: the wait is capped (the budget still applies).
LONGEST_RETRY_AFTER = timedelta(hours=1)


@dataclass(frozen=True, slots=True)
class RetryClock:
    """The time budget of one step: it began ``since`` (the first transient error, possibly in an earlier
    execution) and lasts ``budget``."""

    budget: timedelta = DEFAULT_RETRY_BUDGET
    since: datetime | None = None

    def deadline(self, now: datetime) -> datetime:
        return (self.since or now) + self.budget


def backoff(attempt: int, error: StepError) -> timedelta:
    """How long to wait before attempt ``attempt + 1``: the Retry-After when ASR gave one, else 30 s doubling,
    at most 10 minutes."""
    if error.retry_after_seconds:
        return min(timedelta(seconds=error.retry_after_seconds), LONGEST_RETRY_AFTER)
    doubled: timedelta = TRANSIENT_BACKOFF * (2 ** min(attempt, 16))
    return min(doubled, LONGEST_BACKOFF)


def still_retrying(outcome: Outcome[Any], clock: RetryClock, now: datetime) -> bool:
    """The step met only transient errors and its budget is not spent: continue as new and try again."""
    error = outcome.error
    return not outcome.ok and error is not None and error.retryable and now < clock.deadline(now)


def run_step(context: df.DurableOrchestrationContext, activity: Activity[In, Out], value: In,
             clock: RetryClock | None = None, *,
             max_attempts: int = MAX_ATTEMPTS_PER_EXECUTION) -> Generator[Task, Any, Outcome[Out]]:  # fmt: skip
    """Run ``activity`` until it succeeds, fails for good, its time budget is spent, or it has been tried
    ``max_attempts`` times in this execution (then ``still_retrying`` is true of the outcome)."""
    clock = clock or RetryClock()
    payload = activity.request(value)
    outcome: Outcome[Out] = Outcome[Out](ok=False)
    first: datetime = context.current_utc_datetime
    deadline = clock.deadline(first)
    for attempt in range(max_attempts):
        try:
            raw = yield context.call_activity_with_retry(activity.name, CRASH_RETRY, payload, expected_type=dict)
        except Exception as exc:  # the activity crashed on every attempt: a bug or a lost dependency
            error = StepError(kind="permanent", message=f"{activity.name} crashed: {exc}")
            return Outcome[Out](ok=False, error=error)
        outcome = activity.outcome(raw)
        if outcome.ok or outcome.error is None or not outcome.error.retryable:
            return outcome
        now: datetime = context.current_utc_datetime
        wake = now + backoff(attempt, outcome.error)
        if wake >= deadline:
            return _spent(outcome, clock)
        # The wait comes before the next attempt, in this execution or (after the last one here) the next.
        yield context.create_timer(wake)
    return outcome


def _spent(outcome: Outcome[Out], clock: RetryClock) -> Outcome[Out]:
    """The budget ran out: the last transient error becomes the step's failure, saying for how long it was tried."""
    error = outcome.error
    assert error is not None
    hours = clock.budget.total_seconds() / 3600
    message = f"{error.message} (still failing after retrying for {hours:g} h, the step's retry budget)"
    spent = StepError(kind="permanent", message=message, code=error.code or "RetryBudgetSpent")
    return Outcome[Out](ok=False, error=spent)
