"""One small error hierarchy for both clouds.

Adapters translate SDK errors into these types; callers decide by type, never by message text.
"""

from __future__ import annotations


class MigrationError(Exception):
    """Base of every error aws2azure raises on purpose."""


class TransientCloudError(MigrationError):
    """The call may succeed if repeated later (throttling, 5xx, timeouts)."""

    def __init__(self, message: str, *, retry_after_seconds: float | None = None) -> None:
        super().__init__(message)
        self.retry_after_seconds = retry_after_seconds


class ThrottledError(TransientCloudError):
    """The service said 429; honour ``retry_after_seconds`` before trying again."""


class AwaitingDiscovery(TransientCloudError):
    """The replication appliance has not discovered the machine yet (its Mobility agent has not registered):
    look again after ``retry_after_seconds``; the step gives up with MachineNotDiscovered after its bound."""

    code = "AwaitingDiscovery"


class AwaitingOperation(TransientCloudError):
    """ASR is still running an operation this one depends on (e.g. the recovery plan's creation)."""

    def __init__(self, message: str, *, code: str, retry_after_seconds: float | None = None) -> None:
        super().__init__(message, retry_after_seconds=retry_after_seconds)
        self.code = code


class PermanentCloudError(MigrationError):
    """Repeating the same call will fail the same way; an operator has to act."""

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.code = code


class PreconditionFailed(PermanentCloudError):
    """The resource is not in a state that allows the operation (wrong phase, stale ETag, ...)."""


class NotFound(PermanentCloudError):
    """The resource does not exist."""


class InvalidInput(PermanentCloudError):
    """Input from outside (an event, a tag, an HTTP body) breaks the contract."""

    def __init__(self, message: str, *, problems: list[str] | None = None) -> None:
        super().__init__(message, code="InvalidInput")
        self.problems = problems or [message]


class InvalidTransition(PreconditionFailed):
    """A phase change that the state machine does not allow."""

    def __init__(self, current: str, requested: str) -> None:
        super().__init__(f"cannot move a migration from {current} to {requested}", code="InvalidTransition")
        self.current = current
        self.requested = requested
