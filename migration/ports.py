"""The ports the core needs from the outside world, as Protocols.

Adapters in ``functions/adapters`` (Azure) and ``aws_lambda/adapters`` (AWS) implement them over one SDK
each and raise only ``migration.errors`` types.
"""

from __future__ import annotations

import builtins
from collections.abc import Sequence
from datetime import datetime
from typing import Literal, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field

from migration.clock import Clock as Clock  # noqa: PLC0414 - re-exported: a port like the others
from migration.monitoring import JobVerdict
from migration.records import MigrationEvent, MigrationRecord, Page

# What the orchestration acts on; ASR's own state (which also has Other) is AsrJob.asr_state.
JobState = Literal["NotStarted", "InProgress", "Succeeded", "Failed", "Cancelled", "Suspended"]
FINISHED_JOB_STATES = frozenset({"Succeeded", "Failed", "Cancelled"})
DiskType = Literal[
    "Standard_LRS", "Premium_LRS", "StandardSSD_LRS", "PremiumV2_LRS", "UltraSSD_LRS", "StandardSSD_ZRS", "Premium_ZRS"
]


class MigrationStore(Protocol):
    """Current records (ETag-guarded) and the append-only event log, in Azure Table Storage."""

    def get(self, migration_id: str) -> MigrationRecord:
        """Point read; raises NotFound."""
        ...

    def create(self, record: MigrationRecord) -> MigrationRecord:
        """Insert a new record; raises PreconditionFailed if one exists. Returns it with its etag."""
        ...

    def update(self, record: MigrationRecord) -> MigrationRecord:
        """Replace if ``record.etag`` is current; raises PreconditionFailed on a stale etag."""
        ...

    def list(
        self,
        *,
        wave: str | None = None,
        phase: str | None = None,
        page_size: int = 100,
        continuation: str | None = None,
    ) -> Page:
        """List records, by wave without scanning the table; raises InvalidInput on a bad token."""
        ...

    def list_waves(self) -> builtins.list[str]: ...

    def append_event(self, event: MigrationEvent) -> None: ...

    def list_events(self, migration_id: str, *, limit: int = 200) -> builtins.list[MigrationEvent]:
        """Oldest first."""
        ...


class DiscoveredMachine(BaseModel):
    """A machine the replication appliance discovered: a Microsoft.OffAzure machine of the appliance's site."""

    model_config = ConfigDict(frozen=True)

    name: str  # the OffAzure machine name (last segment of its ARM id); also the replicated item's name
    id: str = ""  # its ARM id: what InMageRcm's fabricDiscoveryMachineId names
    fabric_name: str
    container_name: str
    friendly_name: str
    ip_addresses: tuple[str, ...]
    os_type: str
    os_name: str = ""
    disk_ids: tuple[str, ...] = ()
    # The site's run-as account the appliance holds for this machine (push install credentials), if any.
    run_as_account_id: str = ""


class ReplicationPlan(BaseModel):
    """What enabling replication needs to know about the target, per instance."""

    model_config = ConfigDict(frozen=True)

    target_vm_name: str
    target_vm_size: str | None = None
    target_subnet: str
    # Azure Hybrid Benefit (licenseType WindowsServer for a Windows source): only when the operator says the
    # licences carry that right (AWS license-included Windows does not). None: the deployment's default.
    hybrid_benefit: bool | None = None
    disk_type: str | None = None  # InMageRcm diskType; None: the deployment's TARGET_DISK_TYPE
    tags: dict[str, str] = Field(default_factory=dict)


class ReplicationState(BaseModel):
    """What ASR says about a replicated item right now."""

    model_config = ConfigDict(frozen=True)

    protected_item_name: str
    protection_state: str
    replication_health: str
    allowed_operations: frozenset[str]
    progress_percent: int | None = None
    rpo_seconds: int | None = None
    failover_health: str | None = None
    active_location: str | None = None
    test_failover_state: str | None = None
    health_errors: tuple[str, ...] = ()
    last_recovery_point: datetime | None = None
    # Where the failover creates (created) the Azure VM: InMageRcmReplicationDetails.targetVmName and
    # .targetResourceGroupId (an ARM resource group id), as the enable input set them.
    target_vm_name: str | None = None
    target_resource_group_id: str | None = None

    @property
    def target_vm_id(self) -> str | None:
        """The failed-over VM's ARM id (Microsoft.Compute/virtualMachines under the target resource group)."""
        if not self.target_vm_name or not self.target_resource_group_id:
            return None
        group = self.target_resource_group_id.rstrip("/")
        return f"{group}/providers/Microsoft.Compute/virtualMachines/{self.target_vm_name}"


class AsrJob(BaseModel):
    model_config = ConfigDict(frozen=True)

    job_id: str
    state: JobState
    display_name: str = ""
    errors: tuple[str, ...] = ()
    asr_state: str = ""  # ASR's own words: state and stateDescription
    state_description: str = ""
    verdict: JobVerdict = "running"
    note: str = ""  # e.g. "waits for an operator to resume it", "completed with information"
    # ASR offers Restart among the job's allowedActions (JobProperties.allowedActions): a failed job ASR lets be
    # re-run. A failed job without it is one ASR does not let be retried.
    restartable: bool = False
    scenario: str = ""  # JobProperties.scenarioName

    @property
    def finished(self) -> bool:
        return self.state in FINISHED_JOB_STATES


VmVerdict = Literal["passed", "pending", "failed"]
# Status codes of the VM instance view (VirtualMachineInstanceView.statuses[].code, azure-rest-api-specs
# VirtualMachine_Get_InstanceView.json; power states as the Azure SDKs' PowerState enumerates them).
PROVISIONING_SUCCEEDED = "succeeded"
POWER_RUNNING = "running"
POWER_STARTING = "starting"
AGENT_READY = "Ready"


class VmHealth(BaseModel):
    """What the validation gate saw of a failed-over VM in one look (its instance view), and the verdict.

    ``passed``: provisioning succeeded, the VM runs and its VM agent reports Ready. ``pending``: not yet (still
    provisioning or starting, the agent not Ready yet, the VM not found yet): look again within the bound.
    ``failed``: a state that will not come right by waiting (provisioning failed, the VM stopped or deallocated).
    """

    model_config = ConfigDict(frozen=True)

    vm_id: str
    provisioning_state: str | None = None  # "succeeded", "failed", "creating", ... (ProvisioningState/<x>)
    power_state: str | None = None  # "running", "starting", "stopped", "deallocated", ... (PowerState/<x>)
    agent_status: str | None = None  # vmAgent.statuses[0].displayStatus: "Ready", "Not Ready"
    agent_message: str = ""
    boot_diagnostics: str = ""  # bootDiagnostics.status (an error), or where its screenshot/serial log is
    found: bool = True
    verdict: VmVerdict = "pending"
    findings: tuple[str, ...] = ()
    # The operator's checks run in the VM (Run Command), one line each ("tcp 443: ok"), once a run has finished.
    checks: tuple[str, ...] = ()
    failed_runs: int = 0  # runs in a row that found a check failed

    @property
    def passed(self) -> bool:
        return self.verdict == "passed"

    def summary(self) -> str:
        if not self.found:
            return f"VM {self.vm_id} not found"
        words = (f"VM {self.vm_id}: provisioning {self.provisioning_state or 'unknown'}, power "
                 f"{self.power_state or 'unknown'}, VM agent {self.agent_status or 'not reporting'}")  # fmt: skip
        return words + (f", checks: {'; '.join(self.checks)}" if self.checks else "")

    @classmethod
    def judge(cls, vm_id: str, *, provisioning_state: str | None, power_state: str | None,
              agent_status: str | None, agent_message: str = "", boot_diagnostics: str = "") -> VmHealth:  # fmt: skip
        """The verdict from the instance view's codes (lower-case after the slash, as ARM writes them)."""
        findings: list[str] = []
        failed = pending = False
        prov = (provisioning_state or "").lower()
        power = (power_state or "").lower()
        if prov == "failed":
            failed = True
            findings.append("provisioning failed (ProvisioningState/failed)")
        elif prov != PROVISIONING_SUCCEEDED:
            pending = True
            findings.append(f"provisioning not finished (ProvisioningState/{prov or 'unknown'})")
        if power in ("stopped", "stopping", "deallocated", "deallocating"):
            failed = True
            findings.append(f"the VM is not running (PowerState/{power})")
        elif power != POWER_RUNNING:
            pending = True
            findings.append(f"the VM is not running yet (PowerState/{power or 'unknown'})")
        if agent_status != AGENT_READY:
            pending = True
            words = f"the VM agent is {agent_status or 'not reporting'}"
            findings.append(words + (f": {agent_message}" if agent_message else ""))
        if boot_diagnostics and (failed or pending):
            findings.append(f"boot diagnostics: {boot_diagnostics}")
        verdict: VmVerdict = "failed" if failed else "pending" if pending else "passed"
        return cls(vm_id=vm_id, provisioning_state=provisioning_state, power_state=power_state,
                   agent_status=agent_status, agent_message=agent_message, boot_diagnostics=boot_diagnostics,
                   verdict=verdict, findings=tuple(findings))  # fmt: skip

    @classmethod
    def not_found(cls, vm_id: str) -> VmHealth:
        return cls(vm_id=vm_id, found=False, verdict="pending",
                   findings=(f"the VM {vm_id} does not exist (ResourceNotFound)",))  # fmt: skip


class VmInspector(Protocol):
    """The failed-over VM, read through Microsoft.Compute (the Azure adapter: azure-mgmt-compute)."""

    def inspect(self, vm_id: str) -> VmHealth:
        """One look at the VM's instance view (virtualMachines/{vm}/instanceView). A VM that does not exist is
        ``VmHealth.not_found``; throttling and 5xx raise ThrottledError / TransientCloudError."""
        ...


class CheckRun(BaseModel):
    """One Run Command of the gate's checks, as one look found it. ``running``: the long-running operation is in
    flight (``token`` resumes it); ``done``: it finished and ``output`` is what the script printed (every status
    message of RunCommandResult.value); ``not_run``: it finished without running the script (``error``)."""

    model_config = ConfigDict(frozen=True)

    state: Literal["running", "done", "not_run"]
    token: str | None = None
    output: str = ""
    error: str = ""


@runtime_checkable
class VmCheckRunner(Protocol):
    """Running the operator's checks in the failed-over VM (virtualMachines/{vm}/runCommand; azure-mgmt-compute).
    Each call returns at once: the gate never waits for the script inside an activity."""

    def start_checks(self, vm_id: str, command_id: str, script: Sequence[str]) -> CheckRun:
        """Send one Run Command (``RunShellScript`` or ``RunPowerShellScript``) without waiting for it. Another run
        in progress (409) raises PreconditionFailed; a VM that does not exist NotFound; throttling/5xx
        ThrottledError / TransientCloudError."""
        ...

    def poll_checks(self, vm_id: str, token: str) -> CheckRun:
        """One look at a run sent earlier (its continuation token); NotFound when the operation is no longer
        known."""
        ...


@runtime_checkable
class VmRemover(Protocol):
    """Deleting the failed-over VM (rollback before commit; the Azure adapter: azure-mgmt-compute)."""

    def delete(self, vm_id: str) -> bool:
        """Ask Microsoft.Compute to delete the VM (virtualMachines/{vm} DELETE); True when it is gone (404 now),
        False while the deletion runs. Its disks and NICs are left (docs/ROLLBACK.md)."""
        ...


@runtime_checkable
class AsrJobControl(Protocol):
    """Operator actions on ASR jobs (the Azure adapter implements them)."""

    def resume_job(self, job_id: str, comments: str = "") -> AsrJob:
        """Resume a Suspended job (ASR's replicationJobs resume); PreconditionFailed if it is not suspended."""
        ...


@runtime_checkable
class AsrJobRecovery(Protocol):
    """Restarting failed ASR jobs and finding an item's jobs again from ASR's own state (the Azure adapter)."""

    def restart_job(self, job_id: str, protected_item_name: str) -> str:
        """Restart a failed job (replicationJobs restart) when its allowedActions offer Restart; returns the job to
        watch from now on. A job already restarted (a rerun after a lost answer) returns the job that re-runs it.
        PreconditionFailed JobNotRestartable otherwise."""
        ...

    def find_item_job(self, protected_item_name: str, scenarios: frozenset[str], *,
                      friendly_name: str = "") -> str | None:  # fmt: skip
        """The item's job of one of ``scenarios`` (lower-case scenario names): the one running
        (currentScenario), else the newest ASR lists for the item; None if there is none."""
        ...


class AsrGateway(Protocol):
    """Azure Site Recovery, InMageRcm (the modernized appliance-based path) only.

    ``begin_*`` methods start a long-running operation with polling off and return the ASR job id;
    each checks ``allowedOperations`` first and raises PreconditionFailed if ASR would refuse.
    Throttling raises ThrottledError with ``retry_after_seconds``.
    """

    def find_machine_by_ip(self, private_ip: str) -> DiscoveredMachine:
        """Look the machine up in the appliance's OffAzure site. Raises AwaitingDiscovery (retryable) while the
        site does not list it yet, PreconditionFailed for several matches."""
        ...

    def ensure_os_supported(self, machine: DiscoveredMachine) -> None: ...

    def begin_enable_replication(self, machine: DiscoveredMachine, plan: ReplicationPlan) -> str: ...

    def get_replication_state(self, protected_item_name: str) -> ReplicationState: ...

    def get_job(self, job_id: str) -> AsrJob: ...

    def begin_test_failover(self, protected_item_name: str) -> str: ...

    def begin_test_failover_cleanup(self, protected_item_name: str) -> str: ...

    def begin_unplanned_failover(self, protected_item_name: str) -> str: ...

    def begin_commit(self, protected_item_name: str) -> str: ...

    def begin_complete_migration(self, protected_item_name: str) -> str: ...

    def begin_disable_replication(self, protected_item_name: str) -> str: ...

    def create_recovery_plan(self, plan_name: str, protected_item_names: Sequence[str]) -> str | None:
        """Start creating the plan (a long-running operation); returns the ASR job that creates it (None if not
        known). ``begin_recovery_plan_failover`` answers AwaitingOperation (retryable) until that job ends."""
        ...

    def begin_recovery_plan_failover(self, plan_name: str) -> str: ...

    def begin_recovery_plan_commit(self, plan_name: str) -> str: ...
