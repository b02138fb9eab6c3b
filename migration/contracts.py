"""The activities' contracts: per activity, its name, its input model and its typed outcome.

Both sides of the Durable boundary use them: the orchestrators build inputs and read ``Outcome[T]``
(never a dict by string key), the activity functions parse inputs and run the step. A name is spelled
once, here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict

from migration.events import MigrationRequestedData
from migration.lifecycle import Phase, RollbackRequest, Stage
from migration.outcome import Outcome, StepError, capture
from migration.ports import AsrJob, VmHealth
from migration.waves import LeaveOut, PlanAssignment, RecoveryPlanSpec, StopReport, WaveClaim, WaveMembers

In = TypeVar("In", bound=BaseModel)
Out = TypeVar("Out", bound=BaseModel)


# -- step results -------------------------------------------------------------------------------------


class Registered(BaseModel):
    migration_id: str
    phase: Phase
    protected_item_name: str | None = None
    current_job_id: str | None = None
    new_request: bool
    # A rollback asked for while no orchestration ran (a Failed migration after its failover): carry it out.
    rollback: RollbackRequest | None = None


class JobStarted(BaseModel):
    job_id: str
    protected_item_name: str


class ReplicationSnapshot(BaseModel):
    protection_state: str
    replication_health: str
    progress_percent: int | None
    ready_for_cutover: bool
    failed_over: bool
    health_errors: list[str]


class Done(BaseModel):
    """A step whose only result is that it happened."""

    model_config = ConfigDict(extra="ignore")


class VmRemoval(BaseModel):
    """One try at deleting the failed-over VM (rollback): ``gone`` once Microsoft.Compute no longer has it."""

    vm_id: str | None = None
    gone: bool


class PlanJob(BaseModel):
    job_id: str


class PlanValidation(BaseModel):
    """The validation gate's look at every member of a recovery plan that failed over: its VM's health, or why it
    could not be read (``retryable``: a throttle or a 5xx, looked at again)."""

    members: dict[str, VmHealth]
    errors: dict[str, str] = {}
    retryable: dict[str, bool] = {}


class Released(BaseModel):
    members: list[str]


class Notified(BaseModel):
    members: int


# -- inputs --------------------------------------------------------------------------------------------


class ActivityInput(BaseModel):
    """An activity's input: strict, so a payload from another version fails loudly instead of half-parsing."""

    model_config = ConfigDict(extra="forbid")


class MigrationRef(ActivityInput):
    migration_id: str


class JobRef(ActivityInput):
    migration_id: str
    job_id: str


class ObserveRequest(ActivityInput):
    migration_id: str
    phase: Phase = Phase.REPLICATING


class PhaseRecord(ActivityInput):
    migration_id: str
    phase: Phase
    reason: str = ""


class AuditNote(ActivityInput):
    migration_id: str
    kind: str
    message: str


class RollbackStart(ActivityInput):
    migration_id: str
    request: RollbackRequest


class WaveRef(ActivityInput):
    wave: str
    stop_sources: bool = True


class PlanRef(ActivityInput):
    plan: RecoveryPlanSpec


class PlanRelease(ActivityInput):
    plan: RecoveryPlanSpec
    reason: str


class PlanNotice(ActivityInput):
    plan: RecoveryPlanSpec
    failed: bool = False
    reason: str = ""


class AsrJobRef(ActivityInput):
    job_id: str


# -- the contract ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Activity(Generic[In, Out]):
    name: str
    input: type[In]
    output: type[Out]
    # An activity that may answer "nothing to do" (no value) instead of an ``output``.
    optional: bool = False

    def request(self, value: In) -> dict[str, Any]:
        """The activity's input as it crosses the boundary."""
        return value.model_dump(mode="json")

    def outcome(self, raw: Any) -> Outcome[Out]:
        """The activity's answer, typed; a malformed answer is a bug, and fails loudly."""
        answer = dict(raw)
        if not answer.get("ok"):
            return Outcome[self.output](ok=False, error=StepError.model_validate(answer.get("error")))  # type: ignore[name-defined]
        value = answer.get("value")
        if self.optional and not value:
            return Outcome[self.output](ok=True)  # type: ignore[name-defined]
        return Outcome[self.output](ok=True, value=self.output.model_validate(value))  # type: ignore[name-defined]

    def run(self, raw: Any, step: Callable[[In], Out | None]) -> dict[str, Any]:
        """Parse the input and run ``step``; the answer crosses the boundary as an Outcome."""
        value = self.input.model_validate(raw)
        return capture(lambda: step(value))


REGISTER = Activity("register", MigrationRequestedData, Registered)
START_REPLICATION = Activity("start_replication", MigrationRef, JobStarted)
START_TEST_FAILOVER = Activity("start_test_failover", MigrationRef, JobStarted)
START_TEST_FAILOVER_CLEANUP = Activity("start_test_failover_cleanup", MigrationRef, JobStarted)
START_FAILOVER = Activity("start_failover", MigrationRef, JobStarted)
START_COMMIT = Activity("start_commit", MigrationRef, JobStarted)
START_COMPLETE_MIGRATION = Activity("start_complete_migration", MigrationRef, JobStarted)
START_DISABLE_REPLICATION = Activity("start_disable_replication", MigrationRef, JobStarted, optional=True)
GET_JOB = Activity("get_job", JobRef, AsrJob)
# The validation gate: one look at the failed-over VM (recorded on the record), between failover and commit.
VALIDATE_FAILOVER = Activity("validate_failover", MigrationRef, VmHealth)
# Rollback before commit: disable protection (no job when the item is gone already), then delete the failed-over VM.
START_ROLLBACK = Activity("start_rollback", RollbackStart, JobStarted, optional=True)
REMOVE_FAILED_OVER_VM = Activity("remove_failed_over_vm", MigrationRef, VmRemoval)
RESTART_JOB = Activity("restart_job", JobRef, JobStarted)
OBSERVE_REPLICATION = Activity("observe_replication", ObserveRequest, ReplicationSnapshot)
RECORD_PHASE = Activity("record_phase", PhaseRecord, Done)
LOG_EVENT = Activity("log_event", AuditNote, Done)

CLAIM_WAVE = Activity("claim_wave", WaveRef, WaveClaim)
COLLECT_STOPPED = Activity("collect_stopped", WaveMembers, StopReport)
LEAVE_OUT = Activity("leave_out_of_wave", LeaveOut, Released)
ASSIGN_PLAN = Activity("assign_plan", PlanAssignment, RecoveryPlanSpec)
START_PLAN_FAILOVER = Activity("start_plan_failover", PlanRef, PlanJob)
VALIDATE_PLAN = Activity("validate_plan", PlanRef, PlanValidation)
START_PLAN_COMMIT = Activity("start_plan_commit", PlanRef, PlanJob)
RELEASE_PLAN = Activity("release_plan", PlanRelease, Released)
GET_WAVE_JOB = Activity("get_wave_job", AsrJobRef, AsrJob)
NOTIFY_PLAN_MEMBERS = Activity("notify_plan_members", PlanNotice, Notified)

# The activity each starting stage of migrate_instance runs.
STARTERS: dict[Stage, Activity[MigrationRef, JobStarted]] = {
    Stage.ENABLE: START_REPLICATION,
    Stage.TEST_FAILOVER: START_TEST_FAILOVER,
    Stage.TEST_CLEANUP: START_TEST_FAILOVER_CLEANUP,
    Stage.FAILOVER: START_FAILOVER,
    Stage.COMMIT: START_COMMIT,
    Stage.COMPLETE: START_COMPLETE_MIGRATION,
    Stage.CANCEL: START_DISABLE_REPLICATION,
}
