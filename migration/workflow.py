"""The state one migrate_instance orchestration carries, across continue_as_new.

Everything the orchestrator decides from lives here, so a new execution resumes exactly where the
last one stopped, with bounded history.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import AwareDatetime, BaseModel, ConfigDict

from migration.events import CancelRequestedData, FailoverRequestedData, MigrationRequestedData


class Stage(StrEnum):
    REGISTER = "register"
    ENABLE = "enable"
    WATCH_ENABLE = "watch_enable"
    MONITOR = "monitor"
    TEST_FAILOVER = "test_failover"
    WATCH_TEST_FAILOVER = "watch_test_failover"
    TEST_CLEANUP = "test_cleanup"
    WATCH_TEST_CLEANUP = "watch_test_cleanup"
    AWAIT_CUTOVER = "await_cutover"
    FAILOVER = "failover"
    WATCH_FAILOVER = "watch_failover"
    COMMIT = "commit"
    WATCH_COMMIT = "watch_commit"
    COMPLETE = "complete"
    WATCH_COMPLETE = "watch_complete"
    CANCEL = "cancel"
    WATCH_CANCEL = "watch_cancel"
    DONE = "done"


# The stage that watches the job each stage starts, and where to go when that job succeeds.
JOB_STAGES: dict[Stage, tuple[Stage, Stage]] = {
    Stage.ENABLE: (Stage.WATCH_ENABLE, Stage.MONITOR),
    Stage.TEST_FAILOVER: (Stage.WATCH_TEST_FAILOVER, Stage.TEST_CLEANUP),
    Stage.TEST_CLEANUP: (Stage.WATCH_TEST_CLEANUP, Stage.AWAIT_CUTOVER),
    Stage.FAILOVER: (Stage.WATCH_FAILOVER, Stage.COMMIT),
    Stage.COMMIT: (Stage.WATCH_COMMIT, Stage.COMPLETE),
    Stage.COMPLETE: (Stage.WATCH_COMPLETE, Stage.DONE),
    Stage.CANCEL: (Stage.WATCH_CANCEL, Stage.DONE),
}
WATCH_STAGES = dict(JOB_STAGES.values())


class WorkflowState(BaseModel):
    model_config = ConfigDict(extra="forbid")

    request: MigrationRequestedData
    stage: Stage = Stage.REGISTER
    job_id: str | None = None
    job_checks: int = 0
    replication_started_at: AwareDatetime | None = None
    last_progress: int | None = None
    no_progress_since: AwareDatetime | None = None
    cutover: FailoverRequestedData | None = None
    cancel: CancelRequestedData | None = None
    test_failover_done: bool = False
    approval_required: bool = False
    approved: bool = False
    # The monitor's bounds (settings POLL_FLOOR_SECONDS / POLL_CEILING_SECONDS), fixed at start so that
    # replays stay deterministic whatever the settings say later.
    poll_floor_seconds: int = 300
    poll_ceiling_seconds: int = 6 * 3600
    window_reached: bool = False
    executions: int = 0
    outcome: str | None = None

    @property
    def migration_id(self) -> str:
        return self.request.instance.migration_id

    def note_progress(self, now: datetime, progress: int | None) -> None:
        if progress is not None and (self.last_progress is None or progress > self.last_progress):
            self.no_progress_since = None
        elif self.no_progress_since is None:
            self.no_progress_since = now
        self.last_progress = progress
