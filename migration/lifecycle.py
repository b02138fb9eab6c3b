"""The migration lifecycle, in one place: what a migration can be, and what happens next.

- ``Phase``: what the record says (and the tags, the API, the status page); the one table of allowed
  transitions; every phase group (cancellable, failover started, terminal, active) defined once.
- ``Stage``: where one migrate_instance orchestration stands, and which phase each stage works in.
- ``WorkflowState``: everything the orchestration decides from, carried across continue_as_new.
- The decisions: pure functions from the state and what just happened (an activity's outcome, an event,
  a timer) to the state and the commands to carry out. The orchestrator (functions/orchestrations.py)
  only carries commands out: it calls activities, sets timers and waits for events.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, ValidationError

from migration.errors import InvalidTransition
from migration.events import CancelRequestedData, FailoverRequestedData, MigrationRequestedData
from migration.monitoring import PollPolicy, is_stalled, job_poll_delay, next_replication_poll

if TYPE_CHECKING:
    from migration.contracts import Registered, ReplicationSnapshot
    from migration.outcome import StepError
    from migration.ports import AsrJob, VmHealth


class Phase(StrEnum):
    REQUESTED = "Requested"
    NOT_READY = "NotReady"
    INSTALLING_AGENT = "InstallingAgent"
    AWAITING_DISCOVERY = "AwaitingDiscovery"
    ENABLING_REPLICATION = "EnablingReplication"
    REPLICATING = "Replicating"
    READY_FOR_CUTOVER = "ReadyForCutover"
    TEST_FAILOVER = "TestFailover"
    AWAITING_CUTOVER = "AwaitingCutover"
    FAILING_OVER = "FailingOver"
    # The failover job succeeded; the failed-over VM is checked before the commit (the point of no return).
    VALIDATING = "Validating"
    # Rollback before commit (docs/ROLLBACK.md): the ASR item is removed, the failed-over VM deleted, the source
    # started again in AWS. RolledBack ends the orchestration; a retry starts again from Requested.
    ROLLING_BACK = "RollingBack"
    ROLLED_BACK = "RolledBack"
    COMMITTING = "Committing"
    COMPLETING = "Completing"
    MIGRATED = "Migrated"
    FAILED = "Failed"
    CANCELLED = "Cancelled"


P = Phase

# Cancel is accepted only before failover starts: ASR must never cancel a migration failover.
CANCELLABLE_PHASES = frozenset(
    {
        P.REQUESTED,
        P.NOT_READY,
        P.INSTALLING_AGENT,
        P.AWAITING_DISCOVERY,
        P.ENABLING_REPLICATION,
        P.REPLICATING,
        P.READY_FOR_CUTOVER,
        P.TEST_FAILOVER,
        P.AWAITING_CUTOVER,
    }
)

ALLOWED_TRANSITIONS: dict[Phase, frozenset[Phase]] = {
    P.REQUESTED: frozenset(
        {P.NOT_READY, P.INSTALLING_AGENT, P.AWAITING_DISCOVERY, P.ENABLING_REPLICATION, P.FAILED, P.CANCELLED}
    ),
    # The Mobility service is installed through SSM, then the appliance has to discover the machine.
    P.INSTALLING_AGENT: frozenset({P.AWAITING_DISCOVERY, P.FAILED, P.CANCELLED, P.NOT_READY}),
    P.AWAITING_DISCOVERY: frozenset({P.ENABLING_REPLICATION, P.FAILED, P.CANCELLED}),
    # A NotReady instance is re-checked when its owner fixes it and tags it again.
    P.NOT_READY: frozenset({P.REQUESTED, P.CANCELLED}),
    P.ENABLING_REPLICATION: frozenset({P.REPLICATING, P.FAILED, P.CANCELLED}),
    # Validating: a retry's monitor (or a released wave member's) reads ASR and finds the item failed over.
    P.REPLICATING: frozenset({P.READY_FOR_CUTOVER, P.VALIDATING, P.FAILED, P.CANCELLED}),
    P.READY_FOR_CUTOVER: frozenset({P.TEST_FAILOVER, P.AWAITING_CUTOVER, P.FAILED, P.CANCELLED}),
    P.TEST_FAILOVER: frozenset({P.AWAITING_CUTOVER, P.FAILED, P.CANCELLED}),
    # Replication can degrade while the window is awaited; the monitor then goes back to Replicating.
    P.AWAITING_CUTOVER: frozenset({P.FAILING_OVER, P.REPLICATING, P.FAILED, P.CANCELLED}),
    P.FAILING_OVER: frozenset({P.VALIDATING, P.COMMITTING, P.ROLLING_BACK, P.FAILED}),
    # The gate passed: commit. It failed or ran out of time: rolled back (ROLLBACK_ON_FAILED_VALIDATION, the
    # default) or Failed; no commit is sent either way.
    P.VALIDATING: frozenset({P.COMMITTING, P.ROLLING_BACK, P.FAILED}),
    # Disable protection, delete the failed-over VM; a step that fails leaves the migration Failed (a rollback can
    # be asked for again).
    P.ROLLING_BACK: frozenset({P.ROLLED_BACK, P.FAILED}),
    # The ASR item is gone: a retry starts from the beginning (enable runs again).
    P.ROLLED_BACK: frozenset({P.REQUESTED}),
    P.COMMITTING: frozenset({P.COMPLETING, P.FAILED}),
    P.COMPLETING: frozenset({P.MIGRATED, P.FAILED}),
    P.MIGRATED: frozenset(),
    # A Failed migration is retried from where ASR says it stands (a replicated item resumes
    # monitoring, a failed-over one goes on to commit), so nothing already done is done twice.
    P.FAILED: frozenset(
        {
            P.REQUESTED,
            P.ENABLING_REPLICATION,
            P.REPLICATING,
            P.READY_FOR_CUTOVER,
            P.AWAITING_CUTOVER,
            P.FAILING_OVER,
            P.VALIDATING,
            P.COMMITTING,
            P.COMPLETING,
            P.ROLLING_BACK,
        }
    ),
    # A cancelled migration's replication was disabled: a new request starts from the beginning.
    P.CANCELLED: frozenset({P.REQUESTED}),
}

# Phases in which the migration's own orchestration has ended (a retry or a new request starts another).
TERMINAL_PHASES = frozenset({P.MIGRATED, P.FAILED, P.CANCELLED, P.NOT_READY, P.ROLLED_BACK})
# From here on the failover was sent: never again, and never cancelled.
FAILOVER_STARTED_PHASES = frozenset(
    {P.FAILING_OVER, P.VALIDATING, P.ROLLING_BACK, P.COMMITTING, P.COMPLETING, P.MIGRATED}
)
# From here on the failover is committed: ASR no longer goes back, so a rollback is refused.
COMMITTED_PHASES = frozenset({P.COMMITTING, P.COMPLETING, P.MIGRATED})
# A rollback is accepted in these (and in Failed after a failover and before a commit: see rollback_refusal).
ROLLBACK_PHASES = frozenset({P.FAILING_OVER, P.VALIDATING})
ACTIVE_PHASES = frozenset(Phase) - TERMINAL_PHASES
# Phases before the failover that a machine's replication can be in while a wave cuts over.
BEFORE_FAILOVER_PHASES = frozenset({P.REPLICATING, P.READY_FOR_CUTOVER, P.TEST_FAILOVER, P.AWAITING_CUTOVER})

# Durable Functions runtime statuses in which an orchestration is alive and acts on events.
ACTIVE_RUNTIME_STATUSES = frozenset({"Pending", "Running", "ContinuedAsNew", "Suspended"})


def can_transition(current: Phase, requested: Phase) -> bool:
    return requested in ALLOWED_TRANSITIONS[current]


def ensure_transition(current: Phase | str, requested: Phase | str) -> Phase:
    """Return ``requested`` as a Phase if the move from ``current`` is allowed, else raise.

    Re-entering the same phase is allowed: progress updates within a phase are not transitions.
    """
    src, dst = Phase(current), Phase(requested)
    if src is dst or can_transition(src, dst):
        return dst
    raise InvalidTransition(src.value, dst.value)


def is_cancellable(phase: Phase | str) -> bool:
    return Phase(phase) in CANCELLABLE_PHASES


def rollback_refusal(phase: Phase, *, failover_done: bool, committed: bool, rolling_back: bool = False
                     ) -> tuple[str, str] | None:  # fmt: skip
    """Why a rollback cannot be asked for now, as (code, words), or None when it can: after a failover (in
    FailingOver the request waits for the failover job to end) and before a commit."""
    if phase is P.ROLLED_BACK:
        return "AlreadyRolledBack", "it is already RolledBack; 'aws2azure retry' starts it again"
    if phase is P.ROLLING_BACK or rolling_back:
        return "RollingBack", "its rollback is under way"
    if phase in COMMITTED_PHASES or committed:
        return "AlreadyCommitted", (
            f"it is {phase.value}: commit ended ASR's failover: the Azure VM is the machine now, and ASR no longer "
            "offers to go back (no Commit means no way back is lost; after it, fail back or rebuild the source)"
        )
    if phase in ROLLBACK_PHASES or (phase is P.FAILED and failover_done):
        return None
    if phase is P.FAILED:
        return "NotFailedOver", "it failed before any failover: there is nothing to roll back (retry it instead)"
    if phase in CANCELLABLE_PHASES:
        return "NotFailedOver", (
            f"it is {phase.value}: nothing has failed over yet, so there is nothing to roll back; cancel it instead "
            "(aws2azure cancel)"
        )
    return "NothingToRollBack", f"it is {phase.value}: there is nothing to roll back"


# --------------------------------------------------------------------------------------------------
# Orchestrator stages
# --------------------------------------------------------------------------------------------------


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
    VALIDATE = "validate"
    COMMIT = "commit"
    WATCH_COMMIT = "watch_commit"
    COMPLETE = "complete"
    WATCH_COMPLETE = "watch_complete"
    CANCEL = "cancel"
    WATCH_CANCEL = "watch_cancel"
    # Rollback before commit: disable protection (an ASR job), then delete the failed-over VM.
    ROLLBACK = "rollback"
    WATCH_ROLLBACK = "watch_rollback"
    REMOVE_VM = "remove_vm"
    DONE = "done"


S = Stage

# The stage that watches the job each starting stage begins, and where to go when that job succeeds.
JOB_STAGES: dict[Stage, tuple[Stage, Stage]] = {
    S.ENABLE: (S.WATCH_ENABLE, S.MONITOR),
    S.TEST_FAILOVER: (S.WATCH_TEST_FAILOVER, S.TEST_CLEANUP),
    S.TEST_CLEANUP: (S.WATCH_TEST_CLEANUP, S.AWAIT_CUTOVER),
    # The failover job's success leads to the validation gate, not straight to the commit.
    S.FAILOVER: (S.WATCH_FAILOVER, S.VALIDATE),
    S.COMMIT: (S.WATCH_COMMIT, S.COMPLETE),
    S.COMPLETE: (S.WATCH_COMPLETE, S.DONE),
    S.CANCEL: (S.WATCH_CANCEL, S.DONE),
    S.ROLLBACK: (S.WATCH_ROLLBACK, S.REMOVE_VM),
}
WATCH_STAGES: dict[Stage, Stage] = dict(JOB_STAGES.values())
STARTING_STAGE_OF: dict[Stage, Stage] = {watch: start for start, (watch, _) in JOB_STAGES.items()}

# The phase the record is in while the orchestration is at each stage that moves the failover along.
STAGE_PHASE: dict[Stage, Phase] = {
    S.FAILOVER: P.FAILING_OVER, S.WATCH_FAILOVER: P.FAILING_OVER,
    S.VALIDATE: P.VALIDATING,
    S.ROLLBACK: P.ROLLING_BACK, S.WATCH_ROLLBACK: P.ROLLING_BACK, S.REMOVE_VM: P.ROLLING_BACK,
    S.COMMIT: P.COMMITTING, S.WATCH_COMMIT: P.COMMITTING,
    S.COMPLETE: P.COMPLETING, S.WATCH_COMPLETE: P.COMPLETING,
}  # fmt: skip
# "Failover has started", for stages: derived from the phases, so the two can never disagree.
FAILOVER_STARTED_STAGES = frozenset(stage for stage, phase in STAGE_PHASE.items() if phase in FAILOVER_STARTED_PHASES)
CANCEL_STAGES = frozenset({S.CANCEL, S.WATCH_CANCEL, S.DONE})
ROLLBACK_STAGES = frozenset({S.ROLLBACK, S.WATCH_ROLLBACK, S.REMOVE_VM})
# Stages from which the commit has been sent: a rollback is refused there.
COMMIT_STAGES = frozenset({S.COMMIT, S.WATCH_COMMIT, S.COMPLETE, S.WATCH_COMPLETE})
# A record found in one of these phases with a job under way: watch that job again (after a restart or a retry).
RESUME_WATCH: dict[Phase, Stage] = {
    P.ENABLING_REPLICATION: S.WATCH_ENABLE,
    P.FAILING_OVER: S.WATCH_FAILOVER,
    P.COMMITTING: S.WATCH_COMMIT,
    P.COMPLETING: S.WATCH_COMPLETE,
    P.ROLLING_BACK: S.WATCH_ROLLBACK,
}

# Episodes per execution before continue_as_new: each costs about 8 history events.
EPISODES_PER_EXECUTION = 24
# A failed ASR job whose allowedActions offer Restart is restarted at most this many times per step.
MAX_JOB_RESTARTS = 3
# While waiting for a cutover, look at replication health this often, so the status stays true.
AWAIT_RECHECK = timedelta(hours=6)
# Errors that mean the machine cannot be replicated as it stands (the owner has to act), not a failure.
NOT_READY_ERROR_KINDS = frozenset({"not_found", "precondition"})
CLAIMED_BY_WAVE = "ClaimedByWave"
# The validation gate's defaults (settings VALIDATION_BOUND_SECONDS / VALIDATION_RECHECK_SECONDS).
VALIDATION_BOUND = timedelta(minutes=20)
VALIDATION_RECHECK = timedelta(minutes=1)
# The operator's checks (aws2azure:check-tcp / check-http, run through Run Command): a service may still be starting
# when the VM agent is Ready, so a failed check fails the gate only after this many runs in a row found one failed.
CHECK_FAILED_RUNS = 3
# The failed-over VM's deletion is looked at this often, at most this many times, before the rollback fails.
REMOVE_VM_RECHECK = timedelta(minutes=1)
REMOVE_VM_MAX_LOOKS = 60


class RollbackRequest(BaseModel):
    """Who asked for a rollback and why (an operator through the API, or the validation gate)."""

    model_config = ConfigDict(extra="forbid")

    requested_by: str = "operator"
    reason: str = ""


class WorkflowState(BaseModel):
    """Everything one migrate_instance decides from; a new execution resumes exactly where the last stopped."""

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
    # Transient conditions are retried on a time budget (setting STEP_RETRY_BUDGET_SECONDS, fixed at start like the
    # poll bounds); ``retrying_since`` carries the current step's first attempt across continue_as_new.
    retry_budget_seconds: int = 6 * 3600
    retrying_since: AwareDatetime | None = None
    # Failed ASR jobs of the current step restarted so far (at most MAX_JOB_RESTARTS), and one due now.
    job_restarts: int = 0
    restart_pending: bool = False
    # The validation gate: its bound and pause (fixed at start like the poll bounds) and its first look.
    validation_bound_seconds: int = int(VALIDATION_BOUND.total_seconds())
    validation_recheck_seconds: int = int(VALIDATION_RECHECK.total_seconds())
    validation_started_at: AwareDatetime | None = None
    validation_looks: int = 0
    # Rollback before commit: a failed gate rolls back (setting ROLLBACK_ON_FAILED_VALIDATION, fixed at start);
    # ``rollback`` is the request being carried out (or held until the failover job ends).
    rollback_on_failed_validation: bool = True
    rollback: RollbackRequest | None = None
    remove_vm_looks: int = 0

    @property
    def migration_id(self) -> str:
        return self.request.instance.migration_id

    @property
    def policy(self) -> PollPolicy:
        floor = timedelta(seconds=self.poll_floor_seconds)
        return PollPolicy(floor=floor, ceiling=max(floor, timedelta(seconds=self.poll_ceiling_seconds)))

    @property
    def failover_started(self) -> bool:
        return self.stage in FAILOVER_STARTED_STAGES

    def note_progress(self, now: datetime, progress: int | None) -> None:
        if progress is not None and (self.last_progress is None or progress > self.last_progress):
            self.no_progress_since = None
        elif self.no_progress_since is None:
            self.no_progress_since = now
        self.last_progress = progress


# --------------------------------------------------------------------------------------------------
# Commands: what a decision asks the orchestrator to do, in order
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Note:
    """Write a line in the audit log (no phase change)."""

    kind: str
    message: str


@dataclass(frozen=True, slots=True)
class Record:
    """Record the phase (and the reason an operator reads)."""

    phase: Phase
    reason: str = ""


@dataclass(frozen=True, slots=True)
class Finish:
    """Record the final phase and end the orchestration."""

    phase: Phase
    reason: str = ""


@dataclass(frozen=True, slots=True)
class Sleep:
    """A durable timer that any external event cuts short; ``purpose`` is handed to ``on_timer``."""

    until: datetime
    purpose: str


@dataclass(frozen=True, slots=True)
class CheckHealth:
    """Read replication again (while waiting for a cutover) and record it under ``phase``."""

    phase: Phase


Command = Note | Record | Finish | Sleep | CheckHealth


@dataclass(slots=True)
class Decision:
    commands: list[Command] = field(default_factory=list)

    def then(self, command: Command) -> Decision:
        self.commands.append(command)
        return self


def _fail(state: WorkflowState, reason: str) -> Decision:
    state.stage = Stage.DONE
    return Decision([Finish(Phase.FAILED, reason)])


def describe(error: StepError | None) -> str:
    if error is None:
        return "unknown error"
    return error.message + (f" ({error.code})" if error.code else "")


# --------------------------------------------------------------------------------------------------
# Decisions: the state machine. Each mutates ``state`` and returns the commands to carry out.
# --------------------------------------------------------------------------------------------------


def after_register(state: WorkflowState, registered: Registered | None, error: StepError | None,
                   now: datetime) -> Decision:  # fmt: skip
    """Where a (re)started migration resumes, from what the record says."""
    if registered is None:
        return _fail(state, f"could not record the request: {describe(error)}")
    job_id = registered.current_job_id
    if registered.rollback is not None and registered.protected_item_name is not None:
        # A rollback asked for a Failed migration whose orchestration had ended: this one carries it out.
        state.stage, state.rollback, state.job_id = Stage.ROLLBACK, registered.rollback, None
        state.replication_started_at = state.replication_started_at or now
        return Decision([Note("RollbackStarted", rollback_words(registered.rollback))])
    if registered.protected_item_name is None:
        state.stage = Stage.ENABLE
    elif registered.phase in RESUME_WATCH and job_id:
        state.stage, state.job_id = RESUME_WATCH[registered.phase], job_id
    elif registered.phase is Phase.VALIDATING:
        state.stage = Stage.VALIDATE  # the failover went through; the VM is checked again (the bound starts again)
    else:
        state.stage = Stage.MONITOR
    state.replication_started_at = state.replication_started_at or now
    return Decision()


def after_start(state: WorkflowState, job_id: str | None, error: StepError | None, now: datetime) -> Decision:
    """A starting stage's activity answered: watch its job, or decide what its refusal means."""
    stage = state.stage
    if stage is Stage.CANCEL and job_id is None and error is None:
        # Nothing replicated yet: nothing to disable in ASR.
        state.stage = Stage.DONE
        return Decision([Finish(Phase.CANCELLED, cancel_reason(state))])
    if stage is Stage.ROLLBACK and job_id is None and error is None:
        # The replicated item is gone already (an earlier run's disable finished): delete the VM.
        state.stage, state.remove_vm_looks = Stage.REMOVE_VM, 0
        return Decision([Note("ProtectionDisabled", "the replicated item is already removed from the vault")])
    if stage is Stage.ROLLBACK and error is not None:
        return _fail(state, f"rollback failed: could not disable protection: {describe(error)}; the failover was "
                            "NOT committed: 'aws2azure rollback' tries again")  # fmt: skip
    if error is not None:
        if stage is Stage.ENABLE and error.kind in NOT_READY_ERROR_KINDS:
            state.stage = Stage.DONE
            return Decision([Finish(Phase.NOT_READY, f"not ready for replication: {error.message}")])
        if stage is Stage.FAILOVER and error.code == CLAIMED_BY_WAVE:
            # The wave cuts this instance over with a recovery plan; wait for its PlanCutoverDone.
            state.stage, state.cutover = Stage.AWAIT_CUTOVER, None
            return Decision([Note("FailoverDeferred", error.message)])
        return _fail(state, f"{stage.value} failed: {describe(error)}")
    watch, _ = JOB_STAGES[stage]
    state.stage, state.job_id, state.job_checks = watch, job_id, 0
    state.job_restarts, state.restart_pending = 0, False
    if stage is Stage.ENABLE:
        state.replication_started_at = now
    return Decision()


def watch_job(state: WorkflowState, now: datetime) -> Decision:
    """Wait before the next look at the job being watched."""
    downtime = state.stage is Stage.WATCH_FAILOVER  # the source is stopped until the failed-over VM runs
    delay = job_poll_delay(state.policy, checks_so_far=state.job_checks, during_downtime=downtime)
    return Decision([Sleep(now + delay, "job")])


def after_job(state: WorkflowState, job: AsrJob | None, error: StepError | None) -> Decision:
    """The watched job's state: keep watching, go on, or end with ASR's reason."""
    if job is None:
        return _fail(state, f"could not read ASR job {state.job_id}: {describe(error)}")
    state.job_checks += 1
    if not job.finished:  # NotStarted, InProgress, Suspended (its reason tells the operator to resume it)
        return Decision()
    name = job.display_name or job.job_id
    if job.state != "Succeeded":
        errors = "; ".join(job.errors) or job.note or "no error details"
        if job.restartable and state.job_restarts < MAX_JOB_RESTARTS:
            # ASR offers Restart: re-run the job (the restart step logs each attempt in the audit log).
            state.job_restarts += 1
            state.restart_pending = True
            return Decision()
        if not job.restartable:
            why = "ASR offers no restart of this job"
        else:
            why = f"restarted {state.job_restarts} times, the most a step gets"
        return _fail(state, f"ASR job {name} {job.state}: {errors} ({why})")
    watched = state.stage
    state.stage, state.job_id = WATCH_STAGES[watched], None
    state.job_restarts = 0
    if watched is Stage.WATCH_TEST_CLEANUP:
        state.test_failover_done = True
    if watched is Stage.WATCH_FAILOVER and state.rollback is not None:
        # A rollback was asked for while the failover ran: roll back instead of validating.
        state.stage = Stage.ROLLBACK
        return Decision([Note("RollbackStarted", rollback_words(state.rollback))])
    if watched is Stage.WATCH_ROLLBACK:
        state.remove_vm_looks = 0
        return Decision([Note("ProtectionDisabled", f"ASR job {name} succeeded: protection disabled, the "
                                                    "replicated item removed from the vault")])  # fmt: skip
    if state.stage is Stage.VALIDATE:
        state.validation_started_at, state.validation_looks = None, 0
    if state.stage is not Stage.DONE:
        return Decision()
    if watched is Stage.WATCH_CANCEL:
        return Decision([Finish(Phase.CANCELLED, cancel_reason(state))])
    return Decision([Finish(Phase.MIGRATED, "")])


def after_restart(state: WorkflowState, job_id: str | None, error: StepError | None) -> Decision:
    """The failed job's restart answered: watch the job that re-runs it, or end with why it could not be."""
    state.restart_pending = False
    if error is None and job_id:
        state.job_id, state.job_checks = job_id, 0
        return Decision()
    return _fail(state, f"ASR job {state.job_id} failed and could not be restarted: {describe(error)}")


def after_observation(state: WorkflowState, snapshot: ReplicationSnapshot | None, error: StepError | None,
                      now: datetime) -> Decision:  # fmt: skip
    """What replication looks like now: go on to cutover, fail a stalled one, or look again later."""
    if snapshot is None:
        return _fail(state, f"could not read replication state: {describe(error)}")
    if snapshot.failed_over:
        # Failed over (a retry, or a released wave member): the VM is checked before anything is committed.
        state.stage, state.validation_started_at, state.validation_looks = Stage.VALIDATE, None, 0
        return Decision()
    if snapshot.ready_for_cutover:
        wants_test = state.request.test_failover and not state.test_failover_done
        state.stage = Stage.TEST_FAILOVER if wants_test else Stage.AWAIT_CUTOVER
        return Decision([Record(Phase.READY_FOR_CUTOVER)])
    state.note_progress(now, snapshot.progress_percent)
    policy = state.policy
    if snapshot.replication_health == "Critical" and is_stalled(policy, now=now,
                                                                no_progress_since=state.no_progress_since):  # fmt: skip
        errors = "; ".join(snapshot.health_errors) or "no health error reported"
        return _fail(
            state,
            f"replication stalled at {snapshot.progress_percent or 0}% for {policy.stall_timeout} with health "
            f"Critical ({errors}); check the replication appliance and the source's connectivity to it, then retry",
        )
    started = state.replication_started_at or now
    delay = next_replication_poll(policy, now=now, started_at=started, progress_percent=snapshot.progress_percent)
    return Decision([Sleep(now + delay, "replication")])


def after_validation(state: WorkflowState, health: VmHealth | None, error: StepError | None,
                     now: datetime) -> Decision:  # fmt: skip
    """One look at the failed-over VM: commit when the gate passes; look again while the VM comes up, within the
    bound; else Failed with the findings, and no commit is sent (commit is the point of no return)."""
    started = state.validation_started_at or now
    state.validation_started_at = started
    state.validation_looks += 1
    bound = timedelta(seconds=state.validation_bound_seconds)
    if health is not None and health.passed:
        state.stage, state.validation_started_at = Stage.COMMIT, None
        return Decision([Note("ValidationPassed", f"{health.summary()}; committing")])
    if health is not None and health.verdict == "failed":
        return _validation_failed(state, health.summary(), health.findings, "")
    if error is not None and not error.retryable:
        return _validation_failed(state, "could not read the failed-over VM", (describe(error),), "")
    findings = health.findings if health is not None else (describe(error),)
    waited = now - started
    if waited >= bound:
        what = health.summary() if health is not None else "could not read the failed-over VM"
        return _validation_failed(state, what, findings, f" within {_words(bound)}")
    wake = min(now + timedelta(seconds=state.validation_recheck_seconds), started + bound)
    return Decision([Sleep(wake, "validate")])


def plan_gate(members: dict[str, VmHealth], errors: dict[str, str], retryable: dict[str, bool], *,
              started: datetime, now: datetime, bound: timedelta) -> tuple[str, str]:  # fmt: skip
    """A recovery plan's gate, from one look at every member's VM: ("commit", ""), ("wait", "") or ("fail", why).
    The plan is committed as a whole, so one member that fails its gate (or is still not ready at the bound) keeps
    the whole plan from being committed; the plan is then released and each member is validated on its own."""
    failed = [f"{m}: {h.summary()} ({'; '.join(h.findings)})" for m, h in members.items() if h.verdict == "failed"]
    failed += [f"{m}: could not read its VM ({e})" for m, e in errors.items() if not retryable.get(m)]
    pending = [f"{m}: {h.summary()} ({'; '.join(h.findings)})" for m, h in members.items() if h.verdict == "pending"]
    pending += [f"{m}: could not read its VM ({e})" for m, e in errors.items() if retryable.get(m)]
    if failed:
        return "fail", " | ".join(failed)
    if not pending:
        return "commit", ""
    if now - started >= bound:
        return "fail", f"not ready within {_words(bound)}: " + " | ".join(pending)
    return "wait", ""


def _validation_failed(state: WorkflowState, what: str, findings: tuple[str, ...], within: str) -> Decision:
    found = "; ".join(findings) or "no finding"
    if state.rollback_on_failed_validation:
        state.stage, state.validation_started_at = Stage.ROLLBACK, None
        state.rollback = RollbackRequest(requested_by="validation gate",
                                         reason=f"validation failed{within}: {what} ({found})")  # fmt: skip
        return Decision([Note("ValidationFailed", f"{what}: {found}"),
                         Note("RollbackStarted", rollback_words(state.rollback))])  # fmt: skip
    reason = (
        f"validation failed{within}: {what} ({found}); the failover was NOT committed. Check the VM in the target "
        "resource group (boot diagnostics, serial console); if it is healthy, 'aws2azure retry' validates it again "
        "and commits; otherwise roll the failover back by hand (the source in AWS is stopped, not changed)"
    )
    decision = _fail(state, reason)
    decision.commands.insert(0, Note("ValidationFailed", f"{what}: {found}"))
    return decision


def after_remove_vm(state: WorkflowState, gone: bool | None, error: StepError | None, now: datetime) -> Decision:
    """One try at deleting the failed-over VM: RolledBack once it is gone; else look again, within a bound."""
    state.remove_vm_looks += 1
    if gone:
        state.stage = Stage.DONE
        request = state.rollback or RollbackRequest()
        return Decision([
            Note("RolledBack", "rolled back: protection disabled, the failed-over VM deleted, the source asked to "
                               "start again in AWS; no commit was sent"),
            Finish(Phase.ROLLED_BACK, rolled_back_reason(request)),
        ])  # fmt: skip
    if error is not None and not error.retryable:
        return _fail(state, f"rollback failed: could not delete the failed-over VM: {describe(error)} (protection is "
                            "disabled; delete the VM by hand, then 'aws2azure rollback' again)")  # fmt: skip
    if state.remove_vm_looks >= REMOVE_VM_MAX_LOOKS:
        looks = state.remove_vm_looks
        return _fail(state, f"rollback failed: the failed-over VM was not deleted after {looks} looks "
                            "(protection is disabled); delete it by hand, then 'aws2azure rollback' again")  # fmt: skip
    return Decision([Sleep(now + REMOVE_VM_RECHECK, "remove_vm")])


def rollback_words(request: RollbackRequest) -> str:
    return f"rollback requested by {request.requested_by}" + (f": {request.reason}" if request.reason else "")


def rolled_back_reason(request: RollbackRequest) -> str:
    return (f"rolled back before commit ({rollback_words(request)}); the Azure VM was deleted and the source is "
            "started again in AWS; 'aws2azure retry' starts the migration again from the beginning")  # fmt: skip


def _words(span: timedelta) -> str:
    seconds = int(span.total_seconds())
    return f"{seconds // 60} min" if seconds % 60 == 0 else f"{seconds} s"


def await_cutover(state: WorkflowState, now: datetime) -> Decision:
    """Fail over once the cutover is requested (and approved, where the wave needs it); else wait for it."""
    if state.cutover is not None and (state.approved or not state.approval_required):
        state.stage = Stage.FAILOVER
        return Decision()
    decision = Decision([Record(Phase.AWAITING_CUTOVER, waiting_reason(state))])
    cutover_at = state.request.cutover_at
    wake, purpose = now + AWAIT_RECHECK, "recheck"
    if cutover_at is not None and not state.window_reached and cutover_at < wake:
        wake, purpose = max(cutover_at, now), "window"
    return decision.then(Sleep(wake, purpose))


def on_timer(state: WorkflowState, purpose: str) -> Decision:
    """A Sleep ran to its end (no event cut it short)."""
    if purpose == "window":
        state.window_reached = True
    elif purpose == "recheck":
        return Decision([CheckHealth(Phase.AWAITING_CUTOVER)])
    return Decision()


def after_health_check(state: WorkflowState, ok: bool, error: StepError | None) -> Decision:
    if ok or (error is not None and error.retryable):
        return Decision()  # a transient failure to look: look again at the next recheck
    return _fail(state, f"could not read replication state: {describe(error)}")


# -- external events -------------------------------------------------------------------------------

EVENT_CANCEL = "CancelRequested"
EVENT_FAILOVER = "FailoverRequested"
EVENT_APPROVED = "Approved"
EVENT_PLAN_DONE = "PlanCutoverDone"
EVENT_PLAN_FAILED = "PlanCutoverFailed"
EVENT_ROLLBACK = "RollbackRequested"
# Every event a migrate_instance waits for, in the order arrivals are handled.
INSTANCE_EVENTS = (EVENT_CANCEL, EVENT_FAILOVER, EVENT_PLAN_DONE, EVENT_PLAN_FAILED, EVENT_APPROVED, EVENT_ROLLBACK)


def on_event(state: WorkflowState, name: str, payload: Any) -> Decision:
    """An external event arrived, whatever the orchestration was doing."""
    handler = _EVENT_HANDLERS[name]
    return handler(state, payload)


def _on_cancel(state: WorkflowState, payload: Any) -> Decision:
    try:
        request = CancelRequestedData.model_validate(payload)
    except ValidationError as exc:
        return Decision([Note("EventRejected", f"CancelRequested ignored, invalid payload: {exc}")])
    if state.stage in CANCEL_STAGES:
        return Decision()
    if state.failover_started:
        return Decision([Note("CancelRefused", "cancel refused: the failover has started, and ASR must never "
                                               "cancel a migration failover")])  # fmt: skip
    state.cancel, state.stage = request, Stage.CANCEL
    return Decision([Note("CancelRequested", f"cancel requested by {request.requested_by}: {request.reason}")])


def _on_failover(state: WorkflowState, payload: Any) -> Decision:
    try:
        request = FailoverRequestedData.model_validate(payload)
    except ValidationError as exc:
        return Decision([Note("EventRejected", f"FailoverRequested ignored, invalid payload: {exc}")])
    if state.cutover is not None or state.failover_started:
        return Decision([Note("DuplicateIgnored", f"FailoverRequested from {request.requested_by} ignored: the "
                                                  "cutover was already requested")])  # fmt: skip
    if not request.source_stopped:
        why = "the source instance is not confirmed stopped (the cutover Lambda stops it first)"
        return Decision([Note("FailoverDeferred", f"FailoverRequested from {request.requested_by} ignored: {why}")])
    state.cutover = request
    return Decision([Note("FailoverRequested", f"cutover requested by {request.requested_by}")])


def _on_plan_done(state: WorkflowState, payload: Any) -> Decision:
    if state.stage in (Stage.COMPLETE, Stage.WATCH_COMPLETE, Stage.DONE):
        return Decision()
    # The wave's recovery plan failed over and committed this instance: complete it.
    state.stage, state.job_id = Stage.COMPLETE, None
    plan = payload.get("plan") if isinstance(payload, dict) else None
    return Decision([Note("PlanCutoverDone", f"failed over and committed with recovery plan {plan}")])


def _on_plan_failed(state: WorkflowState, payload: Any) -> Decision:
    if state.stage not in (Stage.AWAIT_CUTOVER, Stage.FAILOVER):
        return Decision()
    # The wave's plan failed and released this member: resume from ASR's own state (a member that failed
    # over commits alone; one that did not waits for its next cutover).
    state.stage, state.job_id, state.cutover = Stage.MONITOR, None, None
    detail = payload if isinstance(payload, dict) else {}
    return Decision([Note("PlanCutoverFailed", f"recovery plan {detail.get('plan')} failed "
                          f"({detail.get('reason') or 'no reason'}); resuming from ASR's state")])  # fmt: skip


def _on_approved(state: WorkflowState, payload: Any) -> Decision:
    if state.approved:
        return Decision()
    state.approved = True
    return Decision([Note("Approved", "cutover approved by an operator")])


def _on_rollback(state: WorkflowState, payload: Any) -> Decision:
    try:
        request = RollbackRequest.model_validate(payload)
    except ValidationError as exc:
        return Decision([Note("EventRejected", f"RollbackRequested ignored, invalid payload: {exc}")])
    if state.stage in ROLLBACK_STAGES or state.stage is Stage.DONE or state.rollback is not None:
        why = "a rollback is already under way or the migration has ended"
        return Decision([Note("DuplicateIgnored", f"RollbackRequested from {request.requested_by} ignored: {why}")])
    if state.stage in COMMIT_STAGES:
        return Decision([Note("RollbackRefused", "rollback refused: the commit was sent; commit ended ASR's "
                                                 "failover and the Azure VM is the machine now")])  # fmt: skip
    if state.stage is Stage.WATCH_FAILOVER:
        state.rollback = request  # carried out when the failover job ends (ASR allows nothing while it runs)
        return Decision([Note("RollbackRequested", f"{rollback_words(request)}; held until the failover job ends")])
    if state.stage is Stage.VALIDATE:
        state.rollback, state.stage, state.validation_started_at = request, Stage.ROLLBACK, None
        return Decision([Note("RollbackStarted", rollback_words(request))])
    return Decision([Note("RollbackRefused", "rollback refused: nothing has failed over yet; cancel instead")])


_EVENT_HANDLERS = {
    EVENT_ROLLBACK: _on_rollback,
    EVENT_CANCEL: _on_cancel,
    EVENT_FAILOVER: _on_failover,
    EVENT_PLAN_DONE: _on_plan_done,
    EVENT_PLAN_FAILED: _on_plan_failed,
    EVENT_APPROVED: _on_approved,
}


def waiting_reason(state: WorkflowState) -> str:
    if state.cutover is not None:
        return "cutover requested; waiting for the wave's approval"
    if state.window_reached:
        return ("cutover window reached; waiting for the AWS cutover to stop the source and confirm "
                "(aws2azure cutover, or the schedule)")  # fmt: skip
    if state.request.cutover_at is not None:
        return f"waiting for the cutover window at {state.request.cutover_at.isoformat()}"
    return "waiting for a cutover request (no window set)"


def cancel_reason(state: WorkflowState) -> str:
    cancel = state.cancel
    return f"cancelled by {cancel.requested_by}: {cancel.reason}".rstrip(": ") if cancel else "cancelled"
