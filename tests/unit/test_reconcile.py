from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from migration.events import MigrationRequestedData
from migration.identity import InstanceRef
from migration.lifecycle import Phase
from migration.reconcile import Verdict, assess
from migration.records import MigrationRecord

NOW = datetime(2026, 11, 26, 12, tzinfo=UTC)
STUCK_AFTER = timedelta(hours=12)


def record(phase: Phase, *, silent: timedelta = timedelta(minutes=5)) -> MigrationRecord:
    ref = InstanceRef(account_id="123456789012", region="eu-west-1", instance_id="i-0123456789abcdef0")
    request = MigrationRequestedData.model_validate(
        {"instance": ref, "private_ip": "10.0.1.15", "os_family": "linux", "wave": "w1", "request_id": "r-1"}
    )
    return MigrationRecord(request=request, phase=phase, created_at=NOW - timedelta(days=2), updated_at=NOW - silent)


@pytest.mark.parametrize("status", [None, "Failed", "Terminated", "Completed"])
def test_an_active_record_without_a_running_orchestration_is_restarted(status: str | None) -> None:
    finding = assess(record(Phase.REPLICATING), status, now=NOW, stuck_after=STUCK_AFTER)
    assert finding.verdict is Verdict.RESTART
    assert (status or "missing") in finding.reason


def test_a_silent_running_migration_is_flagged_stuck() -> None:
    finding = assess(record(Phase.COMMITTING, silent=timedelta(hours=13)), "Running", now=NOW, stuck_after=STUCK_AFTER)
    assert finding.verdict is Verdict.STUCK
    assert "13.0 h" in finding.reason


def test_waiting_for_cutover_is_allowed_to_be_quiet() -> None:
    quiet = record(Phase.AWAITING_CUTOVER, silent=timedelta(days=3))
    assert assess(quiet, "Running", now=NOW, stuck_after=STUCK_AFTER).verdict is Verdict.HEALTHY


@pytest.mark.parametrize("phase", [Phase.MIGRATED, Phase.FAILED, Phase.CANCELLED, Phase.NOT_READY])
def test_finished_migrations_are_left_alone(phase: Phase) -> None:
    assert assess(record(phase, silent=timedelta(days=30)), None, now=NOW, stuck_after=STUCK_AFTER).verdict is (
        Verdict.HEALTHY
    )


def test_the_record_keeps_the_whole_request_for_a_restart() -> None:
    """Nothing is rebuilt field by field: a restart gets the request as it arrived (disks_gib included)."""
    kept = record(Phase.REPLICATING)
    request = kept.request.model_copy(update={"disks_gib": [64, 256]})
    with_disks = kept.model_copy(update={"request": request})
    again = MigrationRecord.model_validate_json(with_disks.model_dump_json())
    assert again.request == request
    assert again.request.disks_gib == [64, 256]
    shown = json.loads(with_disks.model_dump_json())
    assert (shown["migration_id"], shown["wave"]) == (kept.migration_id, "w1")  # derived, shown, not stored twice
    assert "migration_id" not in MigrationRecord.model_fields
