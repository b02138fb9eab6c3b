from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from migration.identity import InstanceRef
from migration.lifecycle import Phase
from migration.reconcile import Verdict, assess, request_from_record
from migration.records import MigrationRecord

NOW = datetime(2026, 11, 26, 12, tzinfo=UTC)
STUCK_AFTER = timedelta(hours=12)


def record(phase: Phase, *, silent: timedelta = timedelta(minutes=5)) -> MigrationRecord:
    ref = InstanceRef(account_id="123456789012", region="eu-west-1", instance_id="i-0123456789abcdef0")
    return MigrationRecord(
        migration_id=ref.migration_id, instance=ref, phase=phase, request_id="r-1", private_ip="10.0.1.15",
        os_family="linux", wave="w1", created_at=NOW - timedelta(days=2), updated_at=NOW - silent,
    )  # fmt: skip


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


def test_the_request_is_rebuilt_from_the_record() -> None:
    rebuilt = request_from_record(record(Phase.REPLICATING))
    assert rebuilt.instance.instance_id == "i-0123456789abcdef0"
    assert str(rebuilt.private_ip) == "10.0.1.15"
    assert rebuilt.wave == "w1"
