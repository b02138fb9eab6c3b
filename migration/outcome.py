"""Activity results that carry errors by type across the orchestration boundary.

Durable activities can only fail with an opaque message, and the Python SDK's retry cannot tell
throttling from a bad request. So steps return an Outcome: the orchestrator waits exactly the
Retry-After on throttling, retries transient errors, and fails fast with the reason otherwise.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Generic, Literal, TypeVar

from pydantic import BaseModel

from migration.errors import (
    InvalidInput,
    MigrationError,
    NotFound,
    PermanentCloudError,
    PreconditionFailed,
    ThrottledError,
    TransientCloudError,
)

T = TypeVar("T")
ErrorKind = Literal["throttled", "transient", "precondition", "not_found", "invalid", "permanent"]


class StepError(BaseModel):
    kind: ErrorKind
    message: str
    code: str | None = None
    retry_after_seconds: float | None = None

    @property
    def retryable(self) -> bool:
        return self.kind in ("throttled", "transient")


class Outcome(BaseModel, Generic[T]):
    """What one activity answered: its typed value, or the error it met (never both)."""

    ok: bool
    value: T | None = None
    error: StepError | None = None


def classify(exc: MigrationError) -> StepError:
    code = getattr(exc, "code", None)
    if isinstance(exc, ThrottledError):
        return StepError(kind="throttled", message=str(exc), retry_after_seconds=exc.retry_after_seconds)
    if isinstance(exc, TransientCloudError):
        return StepError(kind="transient", message=str(exc), code=code, retry_after_seconds=exc.retry_after_seconds)
    if isinstance(exc, NotFound):
        return StepError(kind="not_found", message=str(exc), code=code)
    if isinstance(exc, InvalidInput):
        return StepError(kind="invalid", message=str(exc), code=code)
    if isinstance(exc, PreconditionFailed):
        return StepError(kind="precondition", message=str(exc), code=code)
    if isinstance(exc, PermanentCloudError):
        return StepError(kind="permanent", message=str(exc), code=code)
    return StepError(kind="permanent", message=str(exc))


def capture(step: Callable[[], BaseModel | None]) -> dict[str, Any]:
    """Run one step; our own errors become an Outcome, anything else propagates (a bug: let the
    activity fail loudly so the orchestrator's crash retry and the logs catch it)."""
    try:
        result = step()
    except MigrationError as exc:
        return Outcome[None](ok=False, error=classify(exc)).model_dump(mode="json")
    value = result.model_dump(mode="json") if result is not None else None
    return {"ok": True, "value": value, "error": None}
