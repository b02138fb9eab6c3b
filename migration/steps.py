"""The steps of one migration, each an idempotent unit that an activity runs (at least once).

A step talks to ASR through the AsrGateway port and records what happened in the MigrationStore:
the current record (ETag-guarded) and an audit event. It knows nothing of Durable Functions.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from migration.contracts import JobStarted, Registered, ReplicationSnapshot, VmRemoval
from migration.errors import (
    AwaitingDiscovery,
    InvalidTransition,
    MigrationError,
    NotFound,
    PermanentCloudError,
    PreconditionFailed,
)
from migration.events import MigrationRequestedData, VmChecks
from migration.lifecycle import (
    BEFORE_FAILOVER_PHASES,
    CHECK_FAILED_RUNS,
    CLAIMED_BY_WAVE,
    FAILOVER_STARTED_PHASES,
    Phase,
    RollbackRequest,
    ensure_transition,
    rollback_words,
    rolled_back_reason,
)
from migration.notifications import NotificationOutbox, queue_phase_change
from migration.ports import (
    AsrGateway,
    AsrJob,
    AsrJobControl,
    AsrJobRecovery,
    Clock,
    DiscoveredMachine,
    MigrationStore,
    ReplicationPlan,
    ReplicationState,
    VmCheckRunner,
    VmHealth,
    VmInspector,
    VmRemover,
)
from migration.records import CutoverTimeline, MigrationEvent, MigrationRecord, ValidationResult
from migration.vmchecks import read_results, script_for

logger = logging.getLogger("aws2azure.steps")

SAVE_ATTEMPTS = 8
COMPLETE_MIGRATION_NOT_OFFERED = "CompleteMigrationNotOffered"
DISCOVERY_FIRST_LOOK = 60.0  # seconds; then the wait doubles with the time already waited
DISCOVERY_LONGEST_WAIT = 1800.0
ALREADY_FAILED_OVER = "AlreadyFailedOver"
UNPLANNED_FAILOVER = "UnplannedFailover"
FAILOVER_JOB_SCENARIOS = frozenset({"unplannedfailover"})


def _ready_for_cutover(state: ReplicationState) -> bool:
    return UNPLANNED_FAILOVER in state.allowed_operations


def _failed_over(state: ReplicationState) -> bool:
    # After a migration failover ASR offers only these; Commit is the unambiguous sign.
    return "Commit" in state.allowed_operations or "CompleteMigration" in state.allowed_operations


class MigrationSteps:
    def __init__(self, store: MigrationStore, asr: AsrGateway, clock: Clock, *,
                 target_tags: dict[str, str] | None = None, default_subnet: str,
                 default_vm_size: str | None = None,
                 discovery_timeout: timedelta = timedelta(hours=1),
                 outbox: NotificationOutbox | None = None, vms: VmInspector | None = None,
                 target_resource_group_id: str | None = None) -> None:  # fmt: skip
        self.store = store
        self.vms = vms
        # Where enable replication put the failed-over VM (TARGET_RESOURCE_GROUP_ID): used only when ASR's item no
        # longer names it (InMageRcmReplicationDetails.targetResourceGroupId / targetVmName).
        self.target_resource_group_id = target_resource_group_id
        self.outbox = outbox
        self.asr = asr
        self.clock = clock
        self.target_tags = dict(target_tags or {})
        self.default_subnet = default_subnet
        self.default_vm_size = default_vm_size
        self.discovery_timeout = discovery_timeout

    # -- recording -------------------------------------------------------------------------

    def _save(self, migration_id: str, change: Callable[[MigrationRecord], MigrationRecord | None]) -> MigrationRecord:
        """Apply ``change`` to the current record and store it; on a lost race, re-read and re-apply.

        ``change`` returns None when there is nothing to write (the step already happened).
        """
        for _ in range(SAVE_ATTEMPTS):
            current = self.store.get(migration_id)
            changed = change(current.model_copy(deep=True))
            if changed is None:
                return current
            changed.updated_at = self.clock.now()
            try:
                return self.store.update(changed)
            except PreconditionFailed as exc:
                if isinstance(exc, InvalidTransition):
                    raise
                continue
        raise PreconditionFailed(f"{migration_id}: gave up after {SAVE_ATTEMPTS} concurrent updates", code="Contention")

    def _log(self, record: MigrationRecord, kind: str, message: str, **details: Any) -> None:
        self.store.append_event(MigrationEvent(
            migration_id=record.migration_id, at=self.clock.now(), kind=kind, phase=record.phase,
            message=message, details=details,
        ))  # fmt: skip
        logger.info(
            "%s %s: %s",
            record.migration_id,
            kind,
            message,
            extra={"migration_id": record.migration_id, "phase": record.phase.value},
        )

    def _move(self, migration_id: str, phase: Phase, *, reason: str = "", **fields: Any) -> MigrationRecord:
        previous: list[Phase] = []

        def change(record: MigrationRecord) -> MigrationRecord | None:
            if record.cutover_plan and record.phase in FAILOVER_STARTED_PHASES and phase in BEFORE_FAILOVER_PHASES:
                # The wave's recovery plan owns the failover; the instance's own view is out of date.
                return None
            target = ensure_transition(record.phase, phase)
            unchanged = all(getattr(record, key) == value for key, value in fields.items())
            if record.phase is target and record.reason == reason and unchanged:
                return None
            previous.append(record.phase)
            record.enter_phase(target, self.clock.now(), reason)  # numbers the change for the outbox
            record.reason = reason
            for key, value in fields.items():
                setattr(record, key, value)
            return record

        record = self._save(migration_id, change)
        # The change's notification, right after the record (again on a rerun: adding it twice is a no-op).
        queue_phase_change(self.outbox, record, phase)
        if previous and previous[-1] is not phase:
            self._log(
                record,
                "PhaseChanged",
                f"{previous[-1].value} -> {phase.value}" + (f": {reason}" if reason else ""),
            )
        return record

    # -- steps -----------------------------------------------------------------------------

    def register(self, request: MigrationRequestedData) -> Registered:
        """Create the record for a request, or find where an earlier run of it stands."""
        migration_id = request.instance.migration_id
        now = self.clock.now()
        try:
            record = self.store.get(migration_id)
        except NotFound:
            fresh = MigrationRecord(request=request, phase=Phase.REQUESTED, created_at=now, updated_at=now)
            fresh.enter_phase(Phase.REQUESTED, now)
            record = self.store.create(fresh)
            queue_phase_change(self.outbox, record, Phase.REQUESTED)
            self._log(record, "MigrationRequested", f"migration of {request.instance.instance_id} requested",
                      request_id=request.request_id, wave=request.wave)  # fmt: skip
            return Registered(migration_id=migration_id, phase=record.phase, new_request=True)
        if record.phase is Phase.FAILED and record.protected_item_name is not None and record.rollback is not None:
            # A rollback asked for after this migration's orchestration had ended: the new one carries it out.
            self._log(record, "RollbackRequested", rollback_words(record.rollback), request_id=request.request_id)
            return Registered(
                migration_id=migration_id, phase=record.phase, protected_item_name=record.protected_item_name,
                new_request=True, rollback=record.rollback,
            )  # fmt: skip
        if record.phase is Phase.FAILED and record.protected_item_name is not None:
            # A retry: the phase stays Failed until the next step reads ASR and resumes from there.
            self._log(record, "RetryRequested", "retrying from what ASR reports", request_id=request.request_id)
            return Registered(
                migration_id=migration_id, phase=record.phase,
                protected_item_name=record.protected_item_name, new_request=True,
            )  # fmt: skip
        if record.phase in (Phase.FAILED, Phase.CANCELLED, Phase.NOT_READY, Phase.ROLLED_BACK):
            # Nothing replicated (or replication was disabled, or rolled back): start again from Requested. After a
            # rollback nothing of the failover is kept but the AWS side's restart request (done once per request).
            timeline = CutoverTimeline(restart_requested_at=record.timeline.restart_requested_at)
            record = self._move(
                migration_id, Phase.REQUESTED, request=request, protected_item_name=None, current_job_id=None,
                failover_requested_at=None, cutover_plan=None, target_vm_id=None, validation=None, rollback=None,
                timeline=timeline,
            )  # fmt: skip
            return Registered(migration_id=migration_id, phase=record.phase, new_request=True)
        queue_phase_change(self.outbox, record, record.phase)  # a rerun after a crash right after create
        return Registered(
            migration_id=migration_id, phase=record.phase, protected_item_name=record.protected_item_name,
            current_job_id=record.current_job_id, new_request=False,
            rollback=record.rollback if record.phase is Phase.ROLLING_BACK else None,
        )  # fmt: skip

    def start_replication(self, migration_id: str) -> JobStarted:
        record = self.store.get(migration_id)
        if record.protected_item_name and record.phase is not Phase.REQUESTED:
            return JobStarted(job_id=record.current_job_id or "", protected_item_name=record.protected_item_name)
        machine = self._discovered_machine(record)
        self.asr.ensure_os_supported(machine)
        plan = ReplicationPlan(
            target_vm_name=_azure_vm_name(record),
            target_vm_size=record.target_size or self.default_vm_size,
            target_subnet=record.target_subnet or self.default_subnet,
            hybrid_benefit=record.hybrid_benefit,
            disk_type=record.target_disk_type,
            tags={**self.target_tags, "aws2azure-source": record.instance.instance_id,
                  "aws2azure-wave": record.wave or ""},
        )  # fmt: skip
        job_id = self.asr.begin_enable_replication(machine, plan)
        moved = self._move(migration_id, Phase.ENABLING_REPLICATION, protected_item_name=machine.name,
                           current_job_id=job_id)  # fmt: skip
        self._log(moved, "AsrJobStarted", f"enable replication of {machine.friendly_name} ({machine.name})",
                  job_id=job_id, operation="EnableReplication")  # fmt: skip
        return JobStarted(job_id=job_id, protected_item_name=machine.name)

    def _discovered_machine(self, record: MigrationRecord) -> DiscoveredMachine:
        """The machine in the appliance's OffAzure site; while it is not there, AwaitingDiscovery with a back-off
        (retryable: the orchestration waits durably), and after ``discovery_timeout`` a permanent error."""
        try:
            machine = self.asr.find_machine_by_ip(record.private_ip)
        except AwaitingDiscovery as exc:
            moved = self._move(record.migration_id, Phase.AWAITING_DISCOVERY, reason=str(exc))
            waited = max(0.0, (self.clock.now() - moved.updated_at).total_seconds())
            limit = self.discovery_timeout.total_seconds()
            if waited >= limit:
                raise PermanentCloudError(
                    f"the replication appliance did not discover {record.instance.instance_id} ({record.private_ip}) "
                    f"within {self.discovery_timeout}: check that the Mobility agent is installed and registered "
                    "with the appliance (outbound 443 and 9443), then retry",
                    code="MachineNotDiscovered",
                ) from exc
            raise AwaitingDiscovery(
                str(exc),
                retry_after_seconds=min(max(DISCOVERY_FIRST_LOOK, waited), DISCOVERY_LONGEST_WAIT, limit - waited),
            ) from exc
        return machine

    def get_job(self, migration_id: str, job_id: str) -> AsrJob:
        job = self.asr.get_job(job_id)
        if job.finished:
            record = self.store.get(migration_id)
            self._log(record, "AsrJobFinished", f"ASR job {job.display_name or job_id} {job.state}",
                      job_id=job_id, state=job.state, asr_state=job.asr_state,
                      state_description=job.state_description, errors=list(job.errors))  # fmt: skip
            if job.note and job.verdict == "succeeded":
                self._log(record, "AsrJobNote", job.note, job_id=job_id)
        elif job.verdict == "waiting_for_operator":
            record = self.store.get(migration_id)
            reason = (f"waiting for an operator: ASR suspended job {job.display_name or job_id} ({job_id}); "
                      "resume it (aws2azure job resume, or the vault's Jobs blade)")  # fmt: skip
            if record.reason != reason:
                self._move(migration_id, record.phase, reason=reason)
                self._log(record, "AsrJobSuspended", reason, job_id=job_id)
        return job

    def resume_job(self, migration_id: str, job_id: str) -> AsrJob:
        """An operator resumes a Suspended ASR job (replicationJobs resume)."""
        if not isinstance(self.asr, AsrJobControl):
            raise PreconditionFailed("this ASR gateway cannot resume jobs", code="NotSupported")
        job = self.asr.resume_job(job_id, comments=f"resumed for {migration_id}")
        record = self.store.get(migration_id)
        self._log(record, "AsrJobResumed", f"ASR job {job_id} resumed", job_id=job_id, state=job.state)
        return job

    def observe_replication(self, migration_id: str, *, phase: Phase = Phase.REPLICATING) -> ReplicationSnapshot:
        """Read the item's replication state from ASR and record progress, health and RPO."""
        record = self.store.get(migration_id)
        if record.protected_item_name is None:
            raise PreconditionFailed(f"{migration_id} has no replicated item yet", code="NotReplicating")
        state = self.asr.get_replication_state(record.protected_item_name)
        reason = "; ".join(state.health_errors)
        health = state.replication_health if state.replication_health in ("Normal", "Warning", "Critical") else None
        # Where a failover will put the VM (ASR's word), kept for the validation gate: no extra read then.
        target_vm = state.target_vm_id or record.target_vm_id
        self._move(migration_id, phase, reason=reason, progress_percent=state.progress_percent,
                   replication_health=health, rpo_seconds=state.rpo_seconds, target_vm_id=target_vm)  # fmt: skip
        return ReplicationSnapshot(
            protection_state=state.protection_state, replication_health=state.replication_health,
            progress_percent=state.progress_percent, ready_for_cutover=_ready_for_cutover(state),
            failed_over=_failed_over(state), health_errors=list(state.health_errors),
        )  # fmt: skip

    def record_phase(self, migration_id: str, phase: Phase, reason: str = "") -> MigrationRecord:
        return self._move(migration_id, phase, reason=reason)

    def note(self, migration_id: str, kind: str, message: str) -> None:
        """Record something that happened without a phase change (an event refused, a duplicate)."""
        self._log(self.store.get(migration_id), kind, message)

    def start_test_failover(self, migration_id: str) -> JobStarted:
        return self._start_operation(migration_id, Phase.TEST_FAILOVER, "TestFailover", self.asr.begin_test_failover)

    def start_test_failover_cleanup(self, migration_id: str) -> JobStarted:
        return self._start_operation(migration_id, Phase.TEST_FAILOVER, "TestFailoverCleanup",
                                     self.asr.begin_test_failover_cleanup)  # fmt: skip

    def start_failover(self, migration_id: str) -> JobStarted:
        """Issue the unplanned failover once, ever. ASR's failover is not idempotent.

        The record's ``failover_requested_at`` is set before the request is sent; on a rerun (the
        activity is at-least-once) ASR's own state decides: already failed over or in progress means
        the earlier request went through, and it is never sent again.
        """
        record = self.store.get(migration_id)
        item = _require_item(record)
        if record.cutover_plan is not None:
            raise PreconditionFailed(
                f"{migration_id} is cut over with its wave in recovery plan {record.cutover_plan}", code=CLAIMED_BY_WAVE
            )
        if record.failover_requested_at is not None or record.phase in FAILOVER_STARTED_PHASES:
            state = self.asr.get_replication_state(item)
            if _failed_over(state) or UNPLANNED_FAILOVER not in state.allowed_operations:
                # The earlier request went through (its answer may have been lost to a crash or a 5xx): find its
                # job in ASR's own state, never send it again.
                job_id = self._failover_job(record, item)
                self._log(record, "FailoverNotRepeated", "failover already requested; not sending it again",
                          job_id=job_id)  # fmt: skip
                if job_id != record.current_job_id:
                    self._move(migration_id, Phase.FAILING_OVER, current_job_id=job_id)
                return JobStarted(job_id=job_id, protected_item_name=item)
        now = self.clock.now()
        self._move(migration_id, Phase.FAILING_OVER, failover_requested_at=record.failover_requested_at or now)
        try:
            job_id = self.asr.begin_unplanned_failover(item)
        except PreconditionFailed as exc:
            if exc.code == ALREADY_FAILED_OVER:
                job_id = self._failover_job(record, item)
                self._move(migration_id, Phase.FAILING_OVER, current_job_id=job_id)
                return JobStarted(job_id=job_id, protected_item_name=item)
            raise
        moved = self._move(migration_id, Phase.FAILING_OVER, current_job_id=job_id)
        self._log(moved, "AsrJobStarted", "unplanned failover (migration) requested", job_id=job_id,
                  operation="UnplannedFailover")  # fmt: skip
        return JobStarted(job_id=job_id, protected_item_name=item)

    def _failover_job(self, record: MigrationRecord, item: str) -> str:
        """The failover job ASR ran or runs on ``item``: its currentScenario, else the newest UnplannedFailover job
        listed for it. The record's job only if it is that job (it may still name the enable job when the
        failover's answer was lost)."""
        if isinstance(self.asr, AsrJobRecovery):
            found = self.asr.find_item_job(item, FAILOVER_JOB_SCENARIOS, friendly_name=record.instance.instance_id)
            if found:
                return found
        elif record.current_job_id:
            return record.current_job_id  # a gateway that cannot look jobs up: the record's word
        raise PermanentCloudError(
            f"ASR shows {item} failing or failed over but names no failover job for it; the failover is not sent "
            "again: check the vault's Jobs blade, then retry",
            code="FailoverJobNotFound",
        )

    def restart_job(self, migration_id: str, job_id: str) -> JobStarted:
        """Restart a failed ASR job where ASR allows it (its allowedActions offer Restart); the record then names
        the job to watch, and the audit log has the attempt. Idempotent: a rerun after the restart went through
        finds the re-run in ASR's state."""
        record = self.store.get(migration_id)
        item = _require_item(record)
        if not isinstance(self.asr, AsrJobRecovery):
            raise PreconditionFailed("this ASR gateway cannot restart jobs", code="NotSupported")
        if record.current_job_id and record.current_job_id != job_id:
            return JobStarted(job_id=record.current_job_id, protected_item_name=item)  # restarted, and recorded
        new_job = self.asr.restart_job(job_id, item)
        moved = self._move(migration_id, record.phase, reason=record.reason, current_job_id=new_job)
        self._log(moved, "AsrJobRestarted", f"ASR job {job_id} failed; restarted as {new_job} (ASR offered Restart)",
                  job_id=new_job, restarted_job_id=job_id)  # fmt: skip
        return JobStarted(job_id=new_job, protected_item_name=item)

    def validate_failover(self, migration_id: str, *, audit: bool = False) -> VmHealth:
        """The validation gate's one look at the failed-over VM: its instance view, recorded on the record
        (``validation``) with the VM's id (``target_vm_id``). The orchestration decides from the verdict: commit,
        look again, or fail without committing. ``audit``: also write a final verdict (passed, failed) in the audit
        log (a recovery plan's gate; a lone migration's decision writes its own)."""
        if self.vms is None:
            raise PreconditionFailed("no VM inspector is configured: the failover is not committed unchecked",
                                     code="NotSupported")  # fmt: skip
        record = self.store.get(migration_id)
        item = _require_item(record)
        vm_id = record.target_vm_id or self._target_vm_id(record, item)
        health = self.vms.inspect(vm_id)
        token: str | None = None
        checks = record.vm_checks
        if checks is not None and health.passed:
            health, token = self._run_checks(record, vm_id, health, checks)
        result = ValidationResult(vm_id=vm_id, verdict=health.verdict, summary=health.summary(),
                                  findings=list(health.findings), checked_at=self.clock.now(),
                                  checks=list(health.checks), run_command=token,
                                  failed_runs=health.failed_runs)  # fmt: skip
        reason = "" if health.passed else f"validating the failed-over VM: {'; '.join(health.findings)}"
        moved = self._move(migration_id, Phase.VALIDATING, reason=reason, target_vm_id=vm_id, validation=result)
        if audit and health.verdict != "pending":
            kind = "ValidationPassed" if health.passed else "ValidationFailed"
            self._log(moved, kind, health.summary() + (f": {'; '.join(health.findings)}" if health.findings else ""),
                      vm_id=vm_id)  # fmt: skip
        return health

    def _run_checks(
        self, record: MigrationRecord, vm_id: str, health: VmHealth, checks: VmChecks
    ) -> tuple[VmHealth, str | None]:
        """The operator's checks, once the instance view passed: poll the Run Command in flight (its token on the
        record) or send one, never waiting for it here. Returns the verdict with the checks and the token to keep
        (None when no run is in flight). A run that could not run the script (another run command in progress,
        throttled, an error) is pending: the gate looks again within its bound."""
        previous = record.validation
        if previous is not None and (previous.vm_id != vm_id or previous.verdict == "failed"):
            previous = None  # another VM, or a new gate after a failed one (a retry): start afresh
        token = previous.run_command if previous is not None else None
        # Runs in a row that found a check failed: kept while the next run is sent and watched.
        carried = previous.failed_runs if previous is not None else 0

        def verdict(verdict: str, *findings: str, **more: Any) -> VmHealth:
            update = {"verdict": verdict, "findings": findings, "failed_runs": carried, **more}
            return health.model_copy(update=update)

        if not isinstance(self.vms, VmCheckRunner):
            why = "the instance has checks (aws2azure:check-tcp / check-http) but no Run Command runner is configured"
            return verdict("failed", why), None
        try:
            if token:
                run = self.vms.poll_checks(vm_id, token)
            else:
                script = script_for(checks, record.os_family)
                run = self.vms.start_checks(vm_id, script.command_id, script.script)
        except MigrationError as exc:
            # 409 (another run command in progress), throttling, 5xx, the operation forgotten: not a verdict on
            # the VM. The token is dropped, so the next look sends a new run once none is in progress.
            return verdict("pending", f"the checks could not run yet: {exc}"), None
        if run.state == "running":
            return verdict("pending", "the checks are running in the VM (Run Command)"), run.token
        if run.state == "not_run":
            return verdict("pending", f"the checks could not run: {run.error}"), None
        results = read_results(run.output, checks)
        if results.failed:
            # A service may still be starting when the agent is Ready: the run is repeated at the next look, and
            # the gate fails after CHECK_FAILED_RUNS runs in a row that found a check failed (or at its bound).
            runs = carried + 1
            found = tuple(f"check {f}" for f in results.failed)
            if runs >= CHECK_FAILED_RUNS:
                return verdict("failed", *found, checks=results.lines, failed_runs=runs), None
            again = f"run {runs} of {CHECK_FAILED_RUNS} found a check failed; running them again"
            return verdict("pending", *found, again, checks=results.lines, failed_runs=runs), None
        if results.missing:
            missing = f"the checks printed no result for {', '.join(results.missing)}"
            return verdict("pending", missing, checks=results.lines), None
        return verdict("passed", checks=results.lines, failed_runs=0), None

    def _target_vm_id(self, record: MigrationRecord, item: str) -> str:
        state = self.asr.get_replication_state(item)
        if state.target_vm_id:
            return state.target_vm_id
        if not self.target_resource_group_id:
            raise PermanentCloudError(f"ASR names no target VM for {item} and no target resource group is set",
                                      code="TargetVmUnknown")  # fmt: skip
        return (f"{self.target_resource_group_id.rstrip('/')}/providers/Microsoft.Compute/virtualMachines/"
                f"{_azure_vm_name(record)}")  # fmt: skip

    def start_commit(self, migration_id: str) -> JobStarted:
        return self._start_operation(migration_id, Phase.COMMITTING, "Commit", self.asr.begin_commit)

    def start_complete_migration(self, migration_id: str) -> JobStarted:
        """After commit the VM runs in Azure: ending replication is housekeeping. When ASR offers no way to
        (CompleteMigrationNotOffered), the migration is done all the same, with a note in its log."""
        try:
            return self._start_operation(migration_id, Phase.COMPLETING, "CompleteMigration",
                                         self.asr.begin_complete_migration)  # fmt: skip
        except NotFound:
            # The item is gone: an earlier run's removal finished (its answer lost to a crash). Done all the same.
            record = self.store.get(migration_id)
            self._log(record, "CompleteMigrationDone", "replication already ended: the replicated item is gone")
            return JobStarted(job_id=record.current_job_id or "", protected_item_name=_require_item(record))
        except PreconditionFailed as exc:
            if exc.code != COMPLETE_MIGRATION_NOT_OFFERED:
                raise
            record = self.store.get(migration_id)
            note = f"committed; replication not ended: {exc} (disable it in the vault when ASR offers it)"
            self._log(record, "CompleteMigrationSkipped", note)
            # The commit job, which succeeded: the orchestration sees a finished job and records Migrated.
            return JobStarted(job_id=record.current_job_id or "", protected_item_name=_require_item(record))

    def start_disable_replication(self, migration_id: str) -> JobStarted | None:
        record = self.store.get(migration_id)
        if record.protected_item_name is None:
            return None
        try:
            job_id = self.asr.begin_disable_replication(record.protected_item_name)
        except NotFound:
            return None
        self._log(record, "AsrJobStarted", "disable replication (cancelled)", job_id=job_id,
                  operation="DisableProtection")  # fmt: skip
        return JobStarted(job_id=job_id, protected_item_name=record.protected_item_name)

    def request_rollback(self, migration_id: str, request: RollbackRequest) -> MigrationRecord:
        """Keep a rollback asked for a Failed migration whose orchestration has ended (the API then starts one, whose
        register step finds it). No phase change: the orchestration owns those."""

        def change(record: MigrationRecord) -> MigrationRecord | None:
            if record.rollback == request:
                return None
            record.rollback = request
            return record

        record = self._save(migration_id, change)
        self._log(record, "RollbackRequested", rollback_words(request))
        return record

    def start_rollback(self, migration_id: str, request: RollbackRequest) -> JobStarted | None:
        """Undo a failover that was not committed: disable protection on the replicated item (``remove``, as cancel
        and complete do; ASR offers DisableProtection on a failed-over item, docs/ROLLBACK.md). Refused when ASR no
        longer offers Commit on a failed-over item (it was committed: no way back). None when the item is gone
        already (an earlier run's disable finished). A commit is never sent."""
        record = self.store.get(migration_id)
        item = _require_item(record)
        if record.current_job_id and record.phase is Phase.ROLLING_BACK and record.rollback is not None:
            return JobStarted(job_id=record.current_job_id, protected_item_name=item)  # a rerun: the disable is sent
        try:
            state = self.asr.get_replication_state(item)
        except NotFound:
            self._move(migration_id, Phase.ROLLING_BACK, reason=rollback_words(request), rollback=request)
            return None
        if "CompleteMigration" in state.allowed_operations and "Commit" not in state.allowed_operations:
            raise PreconditionFailed(
                f"{migration_id} cannot be rolled back: ASR no longer offers Commit on {item}, so the failover was "
                "committed; commit ended ASR's failover and the Azure VM is the machine now",
                code="AlreadyCommitted",
            )
        vm_id = record.target_vm_id or state.target_vm_id
        self._move(migration_id, Phase.ROLLING_BACK, reason=rollback_words(request), rollback=request,
                   target_vm_id=vm_id, current_job_id=None)  # fmt: skip
        moved = self.store.get(migration_id)
        self._log(moved, "RollbackStarted", f"{rollback_words(request)}; disabling protection of {item}, then "
                                            f"deleting the failed-over VM {vm_id or '(unknown)'}")  # fmt: skip
        try:
            job_id = self.asr.begin_disable_replication(item)
        except NotFound:
            return None
        moved = self._move(migration_id, Phase.ROLLING_BACK, reason=rollback_words(request), current_job_id=job_id)
        self._log(moved, "AsrJobStarted", "disable protection (rollback before commit)", job_id=job_id,
                  operation="DisableProtection")  # fmt: skip
        return JobStarted(job_id=job_id, protected_item_name=item)

    def remove_failed_over_vm(self, migration_id: str) -> VmRemoval:
        """Delete the failed-over VM (Microsoft.Compute DELETE); gone once it is no longer found, and then the record
        asks the AWS side to start the source again (``timeline.restart_requested_at``). Its disks and NICs are left
        (docs/ROLLBACK.md: no source says the item's removal deletes them)."""
        record = self.store.get(migration_id)
        vm_id = record.target_vm_id or self._fallback_vm_id(record)
        if vm_id is None:
            gone = True
        elif not isinstance(self.vms, VmRemover):
            raise PreconditionFailed("no VM remover is configured: the failed-over VM cannot be deleted",
                                     code="NotSupported")  # fmt: skip
        else:
            gone = self.vms.delete(vm_id)
        if not gone:
            return VmRemoval(vm_id=vm_id, gone=False)
        if record.phase is Phase.ROLLING_BACK:
            self._log(record, "FailedOverVmDeleted",
                      f"failed-over VM {vm_id} deleted; its disks and NICs (created by ASR) are left in the target "
                      "resource group: delete them by hand if unwanted", vm_id=vm_id)  # fmt: skip
            now = self.clock.now()
            timeline = record.timeline.model_copy(update={"restart_requested_at": now})
            self._move(migration_id, Phase.ROLLED_BACK, reason=rolled_back_reason(record.rollback or RollbackRequest()),
                       timeline=timeline, current_job_id=None)  # fmt: skip
        return VmRemoval(vm_id=vm_id, gone=True)

    def _fallback_vm_id(self, record: MigrationRecord) -> str | None:
        if not self.target_resource_group_id:
            return None
        return (f"{self.target_resource_group_id.rstrip('/')}/providers/Microsoft.Compute/virtualMachines/"
                f"{_azure_vm_name(record)}")  # fmt: skip

    def _start_operation(self, migration_id: str, phase: Phase, operation: str,
                         begin: Callable[[str], str]) -> JobStarted:  # fmt: skip
        record = self.store.get(migration_id)
        item = _require_item(record)
        job_id = begin(item)
        moved = self._move(migration_id, phase, current_job_id=job_id)
        self._log(moved, "AsrJobStarted", f"{operation} requested", job_id=job_id, operation=operation)
        return JobStarted(job_id=job_id, protected_item_name=item)


def _require_item(record: MigrationRecord) -> str:
    if record.protected_item_name is None:
        raise PreconditionFailed(f"{record.migration_id} has no replicated item", code="NotReplicating")
    return record.protected_item_name


def _azure_vm_name(record: MigrationRecord) -> str:
    # Named after the source instance, so an operator can tell which VM came from where; EC2 ids fit
    # Azure's 64-character VM name limit (the guest's computer name is kept from the source by ASR).
    return record.instance.instance_id
