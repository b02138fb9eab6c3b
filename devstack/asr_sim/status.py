"""What ASR says about a replicated item at an instant: derived, never stored.

The strings follow the real service where a public example or report shows them (see
docs/ASR_SIMULATOR.md, "State strings"); the rest are the simulator's choice and are documented there.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from devstack.asr_sim.arm import iso, stable_uuid
from devstack.asr_sim.jobs import FINISHED, Job
from devstack.asr_sim.model import ProtectedItem

OPS_PROTECTED = ["UnplannedFailover", "DisableProtection", "TestFailover"]
OPS_REPLICATING = ["DisableProtection"]
OPS_TEST_FAILOVER_PENDING = ["TestFailoverCleanup"]
OPS_FAILED_OVER = ["CompleteMigration", "Commit", "DisableProtection", "ChangePit"]
OPS_COMMITTED = ["CompleteMigration", "DisableProtection", "Failback"]
OPS_ENABLE_FAILED = ["DisableProtection"]

# Simulator-chosen health error codes (documented); real ASR uses numeric codes of the same form.
NO_PROGRESS = (
    "78161",
    "Initial replication is making no progress.",
    "The replication appliance has not received data from the source machine.",
    "Check that the Mobility service on the source can reach the appliance on port 9443.",
)
RPO_EXCEEDED = (
    "78162",
    "The recovery point objective exceeded the critical threshold.",
    "No data has reached Azure from the source machine for a while.",
    "Check the network between the source machine and the replication appliance.",
)
SLOW_PROGRESS = ("78163", "Initial replication is slower than the rate of change on the source.",
                 "The source writes data faster than the appliance can upload it.",
                 "Increase the appliance's upload bandwidth or reduce the churn on the source.")  # fmt: skip
RPO_CRITICAL_SECONDS = 30 * 60


@dataclass(frozen=True)
class ItemStatus:
    protection_state: str
    protection_description: str
    active_location: str
    test_failover_state: str
    test_failover_description: str
    allowed_operations: list[str]
    replication_health: str
    failover_health: str
    health_errors: list[dict[str, Any]] = field(default_factory=list)
    ir_health: str = "None"
    replicating_complete: bool = False


def job_in_flight(job: Job | None, now: datetime) -> bool:
    return job is not None and job.state_at(now) not in FINISHED


def item_status(item: ProtectedItem, job: Job | None, now: datetime, *, error_job: Job | None) -> ItemStatus:
    busy = job_in_flight(job, now)
    scenario = job.scenario.name if job is not None and busy else None
    progress = item.replication
    complete = progress is not None and progress.is_complete(now)
    stalled = progress is not None and progress.stalled_since is not None and item.failover == "None"
    starved = progress is not None and progress.rate_bytes_per_s <= 0 and not complete

    state, description = _protection_state(item, scenario, complete)
    tfo_state, tfo_description = _test_failover_state(item)
    location = "Recovery" if item.failover in ("CommitPending", "Committing", "Committed") else "Primary"
    allowed = [] if busy else _allowed_operations(item, complete)

    errors: list[dict[str, Any]] = []
    health, failover_health, ir_health = "Normal", "Normal", "None"
    if item.enable_failed and error_job is not None and error_job.error is not None:
        health = "Critical"
        spec = error_job.error
        errors.append(_health_error(item, (spec.code, spec.message, spec.possible_causes,
                                           spec.recommended_action), error_job.created_at, "Error"))  # fmt: skip
    elif item.enabled and item.failover == "None" and progress is not None:
        if stalled and not complete:
            health, ir_health = "Critical", "NoProgress"
            errors.append(_health_error(item, NO_PROGRESS, progress.stalled_since or now, "Error"))
        elif stalled:
            rpo = progress.rpo(now)
            if rpo is not None and rpo[2] >= RPO_CRITICAL_SECONDS:
                health, failover_health = "Critical", "Warning"
                errors.append(_health_error(item, RPO_EXCEEDED, progress.stalled_since or now, "Error"))
        elif starved:
            health, ir_health = "Warning", "SlowProgress"
            errors.append(_health_error(item, SLOW_PROGRESS, progress.started_at, "Warning"))
        elif not complete:
            ir_health = "InProgress"
    elif scenario == "EnableDr":
        ir_health = "Queued"
    return ItemStatus(
        protection_state=state,
        protection_description=description,
        active_location=location,
        test_failover_state=tfo_state,
        test_failover_description=tfo_description,
        allowed_operations=allowed,
        replication_health=health,
        failover_health=failover_health,
        health_errors=errors,
        ir_health=ir_health,
        replicating_complete=complete,
    )


def _protection_state(item: ProtectedItem, scenario: str | None, complete: bool) -> tuple[str, str]:
    if item.removal == "Disabling":
        return "DisablingProtection", "Disabling protection"
    if item.removal == "Purging":
        return "DisablingProtection", "Deleting the replicated item"
    if scenario == "EnableDr" or (not item.enabled and not item.enable_failed):
        return "EnablingProtection", "Enabling protection"
    if item.enable_failed:
        return "EnablingFailed", "Enabling protection failed"
    if item.failover == "InProgress":
        return "UnplannedFailoverInProgress", "Failover in progress"
    if item.failover == "CommitPending":
        return "UnplannedFailoverCommitPendingStatesBegin", "Failover completed"
    if item.failover == "Committing":
        return "UnplannedFailoverCommitPendingStatesBegin", "Committing failover"
    if item.failover == "Committed":
        return "UnplannedFailoverCommitted", "Failover committed"
    if not complete:
        return "InitialReplicationInProgress", "Initial replication in progress"
    if item.test_failover == "InProgress":
        return "Protected", "Test failover in progress"
    if item.test_failover in ("WaitingForCompletion", "Failed"):
        return "Protected", "Cleanup test failover pending"
    if item.test_failover == "Cleaning":
        return "Protected", "Cleaning up test failover"
    return "Protected", "Protected"


def _test_failover_state(item: ProtectedItem) -> tuple[str, str]:
    return {
        "None": ("None", "None"),
        "InProgress": ("InProgress", "Test failover in progress"),
        "WaitingForCompletion": ("WaitingForCompletion", "Waiting for user input"),
        "Failed": ("Failed", "Test failover failed"),
        # The real service keeps MarkedForDeletion after a cleanup (every public example shows it).
        "Cleaning": ("MarkedForDeletion", "Cleaning up test environment"),
        "CleanedUp": ("MarkedForDeletion", "Cleaning up test environment"),
    }[item.test_failover]


def _allowed_operations(item: ProtectedItem, complete: bool) -> list[str]:
    if item.removal != "None":
        return []
    if item.enable_failed:
        return list(OPS_ENABLE_FAILED)
    if not item.enabled:
        return []
    if item.failover == "CommitPending":
        return list(OPS_FAILED_OVER)
    if item.failover == "Committed":
        return list(OPS_COMMITTED)
    if item.failover != "None":
        return []
    if item.test_failover in ("WaitingForCompletion", "Failed"):
        return list(OPS_TEST_FAILOVER_PENDING)
    if not complete:
        return list(OPS_REPLICATING)
    return list(OPS_PROTECTED)


def _health_error(item: ProtectedItem, error: tuple[str, str, str, str], since: datetime, level: str) -> dict[str, Any]:
    code, message, causes, action = error
    return {
        "innerHealthErrors": [],
        "errorSource": "VirtualMachine",
        "errorType": "Replication",
        "errorLevel": level,
        "errorCategory": "Replication",
        "errorCode": code,
        "summaryMessage": message,
        "errorMessage": message,
        "possibleCauses": causes,
        "recommendedAction": action,
        "creationTimeUtc": iso(since),
        "recoveryProviderErrorMessage": "",
        "entityId": item.internal_id,
        "errorId": stable_uuid("health", item.internal_id, code, since.isoformat()),
        "customerResolvability": "Allowed",
    }
