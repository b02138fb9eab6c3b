"""What to do with an event from the AWS side, given what Azure already knows.

Pure decisions, so the queue trigger stays thin and duplicates, late deliveries and unknown
instances are handled the same way everywhere.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from migration.events import AnyEvent, FailoverRequested, MigrationRequested
from migration.lifecycle import ACTIVE_RUNTIME_STATUSES, TERMINAL_PHASES, Phase
from migration.records import MigrationRecord


class IntakeAction(StrEnum):
    START = "start"
    RAISE_EVENT = "raise_event"
    IGNORE = "ignore"
    # The record says a migration is under way but its orchestration does not answer as running (a
    # host restarting, a lost worker): deliver the message again later rather than drop it.
    RETRY_LATER = "retry_later"


@dataclass(frozen=True, slots=True)
class IntakeDecision:
    action: IntakeAction
    reason: str


def decide(
    event: AnyEvent,
    record: MigrationRecord | None,
    runtime_status: str | None,
) -> IntakeDecision:
    running = runtime_status in ACTIVE_RUNTIME_STATUSES
    if isinstance(event, MigrationRequested):
        if running:
            return IntakeDecision(IntakeAction.IGNORE, "duplicate request: the migration is already running")
        if record is not None and record.phase is Phase.MIGRATED:
            return IntakeDecision(IntakeAction.IGNORE, "already migrated; a new request changes nothing")
        # A retry sends the record's own request again: accepted after Failed and RolledBack (its ends to retry).
        retryable = (Phase.FAILED, Phase.ROLLED_BACK)
        if record is not None and record.request_id == event.data.request_id and record.phase not in retryable:
            return IntakeDecision(
                IntakeAction.IGNORE,
                f"late duplicate of request {event.data.request_id} (ended {record.phase.value})",
            )
        return IntakeDecision(IntakeAction.START, "start the migration")
    kind = "FailoverRequested" if isinstance(event, FailoverRequested) else "CancelRequested"
    if record is None:
        return IntakeDecision(IntakeAction.IGNORE, f"{kind} for an instance with no migration record")
    if not running and record.phase not in TERMINAL_PHASES:
        return IntakeDecision(
            IntakeAction.RETRY_LATER,
            f"{kind} for a migration in {record.phase.value} whose orchestration is {runtime_status or 'not found'}",
        )
    if not running:
        return IntakeDecision(
            IntakeAction.IGNORE, f"{kind} arrived while no migration is running (phase {record.phase.value})"
        )
    return IntakeDecision(IntakeAction.RAISE_EVENT, f"deliver {kind} to the running migration")
