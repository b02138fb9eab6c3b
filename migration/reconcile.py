"""The reconciliation sweep's decisions: records whose orchestration is gone or silent.

Pure, so the timer trigger stays thin: it feeds records and runtime statuses in, acts on the
verdicts, and records each one.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from migration.lifecycle import ACTIVE_RUNTIME_STATUSES, TERMINAL_PHASES, Phase
from migration.records import MigrationRecord

# Phases in which a long silence is normal: the orchestration is waiting for people or a window.
QUIET_PHASES = frozenset({Phase.AWAITING_CUTOVER, Phase.READY_FOR_CUTOVER})


class Verdict(StrEnum):
    HEALTHY = "healthy"
    RESTART = "restart"
    STUCK = "stuck"


@dataclass(frozen=True, slots=True)
class Finding:
    migration_id: str
    verdict: Verdict
    reason: str


def assess(record: MigrationRecord, runtime_status: str | None, *, now: datetime, stuck_after: timedelta) -> Finding:
    if record.phase in TERMINAL_PHASES:
        return Finding(record.migration_id, Verdict.HEALTHY, "finished")
    if runtime_status not in ACTIVE_RUNTIME_STATUSES:
        return Finding(
            record.migration_id,
            Verdict.RESTART,
            f"record is {record.phase.value} but its orchestration is {runtime_status or 'missing'}; restarted "
            "from what ASR reports",
        )
    silent_for = now - record.updated_at
    if record.phase not in QUIET_PHASES and silent_for > stuck_after:
        hours = silent_for.total_seconds() / 3600
        return Finding(
            record.migration_id,
            Verdict.STUCK,
            f"no progress recorded for {hours:.1f} h in phase {record.phase.value}; "
            "check the orchestration's status and the ASR job",
        )
    return Finding(record.migration_id, Verdict.HEALTHY, "running")
