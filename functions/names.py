"""Names shared by starters, orchestrators and the HTTP API: orchestrations, activities, events."""

from __future__ import annotations

MIGRATE_INSTANCE = "migrate_instance"
MIGRATE_WAVE = "migrate_wave"

# External events raised on a migrate_instance orchestration.
EVENT_FAILOVER_REQUESTED = "FailoverRequested"
EVENT_CANCEL_REQUESTED = "CancelRequested"
EVENT_APPROVED = "Approved"
EVENT_RETRY = "RetryRequested"
# Raised by migrate_wave on each member once its recovery plan has failed over and committed.
EVENT_PLAN_CUTOVER_DONE = "PlanCutoverDone"
# Raised by migrate_wave on each member of a recovery plan that failed: resume from ASR's state.
EVENT_PLAN_CUTOVER_FAILED = "PlanCutoverFailed"


def wave_orchestration_id(wave: str) -> str:
    return f"wave-{wave}"
