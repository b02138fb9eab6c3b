"""Names shared by starters, orchestrators and the HTTP API: orchestrations, activities, events."""

from __future__ import annotations

from migration import lifecycle

MIGRATE_INSTANCE = "migrate_instance"
MIGRATE_WAVE = "migrate_wave"

# External events raised on a migrate_instance orchestration (the lifecycle names them).
EVENT_FAILOVER_REQUESTED = lifecycle.EVENT_FAILOVER
EVENT_CANCEL_REQUESTED = lifecycle.EVENT_CANCEL
EVENT_APPROVED = lifecycle.EVENT_APPROVED
# Roll a failover back before its commit (docs/ROLLBACK.md).
EVENT_ROLLBACK_REQUESTED = lifecycle.EVENT_ROLLBACK
# Raised by migrate_wave on each member once its recovery plan has failed over and committed.
EVENT_PLAN_CUTOVER_DONE = lifecycle.EVENT_PLAN_DONE
# Raised by migrate_wave on each member of a recovery plan that failed: resume from ASR's state.
EVENT_PLAN_CUTOVER_FAILED = lifecycle.EVENT_PLAN_FAILED


def wave_orchestration_id(wave: str) -> str:
    return f"wave-{wave}"
