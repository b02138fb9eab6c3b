from __future__ import annotations

from datetime import UTC, datetime

import pytest

from migration.events import CancelRequested, FailoverRequested, MigrationRequested, MigrationRequestedData, parse_event
from migration.identity import InstanceRef
from migration.intake import IntakeAction, decide
from migration.lifecycle import Phase
from migration.records import MigrationRecord

REF = InstanceRef(account_id="123456789012", region="eu-west-1", instance_id="i-0123456789abcdef0")
NOW = datetime(2026, 11, 26, 12, tzinfo=UTC)
ENVELOPE = {"specversion": "1.0", "id": "e-1", "source": "aws2azure/test", "time": NOW.isoformat(),
            "subject": REF.instance_id}  # fmt: skip


def requested(request_id: str = "r-1") -> MigrationRequested:
    event = parse_event(
        {
            **ENVELOPE,
            "type": "io.aws2azure.migration.MigrationRequested.v1",
            "data": {
                "instance": REF.model_dump(),
                "private_ip": "10.0.1.15",
                "os_family": "windows",
                "request_id": request_id,
            },
        }
    )
    assert isinstance(event, MigrationRequested)
    return event


def failover() -> FailoverRequested:
    event = parse_event(
        {
            **ENVELOPE,
            "type": "io.aws2azure.migration.FailoverRequested.v1",
            "data": {"instance": REF.model_dump(), "requested_by": "schedule", "source_stopped": True},
        }
    )
    assert isinstance(event, FailoverRequested)
    return event


def cancel() -> CancelRequested:
    event = parse_event(
        {
            **ENVELOPE,
            "type": "io.aws2azure.migration.CancelRequested.v1",
            "data": {"instance": REF.model_dump(), "requested_by": "tag-removed"},
        }
    )
    assert isinstance(event, CancelRequested)
    return event


def record(phase: Phase, request_id: str = "r-1") -> MigrationRecord:
    request = MigrationRequestedData.model_validate(
        {"instance": REF, "private_ip": "10.0.1.15", "os_family": "windows", "request_id": request_id}
    )
    return MigrationRecord(request=request, phase=phase, created_at=NOW, updated_at=NOW)


def test_a_first_request_starts_the_migration() -> None:
    assert decide(requested(), None, None).action is IntakeAction.START


@pytest.mark.parametrize("status", ["Running", "Pending", "ContinuedAsNew"])
def test_a_request_for_a_running_migration_is_a_duplicate(status: str) -> None:
    decision = decide(requested(), record(Phase.REPLICATING), status)
    assert decision.action is IntakeAction.IGNORE
    assert "duplicate" in decision.reason


def test_a_late_duplicate_of_a_finished_request_changes_nothing() -> None:
    decision = decide(requested("r-1"), record(Phase.CANCELLED, "r-1"), "Completed")
    assert decision.action is IntakeAction.IGNORE
    assert "late duplicate" in decision.reason


def test_a_migrated_instance_is_never_started_again() -> None:
    assert decide(requested("r-9"), record(Phase.MIGRATED), "Completed").action is IntakeAction.IGNORE


def test_a_new_request_after_failure_or_cancel_starts_again() -> None:
    assert decide(requested("r-2"), record(Phase.CANCELLED, "r-1"), "Completed").action is IntakeAction.START
    assert decide(requested("r-1"), record(Phase.FAILED, "r-1"), "Completed").action is IntakeAction.START


@pytest.mark.parametrize("event", [failover(), cancel()])
def test_signals_go_to_a_running_migration_only(event: FailoverRequested | CancelRequested) -> None:
    assert decide(event, record(Phase.AWAITING_CUTOVER), "Running").action is IntakeAction.RAISE_EVENT
    stopped = decide(event, record(Phase.MIGRATED), "Completed")
    assert stopped.action is IntakeAction.IGNORE
    assert "no migration is running" in stopped.reason
    # Under way by the record but not running (a host restarting): the message comes back later.
    orphaned = decide(event, record(Phase.AWAITING_CUTOVER), None)
    assert orphaned.action is IntakeAction.RETRY_LATER
    assert "AwaitingCutover" in orphaned.reason
    unknown = decide(event, None, None)
    assert unknown.action is IntakeAction.IGNORE
    assert "no migration record" in unknown.reason
