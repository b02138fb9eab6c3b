"""One way to run an activity from an orchestrator, shared by migrate_instance and migrate_wave.

Throttling waits exactly its Retry-After and transient errors back off, both on durable timers; an activity
that crashed (a bug, a lost worker) is retried by the SDK and then answers as a permanent error, so the
orchestration ends with a reason instead of failing opaquely.
"""

from __future__ import annotations

from collections.abc import Generator
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
MAX_STEP_ATTEMPTS = 8
TRANSIENT_BACKOFF = timedelta(seconds=30)


def run_step(context: df.DurableOrchestrationContext, activity: Activity[In, Out],
             value: In) -> Generator[Task, Any, Outcome[Out]]:  # fmt: skip
    """Run ``activity`` once it succeeds, fails for good, or has been retried MAX_STEP_ATTEMPTS times."""
    payload = activity.request(value)
    outcome: Outcome[Out] = Outcome[Out](ok=False)
    for attempt in range(MAX_STEP_ATTEMPTS):
        try:
            raw = yield context.call_activity_with_retry(activity.name, CRASH_RETRY, payload, expected_type=dict)
        except Exception as exc:  # the activity crashed on every attempt: a bug or a lost dependency
            error = StepError(kind="permanent", message=f"{activity.name} crashed: {exc}")
            return Outcome[Out](ok=False, error=error)
        outcome = activity.outcome(raw)
        if outcome.ok or outcome.error is None or not outcome.error.retryable:
            return outcome
        if attempt + 1 < MAX_STEP_ATTEMPTS:
            wait = outcome.error.retry_after_seconds
            delay = timedelta(seconds=wait) if wait else TRANSIENT_BACKOFF * (2**attempt)
            now: datetime = context.current_utc_datetime
            yield context.create_timer(now + delay)
    return outcome
