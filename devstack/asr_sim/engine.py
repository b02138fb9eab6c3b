"""The simulated vault: machines, replicated items, jobs and recovery plans, and the rules that move them.

Knows nothing of HTTP. Every public method takes ``now`` (the virtual clock, read once per request) and
settles first: jobs whose end time has passed apply their effects in end-time order, so state read at
any instant is what an eager simulation would show.
"""

from __future__ import annotations

import heapq
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from devstack.asr_sim import arm
from devstack.asr_sim.arm import PROVIDER, Vault, stable_uuid, unit_fraction
from devstack.asr_sim.compute import FailedOverVm, vm_from_settings
from devstack.asr_sim.contract import (
    AsrErrorSpec,
    FaultPlan,
    FaultRule,
    Infrastructure,
    MachineInfo,
    MachineSeed,
    SimConfig,
)
from devstack.asr_sim.errors import ArmError, bad_request, conflict, not_found
from devstack.asr_sim.jobs import SCENARIOS, Job, JobTarget
from devstack.asr_sim.model import Machine, ProtectedItem, RecoveryPlan
from devstack.asr_sim.oscatalog import is_supported
from devstack.asr_sim.replication import GIB, ReplicationProgress, effective_rate_bytes_per_s
from devstack.asr_sim.stats import Recorder
from devstack.asr_sim.status import ItemStatus, item_status, job_in_flight

MAX_RECOVERY_PLAN_ITEMS = 100
UNSUPPORTED_OS_ERROR = AsrErrorSpec(
    code="78180",
    message="Protection couldn't be enabled: the machine's operating system is not supported by Site Recovery.",
    possible_causes="The operating system or its version is not in the support matrix for this scenario.",
    recommended_action="Check replicationSupportedOperatingSystems for the InMageRcm provider.",
)


@dataclass(frozen=True)
class Operation:
    """A name in allowedOperations and the words an error uses for it."""

    allowed_name: str
    words: str


OP_TEST_FAILOVER = Operation("TestFailover", "test failover")
OP_CLEANUP = Operation("TestFailoverCleanup", "test failover cleanup")
OP_FAILOVER = Operation("UnplannedFailover", "unplanned failover")
OP_COMMIT = Operation("Commit", "failover commit")
OP_DISABLE = Operation("DisableProtection", "disable protection")
OP_COMPLETE_MIGRATION = Operation("CompleteMigration", "complete migration")


class Simulator:
    def __init__(self, vault: Vault, *, seed: int = 0, config: SimConfig | None = None) -> None:
        self.vault = vault
        self.seed = seed
        self.config = config or SimConfig()
        self.recorder = Recorder()
        self.faults = FaultPlan(seed=seed)
        self._machine_faults: dict[str, FaultRule] = {}
        self.process_server_id = stable_uuid("process-server", vault.id)
        self.fabric_internal_id = stable_uuid("fabric", vault.id)
        self.reset_state()

    # ------------------------------------------------------------------ state and settling

    def reset_state(self) -> None:
        self.machines: dict[str, Machine] = {}
        self.machines_by_ip: dict[str, str] = {}
        self.items: dict[str, ProtectedItem] = {}
        self.jobs: dict[str, Job] = {}
        self.job_order: list[str] = []
        self.plans: dict[str, RecoveryPlan] = {}
        # The Azure VMs failovers created, by lower-case subscription/resource group/name (they outlive the item).
        self.vms: dict[str, FailedOverVm] = {}
        # Replicated item name -> machine name, kept after the item is gone (for request attribution).
        self.item_machine: dict[str, str] = {}
        self._pending: list[tuple[datetime, int, str]] = []
        # How many jobs of a scenario each target has had: the job-failure draw is keyed by it.
        self._attempts: Counter[tuple[str, str]] = Counter()
        self._counter = 0

    def reset_observations(self) -> None:
        self.recorder.reset()

    def settle(self, now: datetime) -> None:
        while self._pending and self._pending[0][0] <= now:
            end, _, name = heapq.heappop(self._pending)
            job = self.jobs.get(name)
            if job is None or job.settled or job.end_time() != end:
                continue  # cancelled, or re-queued with a new end by Resume
            self._apply(job, end)

    def _next_name(self, kind: str) -> str:
        self._counter += 1
        return stable_uuid(self.seed, kind, self._counter)

    # ------------------------------------------------------------------ infrastructure

    def infrastructure(self) -> Infrastructure:
        v = self.vault
        return Infrastructure(
            subscription_id=v.subscription_id,
            resource_group=v.resource_group,
            vault_name=v.name,
            fabric_name=arm.FABRIC_NAME,
            fabric_id=v.fabric_id(),
            physical_site_id=v.physical_site_id(),
            physical_site_name=arm.PHYSICAL_SITE_NAME,
            run_as_account_ids=tuple(v.run_as_account_id(n) for n in arm.RUN_AS_ACCOUNTS.values()),
            process_server_id=self.process_server_id,
            protection_container_name=arm.CONTAINER_NAME,
            protection_container_id=v.container_id(),
            policy_name=arm.POLICY_NAME,
            policy_id=v.policy_id(),
            container_mapping_name=arm.MAPPING_NAME,
            container_mapping_id=v.mapping_id(),
        )

    # ------------------------------------------------------------------ machines and faults

    def seed_machine(self, seed: MachineSeed) -> Machine:
        if seed.ip in self.machines_by_ip:
            raise conflict("MachineAlreadyDiscovered", f"a machine with IP {seed.ip} is already discovered")
        name = stable_uuid(self.seed, "machine", seed.ip)
        low, high = self.config.upload_mb_per_s_range
        upload = seed.upload_mb_per_s or round(low + (high - low) * unit_fraction(self.seed, "upload", seed.ip), 3)
        machine = Machine(
            name=name,
            friendly_name=seed.friendly_name or f"ip-{seed.ip.replace('.', '-')}",
            ip=seed.ip,
            os_type=seed.os_type,
            os_name=seed.os_name,
            os_supported_by_name=is_supported(seed.os_type, seed.os_name),
            disks_gib=seed.disks_gib,
            disk_ids=tuple(stable_uuid(self.seed, "disk", seed.ip, i) for i in range(len(seed.disks_gib))),
            churn_mb_per_day=seed.churn_mb_per_day,
            upload_mb_per_s=upload,
            agent_id=stable_uuid(self.seed, "agent", seed.ip),
            discovered=seed.agent_registered,
        )
        self.machines[name] = machine
        self.machines_by_ip[seed.ip] = name
        return machine

    def register_agent(self, key: str, now: datetime) -> Machine:
        """The Mobility agent registered with the appliance: the OffAzure site lists the machine from now on."""
        machine = self.resolve_machine(key)
        if not machine.discovered:
            machine.discovered = True
            machine.discovered_at = now
        return machine

    def discovered_machines(self) -> list[Machine]:
        return [m for m in self.machines.values() if m.discovered]

    def discovered_machine(self, name: str) -> Machine:
        machine = self.machines.get(name)
        if machine is None or not machine.discovered:
            raise ArmError(
                404,
                "ResourceNotFound",
                f"The Resource 'Microsoft.OffAzure/serverSites/{arm.PHYSICAL_SITE_NAME}/machines/{name}' under "
                f"resource group '{self.vault.resource_group}' was not found.",
            )
        return machine

    def run_as_account_of(self, machine: Machine) -> str:
        return self.vault.run_as_account_id(arm.RUN_AS_ACCOUNTS.get(machine.os_type, arm.RUN_AS_ACCOUNTS["Linux"]))

    def machine_info(self, machine: Machine) -> MachineInfo:
        return MachineInfo(
            name=machine.name,
            id=self.vault.protectable_item_id(machine.name),
            friendly_name=machine.friendly_name,
            ip=machine.ip,
            os_type=machine.os_type,
            os_name=machine.os_name,
            os_supported=self.os_supported(machine),
            disks_gib=machine.disks_gib,
            disk_ids=machine.disk_ids,
            churn_mb_per_day=machine.churn_mb_per_day,
            upload_mb_per_s=machine.upload_mb_per_s,
            fabric_discovery_machine_id=self.vault.discovery_machine_id(machine.name),
            protected_item_name=machine.protected_item_name,
            discovered=machine.discovered,
            run_as_account_id=self.run_as_account_of(machine),
        )

    def resolve_machine(self, key: str) -> Machine:
        if key in self.machines:
            return self.machines[key]
        if key in self.machines_by_ip:
            return self.machines[self.machines_by_ip[key]]
        for machine in self.machines.values():
            if machine.friendly_name == key:
                return machine
        raise bad_request("UnknownMachine", f"no discovered machine is named or addressed {key!r}")

    def set_faults(self, plan: FaultPlan, now: datetime) -> FaultPlan:
        self.settle(now)
        resolved = {self.resolve_machine(key).name: rule for key, rule in plan.machines.items()}
        self.faults = plan
        self._machine_faults = resolved
        for item in self.items.values():
            if item.replication is not None:
                item.replication.set_stalled(now, self.is_stalled(item.machine_name))
        return plan

    def machine_rule(self, machine_name: str | None) -> FaultRule | None:
        return None if machine_name is None else self._machine_faults.get(machine_name)

    def is_stalled(self, machine_name: str) -> bool:
        rule = self._machine_faults.get(machine_name)
        return self.faults.run.stalled or (rule is not None and rule.stalled)

    def os_supported(self, machine: Machine) -> bool:
        rule = self._machine_faults.get(machine.name)
        forced = self.faults.run.unsupported_os or (rule is not None and rule.unsupported_os)
        return machine.os_supported_by_name and not forced

    # ------------------------------------------------------------------ lookups

    def item(self, name: str) -> ProtectedItem:
        found = self.items.get(name)
        if found is None:
            raise not_found("replication protected item", name)
        return found

    def job(self, name: str) -> Job:
        found = self.jobs.get(name)
        if found is None:
            raise not_found("job", name)
        return found

    def plan(self, name: str) -> RecoveryPlan:
        found = self.plans.get(name)
        if found is None or not found.ready:
            raise not_found("recovery plan", name)
        return found

    def machine(self, name: str) -> Machine:
        found = self.machines.get(name)
        if found is None:
            raise not_found("protectable item", name)
        return found

    def status(self, item: ProtectedItem, now: datetime) -> ItemStatus:
        job = self.jobs.get(item.active_job) if item.active_job else None
        error_job = self.jobs.get(item.last_error_job) if item.last_error_job else None
        return item_status(item, job, now, error_job=error_job)

    # ------------------------------------------------------------------ jobs

    def _start_job(
        self,
        scenario_name: str,
        *,
        now: datetime,
        target_kind: JobTarget,
        target_name: str,
        friendly_name: str,
        internal_id: str,
        machine_name: str | None,
        request: dict[str, Any],
        members: tuple[str, ...] = (),
        forced_error: AsrErrorSpec | None = None,
    ) -> Job:
        scenario = SCENARIOS[scenario_name]
        name = self._next_name("job")
        jitter = 0.8 + 0.4 * unit_fraction(self.seed, "duration", name)
        seconds = scenario.seconds * self.config.job_duration_scale * jitter
        attempt = self._attempts[(target_name, scenario_name)]
        self._attempts[(target_name, scenario_name)] += 1
        outcome, error, failing_task = "Succeeded", None, -1
        if forced_error is not None:
            outcome, error, failing_task = "Failed", forced_error, 0
        elif self._job_fails(scenario_name, target_name, machine_name, attempt):
            outcome, error = "Failed", self._failure_error(machine_name)
            failing_task = len(scenario.tasks) - 1
        job = Job(
            name=name,
            scenario=scenario,
            created_at=now,
            seconds=seconds,
            outcome=outcome,  # type: ignore[arg-type]
            target_kind=target_kind,
            target_name=target_name,
            target_friendly_name=friendly_name,
            target_internal_id=internal_id,
            request=request,
            failing_task=failing_task,
            error=error,
            members=members,
            activity_id=f"{stable_uuid(self.seed, 'activity', name)} ActivityId: {stable_uuid(name)}",
        )
        if scenario_name in self.faults.suspend_scenarios:
            job.suspend_after_seconds = job.run_seconds / 2
        injected = self.faults.end_states.get(scenario_name)
        if injected is not None and outcome == "Succeeded":
            job.end_state = (injected.state, injected.state_description)
        self.jobs[name] = job
        self.job_order.append(name)
        self._schedule(job)
        self.recorder.job_started(scenario_name)
        return job

    def _schedule(self, job: Job) -> None:
        end = job.end_time()
        if end is not None:
            self._counter += 1
            heapq.heappush(self._pending, (end, self._counter, job.name))

    def _job_fails(self, scenario: str, target: str, machine_name: str | None, attempt: int) -> bool:
        rules = [self.faults.run]
        machine_rule = self.machine_rule(machine_name)
        if machine_rule is not None:
            rules.append(machine_rule)
        rate = max(
            (r.job_failure_rate for r in rules if not r.job_failure_scenarios or scenario in r.job_failure_scenarios),
            default=0.0,
        )
        return rate > 0 and unit_fraction(self.faults.seed, "job-failure", target, scenario, attempt) < rate

    def _failure_error(self, machine_name: str | None) -> AsrErrorSpec:
        rule = self.machine_rule(machine_name)
        if rule is not None and rule.job_failure_rate > 0:
            return rule.job_failure_error
        return self.faults.run.job_failure_error

    def restart_job(self, name: str, now: datetime) -> Job:
        self.settle(now)
        job = self.job(name)
        if "Restart" not in job.allowed_actions(now):
            raise bad_request(
                "JobActionNotAllowed",
                f"The job '{name}' is {job.state_at(now)} and cannot be restarted; only failed or cancelled jobs can.",
            )
        restarted = self._rerun(job, now)
        job.restarted_as = restarted.name
        self.recorder.job_restarted(job.scenario.name, job.target_name if job.target_kind != "RecoveryPlan" else None)
        return restarted

    def _rerun(self, job: Job, now: datetime) -> Job:
        scenario, target = job.scenario.name, job.target_name
        if job.target_kind == "RecoveryPlan":
            plan_runs: dict[str, Callable[[], Job]] = {
                "UnplannedFailover": lambda: self.plan_unplanned_failover(target, job.request, now),
                "Commit": lambda: self.plan_commit(target, now),
            }
            if scenario not in plan_runs:
                raise bad_request("JobActionNotAllowed", f"a {scenario} job cannot be restarted")
            return plan_runs[scenario]()
        if scenario == "EnableDr":
            return self._reenable(target, now)
        item_runs: dict[str, Callable[[], Job]] = {
            "UpdateVmProperties": lambda: self.update(target, job.request, now),
            "TestFailover": lambda: self.test_failover(target, job.request, now),
            "TestFailoverCleanup": lambda: self.test_failover_cleanup(target, job.request, now),
            "UnplannedFailover": lambda: self.unplanned_failover(target, job.request, now, restart=True),
            "Commit": lambda: self.commit(target, now),
            "DisableDr": lambda: self.remove(target, job.request, now),
            "PurgeProtection": lambda: self.purge(target, now),
        }
        return item_runs[scenario]()

    def resume_job(self, name: str, now: datetime) -> Job:
        self.settle(now)
        job = self.job(name)
        if job.state_at(now) != "Suspended":
            raise bad_request(
                "JobActionNotAllowed", f"The job '{name}' is {job.state_at(now)}; only suspended jobs can be resumed."
            )
        job.resumed_at = now
        self._schedule(job)
        return job

    def cancel_job(self, name: str, now: datetime) -> Job:
        self.settle(now)
        job = self.job(name)
        if "Cancel" not in job.allowed_actions(now):
            raise bad_request(
                "JobActionNotAllowed",
                f"The job '{name}' ({job.scenario.friendly_name}, {job.state_at(now)}) cannot be cancelled.",
            )
        job.cancelled_at = now
        self._apply(job, now)
        return job

    # ------------------------------------------------------------------ effects of finished jobs

    def _apply(self, job: Job, at: datetime) -> None:
        job.settled = True
        ok = job.took_effect and job.state_at(at) in ("Succeeded", "Other")
        if job.target_kind == "RecoveryPlan":
            self._apply_plan(job, ok, at)
            return
        item = self.items.get(job.target_name)
        if item is None:
            return
        if item.active_job == job.name:
            item.active_job = None
        if not ok:
            item.last_error_job = job.name
        effect = getattr(self, f"_on_{job.scenario.name}")
        effect(item, job, ok, at)

    def _on_EnableDr(self, item: ProtectedItem, job: Job, ok: bool, at: datetime) -> None:
        if not ok:
            item.enable_failed = True
            return
        machine = self.machines[item.machine_name]
        total = sum(
            gib * GIB for disk, gib in zip(machine.disk_ids, machine.disks_gib, strict=True)
            if disk in item.protected_disk_ids
        )  # fmt: skip
        item.enabled, item.enable_failed = True, False
        item.replication = ReplicationProgress.start(
            at=at,
            total_bytes=total,
            rate=effective_rate_bytes_per_s(machine.upload_mb_per_s, machine.churn_mb_per_day),
            churn_mb_per_day=machine.churn_mb_per_day,
            stalled=self.is_stalled(machine.name),
        )

    def _on_UpdateVmProperties(self, item: ProtectedItem, job: Job, ok: bool, at: datetime) -> None:
        if ok:
            item.settings.update(job.request.get("changes", {}))

    def _on_TestFailover(self, item: ProtectedItem, job: Job, ok: bool, at: datetime) -> None:
        if ok:
            item.test_failover = "WaitingForCompletion"
            item.last_test_failover_time = at
            item.failover_recovery_point_id = self._recovery_point_id(item, at)
        else:
            item.test_failover = "Failed"

    def _on_TestFailoverCleanup(self, item: ProtectedItem, job: Job, ok: bool, at: datetime) -> None:
        item.test_failover = "CleanedUp" if ok else job.request.get("previous_stage", "WaitingForCompletion")

    def _on_UnplannedFailover(self, item: ProtectedItem, job: Job, ok: bool, at: datetime) -> None:
        if not ok:
            item.failover = "None"
            return
        item.failover = "CommitPending"
        item.last_failover_time = at
        vm = vm_from_settings(item.settings, item.machine_name, at)
        if vm is not None:
            self.vms[vm.key] = vm
        item.failover_recovery_point_id = self._recovery_point_id(item, at)

    def _on_Commit(self, item: ProtectedItem, job: Job, ok: bool, at: datetime) -> None:
        item.failover = "Committed" if ok else "CommitPending"

    def _on_DisableDr(self, item: ProtectedItem, job: Job, ok: bool, at: datetime) -> None:
        if ok:
            self._forget(item)
        else:
            item.removal = "None"

    def _on_PurgeProtection(self, item: ProtectedItem, job: Job, ok: bool, at: datetime) -> None:
        self._on_DisableDr(item, job, ok, at)

    def _forget(self, item: ProtectedItem) -> None:
        del self.items[item.name]
        machine = self.machines.get(item.machine_name)
        if machine is not None and machine.protected_item_name == item.name:
            machine.protected_item_name = None

    def _apply_plan(self, job: Job, ok: bool, at: datetime) -> None:
        plan = self.plans.get(job.target_name)
        if plan is None:
            return
        if plan.active_job == job.name:
            plan.active_job = None
        plan.last_job = job.name
        scenario = job.scenario.name
        if scenario == "CreateRecoveryPlan":
            if not ok:
                del self.plans[plan.name]
            return
        if scenario == "DeleteRecoveryPlan":
            if ok:
                del self.plans[plan.name]
            else:
                plan.deleting = False
            return
        if scenario == "UnplannedFailover" and ok:
            plan.last_unplanned_failover_time = at
        for member in job.members:
            item = self.items.get(member)
            if item is None or item.active_job != job.name:
                continue
            item.active_job = None
            if not ok:
                item.last_error_job = job.name
            getattr(self, f"_on_{scenario}")(item, job, ok, at)

    def _recovery_point_id(self, item: ProtectedItem, at: datetime) -> str:
        return f"{self.vault.protected_item_id(item.name)}/recoveryPoints/{stable_uuid(item.name, at.isoformat())}"

    # ------------------------------------------------------------------ legality

    def _require(self, item: ProtectedItem, op: Operation, now: datetime) -> ItemStatus:
        self._require_idle(item, now)
        status = self.status(item, now)
        if op.allowed_name not in status.allowed_operations:
            raise bad_request(
                "OperationNotAllowedInCurrentState",
                f"The operation '{op.allowed_name}' ({op.words}) is not allowed for the replicated item "
                f"'{item.name}' in protection state '{status.protection_state}'. Allowed operations: "
                f"{', '.join(status.allowed_operations) or 'none'}.",
            )
        return status

    def _require_idle(self, item: ProtectedItem, now: datetime) -> None:
        job = self.jobs.get(item.active_job) if item.active_job else None
        if job is not None and job_in_flight(job, now):
            raise conflict(
                "ReplicationOperationInProgress",
                f"Another operation ({job.scenario.friendly_name}, job {job.name}) is in progress on the "
                f"replicated item '{item.name}'. Wait for it to finish and try again.",
            )

    def _item_job(self, scenario: str, item: ProtectedItem, now: datetime, request: dict[str, Any]) -> Job:
        machine = self.machines[item.machine_name]
        job = self._start_job(
            scenario,
            now=now,
            target_kind="ProtectionEntity",
            target_name=item.name,
            friendly_name=machine.friendly_name,
            internal_id=item.internal_id,
            machine_name=machine.name,
            request=request,
        )
        item.active_job = job.name
        item.jobs.append(job.name)
        return job

    # ------------------------------------------------------------------ replicated item operations

    def enable(self, name: str, body: dict[str, Any], now: datetime) -> Job:
        self.settle(now)
        if name in self.items:
            raise conflict(
                "ReplicationProtectedItemAlreadyExists",
                f"The replicated item '{name}' already exists. Disable protection before enabling it again.",
            )
        props = _props(body)
        policy_id = _required_str(props, "policyId")
        if policy_id.lower() != self.vault.policy_id().lower():
            raise bad_request(
                "InvalidPolicy", f"The policy '{policy_id}' does not exist or is not an InMageRcm policy."
            )
        details = _provider_details(props, "providerSpecificDetails")
        # InMageRcm names the machine by its OffAzure ARM id (the SDK: "The ARM Id of discovered machine");
        # Azure PowerShell's InMageRcm path sends no protectableItemId.
        machine = self._machine_from_discovery_id(_required_str(details, "fabricDiscoveryMachineId"))
        protectable = props.get("protectableItemId")
        if protectable and self._machine_from_id(str(protectable)).name != machine.name:
            raise bad_request(
                "InvalidProtectableItemId",
                "properties.protectableItemId names another machine than "
                "properties.providerSpecificDetails.fabricDiscoveryMachineId.",
            )
        if machine.protected_item_name is not None:
            raise conflict(
                "ProtectableItemAlreadyProtected",
                f"The machine '{machine.friendly_name}' is already protected as '{machine.protected_item_name}'.",
            )
        run_as = details.get("runAsAccountId")
        if run_as and str(run_as).lower() not in {
            self.vault.run_as_account_id(n).lower() for n in arm.RUN_AS_ACCOUNTS.values()
        }:
            raise bad_request(
                "InvalidRunAsAccountId",
                f"properties.providerSpecificDetails.runAsAccountId '{run_as}' is not a run-as account of the "
                f"appliance's site '{self.vault.physical_site_id()}'.",
            )
        if _required_str(details, "processServerId") != self.process_server_id:
            raise bad_request("ProcessServerNotFound", "processServerId names no process server of this fabric.")
        target_rg = _required_str(details, "targetResourceGroupId")
        if "/resourcegroups/" not in target_rg.lower():
            raise bad_request("InvalidTargetResourceGroup", f"'{target_rg}' is not a resource group id.")
        disks = self._selected_disks(machine, details)
        self._check_disk_inputs(details)
        item = ProtectedItem(
            name=name,
            machine_name=machine.name,
            internal_id=stable_uuid(self.seed, "item", name),
            policy_name=arm.POLICY_NAME,
            created_at=now,
            settings=_settings_from(details, machine),
            protected_disk_ids=disks,
        )
        self.items[name] = item
        self.item_machine[name] = machine.name
        machine.protected_item_name = name
        return self._start_enable_job(item, machine, name, now)

    def _start_enable_job(self, item: ProtectedItem, machine: Machine, name: str, now: datetime) -> Job:
        """The EnableDr job, for a first enable and for a restart after a failed one."""
        forced = None if self.os_supported(machine) else UNSUPPORTED_OS_ERROR
        job = self._start_job(
            "EnableDr",
            now=now,
            target_kind="ProtectionEntity",
            target_name=name,
            friendly_name=machine.friendly_name,
            internal_id=item.internal_id,
            machine_name=machine.name,
            request={},
            forced_error=forced,
        )
        item.active_job = job.name
        item.jobs.append(job.name)
        return job

    def _reenable(self, name: str, now: datetime) -> Job:
        item = self.item(name)
        self._require_idle(item, now)
        if not item.enable_failed:
            raise bad_request("JobActionNotAllowed", f"Protection of '{name}' did not fail; nothing to restart.")
        item.enable_failed = False
        machine = self.machines[item.machine_name]
        return self._start_enable_job(item, machine, name, now)

    def _machine_from_discovery_id(self, discovery_id: str) -> Machine:
        prefix = f"{self.vault.physical_site_id()}/machines/".lower()
        name = discovery_id[len(prefix) :] if discovery_id.lower().startswith(prefix) else ""
        machine = self.machines.get(name)
        if machine is None or not machine.discovered or "/" in name:
            raise bad_request(
                "InvalidFabricDiscoveryMachineId",
                f"properties.providerSpecificDetails.fabricDiscoveryMachineId '{discovery_id}' is not a machine "
                f"the appliance discovered: expected '{self.vault.physical_site_id()}/machines/{{machine}}'.",
            )
        return machine

    @staticmethod
    def _check_disk_inputs(details: dict[str, Any]) -> None:
        """logStorageAccountId (the cache storage account) must name a storage account."""
        disks = [("disksDefault", details.get("disksDefault"))] + [
            (f"disksToInclude[{i}]", d) for i, d in enumerate(details.get("disksToInclude") or [])
        ]
        for where, disk in disks:
            if not isinstance(disk, dict):
                continue
            account = str(disk.get("logStorageAccountId") or "")
            if not account:
                raise bad_request(
                    "MissingRequiredParameter",
                    f"The parameter 'properties.providerSpecificDetails.{where}.logStorageAccountId' is required.",
                )
            if "/providers/microsoft.storage/storageaccounts/" not in account.lower():
                raise bad_request(
                    "InvalidParameter",
                    f"properties.providerSpecificDetails.{where}.logStorageAccountId '{account}' is not a "
                    "storage account id.",
                )

    def _machine_from_id(self, protectable_item_id: str) -> Machine:
        prefix = f"{self.vault.container_id()}/replicationProtectableItems/".lower()
        if not protectable_item_id.lower().startswith(prefix):
            raise bad_request(
                "ProtectableItemNotFound",
                f"'{protectable_item_id}' is not a protectable item of the container '{arm.CONTAINER_NAME}'.",
            )
        name = protectable_item_id[len(prefix) :]
        machine = self.machines.get(name)
        if machine is None:
            raise bad_request("ProtectableItemNotFound", f"The protectable item '{name}' was not discovered.")
        return machine

    def _selected_disks(self, machine: Machine, details: dict[str, Any]) -> tuple[str, ...]:
        chosen = details.get("disksToInclude")
        if chosen:
            ids = tuple(str(d.get("diskId", "")) for d in chosen)
            unknown = [d for d in ids if d not in machine.disk_ids]
            if unknown:
                raise bad_request("InvalidDiskSelection", f"Unknown disk ids for '{machine.friendly_name}': {unknown}.")
            if machine.disk_ids[0] not in ids:
                raise bad_request("InvalidDiskSelection", "The OS disk must be replicated.")
            return ids
        if not details.get("disksDefault"):
            raise bad_request("MissingRequiredParameter", "Either disksToInclude or disksDefault is required.")
        return machine.disk_ids

    def update(self, name: str, body: dict[str, Any], now: datetime) -> Job:
        self.settle(now)
        item = self.item(name)
        self._require_idle(item, now)
        status = self.status(item, now)
        if item.removal != "None" or item.enable_failed or item.failover != "None":
            raise bad_request(
                "OperationNotAllowedInCurrentState",
                f"The replicated item '{name}' cannot be updated in protection state '{status.protection_state}'.",
            )
        props = _props(body)
        changes: dict[str, Any] = {}
        if "providerSpecificDetails" in props:
            details = _provider_details(props, "providerSpecificDetails")
            changes = {k: v for k, v in details.items() if k != "instanceType" and v is not None}
        for generic, specific in (("recoveryAzureVMName", "targetVmName"), ("recoveryAzureVMSize", "targetVmSize")):
            if props.get(generic):
                changes[specific] = props[generic]
        return self._item_job("UpdateVmProperties", item, now, {"changes": changes})

    def test_failover(self, name: str, body: dict[str, Any], now: datetime) -> Job:
        self.settle(now)
        item = self.item(name)
        self._require(item, OP_TEST_FAILOVER, now)
        props = _props(body)
        _require_direction(props)
        details = _provider_details(props, "providerSpecificDetails")
        if not (details.get("networkId") or props.get("networkId") or item.settings.get("testNetworkId")):
            raise bad_request("MissingRequiredParameter", "A test network is required (networkId).")
        item.test_failover = "InProgress"
        return self._item_job("TestFailover", item, now, body)

    def test_failover_cleanup(self, name: str, body: dict[str, Any], now: datetime) -> Job:
        self.settle(now)
        item = self.item(name)
        self._require(item, OP_CLEANUP, now)
        previous = item.test_failover
        item.test_failover = "Cleaning"
        return self._item_job("TestFailoverCleanup", item, now, {**body, "previous_stage": previous})

    def unplanned_failover(self, name: str, body: dict[str, Any], now: datetime, *, restart: bool = False) -> Job:
        """``restart``: the re-run of a failed failover job (replicationJobs/restart), counted as a restart, not
        as a failover request (Stats.failover_restarts)."""
        self.settle(now)
        if not restart:
            self.recorder.failover_requested(name)
        item = self.item(name)
        self._require(item, OP_FAILOVER, now)
        _validate_failover_input(_props(body))
        item.failover = "InProgress"
        job = self._item_job("UnplannedFailover", item, now, body)
        self.recorder.failover_started(name)
        return job

    def commit(self, name: str, now: datetime) -> Job:
        self.settle(now)
        item = self.item(name)
        self._require(item, OP_COMMIT, now)
        item.failover = "Committing"
        self.recorder.commit_started(name)
        return self._item_job("Commit", item, now, {})

    def remove(self, name: str, body: dict[str, Any], now: datetime) -> Job:
        self.settle(now)
        item = self.item(name)
        props = _props(body)
        reason = props.get("disableProtectionReason") or "NotSpecified"
        if reason not in ("NotSpecified", "MigrationComplete"):
            raise bad_request("InvalidParameter", f"disableProtectionReason '{reason}' is not valid.")
        self._require(item, OP_COMPLETE_MIGRATION if reason == "MigrationComplete" else OP_DISABLE, now)
        item.removal = "Disabling"
        return self._item_job("DisableDr", item, now, body)

    def purge(self, name: str, now: datetime) -> Job:
        self.settle(now)
        item = self.item(name)
        self._require_idle(item, now)
        item.removal = "Purging"
        return self._item_job("PurgeProtection", item, now, {})

    # ------------------------------------------------------------------ recovery plans

    def create_plan(self, name: str, body: dict[str, Any], now: datetime) -> Job:
        self.settle(now)
        if name in self.plans:
            raise conflict("RecoveryPlanAlreadyExists", f"The recovery plan '{name}' already exists.")
        props = _props(body)
        if _required_str(props, "primaryFabricId").lower() != self.vault.fabric_id().lower():
            raise bad_request("InvalidFabric", "primaryFabricId must be this vault's replication fabric.")
        if _required_str(props, "recoveryFabricId") != arm.AZURE_FABRIC:
            raise bad_request("InvalidFabric", f"recoveryFabricId must be '{arm.AZURE_FABRIC}' for InMageRcm.")
        groups = props.get("groups")
        if not isinstance(groups, list) or not groups:
            raise bad_request("MissingRequiredParameter", "groups is required.")
        prefix = f"{self.vault.container_id()}/replicationProtectedItems/".lower()
        parsed: list[tuple[str, list[str]]] = [("Shutdown", []), ("Failover", [])]
        seen: set[str] = set()
        for group in groups:
            if not isinstance(group, dict):
                raise bad_request("InvalidRequestContent", "every element of groups must be an object.")
            members = []
            for member in group.get("replicationProtectedItems") or []:
                member_id = str(member.get("id", ""))
                if not member_id.lower().startswith(prefix) or member_id[len(prefix) :] not in self.items:
                    raise bad_request("ProtectedItemNotFound", f"'{member_id}' is not a replicated item of this vault.")
                item_name = member_id[len(prefix) :]
                if item_name in seen:
                    raise bad_request("DuplicateProtectedItem", f"'{item_name}' appears twice in the plan.")
                seen.add(item_name)
                members.append(item_name)
            parsed.append((str(group.get("groupType", "Boot")), members))
        if len(seen) > MAX_RECOVERY_PLAN_ITEMS:
            raise bad_request(
                "RecoveryPlanItemLimitExceeded",
                f"A recovery plan can hold at most {MAX_RECOVERY_PLAN_ITEMS} replicated items; got {len(seen)}.",
            )
        # Visible at once (creation is a short bookkeeping job); a failed creation removes it again.
        plan = RecoveryPlan(name=name, friendly_name=name, created_at=now, groups=parsed, ready=True)
        self.plans[name] = plan
        return self._plan_job("CreateRecoveryPlan", plan, now, {}, ())

    def delete_plan(self, name: str, now: datetime) -> Job:
        self.settle(now)
        plan = self.plan(name)
        self._require_plan_idle(plan, now)
        plan.deleting = True
        return self._plan_job("DeleteRecoveryPlan", plan, now, {}, ())

    def plan_allowed_operations(self, plan: RecoveryPlan, now: datetime) -> list[str]:
        job = self.jobs.get(plan.active_job) if plan.active_job else None
        members = [self.items[m] for m in plan.members if m in self.items]
        if job_in_flight(job, now) or plan.deleting or not members:
            return []
        allowed_sets = [set(self.status(item, now).allowed_operations) for item in members]
        common = set.intersection(*allowed_sets)
        return [op for op in ("UnplannedFailover", "TestFailover", "TestFailoverCleanup", "Commit") if op in common]

    def _require_plan_idle(self, plan: RecoveryPlan, now: datetime) -> None:
        job = self.jobs.get(plan.active_job) if plan.active_job else None
        if job is not None and job_in_flight(job, now):
            raise conflict(
                "RecoveryPlanOperationInProgress",
                f"Another operation ({job.scenario.friendly_name}, job {job.name}) is in progress on the "
                f"recovery plan '{plan.name}'.",
            )

    def _plan_members_allow(self, plan: RecoveryPlan, op: Operation, now: datetime) -> list[ProtectedItem]:
        self._require_plan_idle(plan, now)
        members, refusals = [], []
        for name in plan.members:
            item = self.items.get(name)
            if item is None:
                refusals.append(f"{name}: no longer replicated")
                continue
            try:
                self._require(item, op, now)
            except ArmError as exc:
                refusals.append(f"{name}: {exc.message}")
                continue
            members.append(item)
        if refusals:
            raise bad_request(
                "RecoveryPlanOperationNotAllowed",
                f"The {op.words} of recovery plan '{plan.name}' is not allowed: " + " | ".join(refusals),
            )
        if not members:
            raise bad_request("RecoveryPlanEmpty", f"The recovery plan '{plan.name}' has no replicated items.")
        return members

    def plan_unplanned_failover(self, name: str, body: dict[str, Any], now: datetime) -> Job:
        self.settle(now)
        plan = self.plan(name)
        for member in plan.members:
            self.recorder.failover_requested(member)
        props = _props(body)
        _require_direction(props)
        if props.get("sourceSiteOperations") not in ("NotRequired", None):
            raise bad_request(
                "SourceShutdownNotSupported",
                "sourceSiteOperations must be NotRequired: automatic shutdown is not supported while migrating "
                "AWS virtual machines.",
            )
        for details in props.get("providerSpecificDetails") or []:
            if details.get("instanceType") != PROVIDER:
                raise bad_request("InvalidReplicationProvider", "providerSpecificDetails must be InMageRcm.")
        members = self._plan_members_allow(plan, OP_FAILOVER, now)
        job = self._plan_job("UnplannedFailover", plan, now, body, tuple(m.name for m in members))
        for item in members:
            item.failover = "InProgress"
            item.active_job = job.name
            item.jobs.append(job.name)
            self.recorder.failover_started(item.name)
        return job

    def plan_commit(self, name: str, now: datetime) -> Job:
        self.settle(now)
        plan = self.plan(name)
        members = self._plan_members_allow(plan, OP_COMMIT, now)
        job = self._plan_job("Commit", plan, now, {}, tuple(m.name for m in members))
        for item in members:
            item.failover = "Committing"
            item.active_job = job.name
            item.jobs.append(job.name)
            self.recorder.commit_started(item.name)
        return job

    def _plan_job(
        self, scenario: str, plan: RecoveryPlan, now: datetime, request: dict[str, Any], members: tuple[str, ...]
    ) -> Job:
        job = self._start_job(
            scenario,
            now=now,
            target_kind="RecoveryPlan",
            target_name=plan.name,
            friendly_name=plan.friendly_name,
            internal_id=stable_uuid(self.seed, "plan", plan.name),
            machine_name=None,
            request=request,
            members=members,
        )
        plan.active_job = job.name
        return job

    def machine_of_job(self, name: str) -> str | None:
        job = self.jobs.get(name)
        if job is None or job.target_kind != "ProtectionEntity":
            return None
        return self.item_machine.get(job.target_name)


# ---------------------------------------------------------------------- input helpers


def _props(body: dict[str, Any]) -> dict[str, Any]:
    props = body.get("properties") if isinstance(body, dict) else None
    if props is None:
        return {}
    if not isinstance(props, dict):
        raise bad_request("InvalidRequestContent", "properties must be an object.")
    return props


def _required_str(source: dict[str, Any], key: str) -> str:
    value = source.get(key)
    if not isinstance(value, str) or not value:
        raise bad_request("MissingRequiredParameter", f"The parameter '{key}' is required.")
    return value


def _provider_details(props: dict[str, Any], key: str) -> dict[str, Any]:
    details = props.get(key)
    if not isinstance(details, dict):
        raise bad_request("MissingRequiredParameter", f"The parameter '{key}' is required.")
    if details.get("instanceType") != PROVIDER:
        raise bad_request(
            "InvalidReplicationProvider",
            f"The replication provider '{details.get('instanceType')}' is not supported by this vault; "
            f"use '{PROVIDER}'.",
        )
    return details


def _require_direction(props: dict[str, Any]) -> None:
    direction = props.get("failoverDirection", "PrimaryToRecovery")
    if direction != "PrimaryToRecovery":
        raise bad_request("InvalidFailoverDirection", f"failoverDirection '{direction}' is not valid here.")


def _validate_failover_input(props: dict[str, Any]) -> None:
    _require_direction(props)
    details = _provider_details(props, "providerSpecificDetails")
    shutdown = details.get("performShutdown")
    if not isinstance(shutdown, str):
        raise bad_request(
            "MissingRequiredParameter", "performShutdown is required and must be the string 'true' or 'false'."
        )
    if shutdown.lower() != "false":
        raise bad_request(
            "SourceShutdownNotSupported",
            "Automatic shutdown is not supported while migrating AWS virtual machines; stop the source machine "
            "and set performShutdown to 'false'.",
        )


def _settings_from(details: dict[str, Any], machine: Machine) -> dict[str, Any]:
    keys = (
        "targetResourceGroupId", "targetNetworkId", "testNetworkId", "targetSubnetName", "testSubnetName",
        "targetVmName", "targetVmSize", "licenseType", "targetAvailabilityZone", "targetAvailabilitySetId",
        "targetBootDiagnosticsStorageAccountId", "sqlServerLicenseType", "linuxLicenseType", "multiVmGroupName",
        "runAsAccountId", "targetVmTags", "targetManagedDiskTags", "targetNicTags", "seedManagedDiskTags",
        "userSelectedOSName",
    )  # fmt: skip
    settings = {k: details[k] for k in keys if details.get(k) is not None}
    settings.setdefault("targetVmName", machine.friendly_name)
    settings.setdefault("licenseType", "NoLicenseType")
    default_disks = details.get("disksDefault") or {}
    settings["diskType"] = default_disks.get("diskType", "Standard_LRS")
    settings["logStorageAccountId"] = default_disks.get("logStorageAccountId", "")
    return settings
