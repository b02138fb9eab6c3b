"""The ASR adapter against the project's ASR simulator, through the real SDK over HTTPS.

One simulator per module; each test seeds its own machines (own IPs) and drives them with the
shared virtual clock. Faults are set per test and cleared after it.
"""

from __future__ import annotations

import gc
import itertools
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from azure.core.exceptions import HttpResponseError
from azure.mgmt.recoveryservicessiterecovery import SiteRecoveryManagementClient

from devstack.app_env import function_app_environment
from devstack.asr_sim.contract import AsrErrorSpec, FaultRule, JobEnd
from devstack.asr_sim.control import SimulatorControl
from devstack.clock import FileClock
from devstack.launcher import Stack
from functions.adapters.asr import (
    SDK_RETRY_SETTINGS,
    AzureSiteRecoveryGateway,
    build_asr_credential,
    build_site_recovery_client,
)
from functions.adapters.offazure import OffAzureClient, build_offazure_client
from functions.settings import FunctionSettings
from migration.errors import (
    AwaitingDiscovery,
    AwaitingOperation,
    InvalidInput,
    NotFound,
    PreconditionFailed,
    ThrottledError,
    TransientCloudError,
)
from migration.ports import AsrJob, DiscoveredMachine, ReplicationPlan

pytestmark = pytest.mark.integration

DAY = 86_400.0
_ip_numbers = itertools.count(10)


@dataclass
class Sim:
    control: SimulatorControl
    clock: FileClock
    settings: FunctionSettings
    clients: list[SiteRecoveryManagementClient] = field(default_factory=list)
    offazure: list[OffAzureClient] = field(default_factory=list)
    gateway: AzureSiteRecoveryGateway = field(init=False)

    def __post_init__(self) -> None:
        self.gateway = self.new_gateway()

    def new_gateway(self, settings: FunctionSettings | None = None, **overrides: Any) -> AzureSiteRecoveryGateway:
        """A fresh worker: nothing resolved or cached yet."""
        settings = settings or self.settings
        credential = build_asr_credential(settings)
        client = build_site_recovery_client(settings, credential)
        offazure = build_offazure_client(
            credential, base_url=settings.asr_base_url, ca_bundle=settings.asr_ca_bundle,
            retry_settings=dict(SDK_RETRY_SETTINGS),
        )  # fmt: skip
        self.clients.append(client)
        self.offazure.append(offazure)
        return AzureSiteRecoveryGateway.from_settings(client, settings, offazure=offazure, **overrides)

    def seed(self, os_name: str = "Ubuntu 22.04", *, disks: tuple[int, ...] = (64,)) -> str:
        """A discovered Linux machine with its own IP; returns the IP."""
        ip = f"10.20.{next(_ip_numbers)}.5"
        self.control.seed_machine(ip, "Linux", os_name, list(disks), churn_mb_per_day=2_000)
        return ip

    def finish(self, job_id: str, *, step_seconds: float = 600, limit: int = 50) -> AsrJob:
        """Advance virtual time until the job ends; never a real sleep."""
        for _ in range(limit):
            job = self.gateway.get_job(job_id)
            if job.finished:
                return job
            self.clock.advance_by(step_seconds)
        raise AssertionError(f"job {job_id} did not finish in {limit * step_seconds:.0f} virtual seconds")

    def succeed(self, job_id: str) -> None:
        job = self.finish(job_id)
        assert job.state == "Succeeded", job

    def protected(self, ip: str) -> DiscoveredMachine:
        """Discover, enable, and replicate a machine until ASR offers failover."""
        machine = self.gateway.find_machine_by_ip(ip)
        self.succeed(self.gateway.begin_enable_replication(machine, plan_for(machine)))
        for _ in range(30):
            if "UnplannedFailover" in self.gateway.get_replication_state(machine.name).allowed_operations:
                return machine
            self.clock.advance_by(DAY / 4)
        raise AssertionError(f"{machine.name} never became protected")


def plan_for(machine: DiscoveredMachine) -> ReplicationPlan:
    return ReplicationPlan(target_vm_name=f"vm-{machine.friendly_name}", target_subnet="workloads", tags={"wave": "w1"})


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sim]:
    stack = Stack(tmp_path_factory.mktemp("asr-stack"))
    endpoints = stack.up(["asr"], quiet=True)
    try:
        assert endpoints.asr is not None
        env = function_app_environment(endpoints) | {"STATE_STORAGE": "UseDevelopmentStorage=true"}
        settings = FunctionSettings.from_environment(env)
        with SimulatorControl.from_endpoint(endpoints.asr) as control:
            sim = Sim(control=control, clock=FileClock(Path(endpoints.clock_file)), settings=settings)
            try:
                yield sim
            finally:
                # An open connection holds the server's graceful shutdown (10 s). Responses kept by
                # collected exceptions keep their sockets until the garbage collector frees them.
                gc.collect()
                for client in sim.clients:
                    client.close()
                for discovery in sim.offazure:
                    discovery.close()
    finally:
        stack.down(quiet=True)


@pytest.fixture(autouse=True)
def fresh_counters(sim: Sim) -> Iterator[None]:
    """Counters, request log and faults start empty in every test (machines and items stay)."""
    sim.control.reset()
    yield
    sim.control.clear_faults()


# ---- the whole path ----------------------------------------------------------------------------


def test_full_migration_path(sim: Sim) -> None:
    gateway = sim.gateway
    ip = sim.seed("Ubuntu 22.04.3 LTS", disks=(64, 128))

    machine = gateway.find_machine_by_ip(ip)
    assert machine.ip_addresses == (ip,)
    assert machine.os_type == "Linux"
    assert len(machine.disk_ids) == 2
    gateway.ensure_os_supported(machine)

    enable_job = gateway.begin_enable_replication(machine, plan_for(machine))
    assert gateway.get_job(enable_job).state in ("NotStarted", "InProgress")
    sim.succeed(enable_job)

    state = gateway.get_replication_state(machine.name)
    assert state.protection_state == "InitialReplicationInProgress"
    assert state.allowed_operations == frozenset({"DisableProtection"})
    assert state.progress_percent is not None
    assert state.progress_percent < 100
    sim.clock.advance_by(3 * DAY)
    state = gateway.get_replication_state(machine.name)
    assert state.protection_state == "Protected"
    assert state.progress_percent == 100
    assert state.replication_health == "Normal"
    assert state.rpo_seconds is not None
    assert state.last_recovery_point is not None
    assert {"TestFailover", "UnplannedFailover"} <= state.allowed_operations

    sim.succeed(gateway.begin_test_failover(machine.name))
    assert gateway.get_replication_state(machine.name).allowed_operations == frozenset({"TestFailoverCleanup"})
    sim.succeed(gateway.begin_test_failover_cleanup(machine.name))
    assert "UnplannedFailover" in gateway.get_replication_state(machine.name).allowed_operations

    failover_job = gateway.begin_unplanned_failover(machine.name)
    sim.succeed(failover_job)
    state = gateway.get_replication_state(machine.name)
    assert state.active_location == "Recovery"
    assert state.allowed_operations == frozenset({"CompleteMigration", "Commit", "DisableProtection", "ChangePit"})

    sim.succeed(gateway.begin_commit(machine.name))
    sim.succeed(gateway.begin_complete_migration(machine.name))
    with pytest.raises(NotFound):
        gateway.get_replication_state(machine.name)

    stats = sim.control.stats()
    assert stats.failover_requests[machine.name] == 1
    assert stats.failovers_started[machine.name] == 1


def test_enable_replication_is_idempotent(sim: Sim) -> None:
    machine = sim.gateway.find_machine_by_ip(sim.seed())

    first = sim.gateway.begin_enable_replication(machine, plan_for(machine))
    again_while_running = sim.gateway.begin_enable_replication(machine, plan_for(machine))
    sim.succeed(first)
    again_after = sim.new_gateway().begin_enable_replication(machine, plan_for(machine))

    assert again_while_running == first
    assert again_after == first
    assert sim.control.stats().per_operation.get("ReplicationProtectedItems_Create") == 1


def test_a_fresh_worker_resolves_the_vault_once(sim: Sim) -> None:
    gateway = sim.new_gateway()
    ip = sim.seed()
    sim.control.reset()

    gateway.find_machine_by_ip(ip)
    gateway.find_machine_by_ip(ip)

    per_operation = sim.control.stats().per_operation
    assert per_operation["ReplicationFabrics_List"] == 1
    assert per_operation["ReplicationProtectionContainers_ListByReplicationFabrics"] == 1
    assert per_operation["ReplicationPolicies_Get"] == 1
    # Discovery reads the appliance's OffAzure site, never ASR's protectable items (finding 1).
    assert per_operation["ServersController_ListByServerSiteResource"] == 2
    assert "ReplicationProtectableItems_ListByReplicationProtectionContainers" not in per_operation


# ---- discovery and OS --------------------------------------------------------------------------


def test_unknown_ip_is_awaiting_discovery(sim: Sim) -> None:
    with pytest.raises(AwaitingDiscovery) as caught:
        sim.gateway.find_machine_by_ip("192.0.2.99")
    assert caught.value.code == "AwaitingDiscovery"
    assert "192.0.2.99" in str(caught.value)


def test_unsupported_os_is_refused_by_the_api_list(sim: Sim) -> None:
    machine = sim.gateway.find_machine_by_ip(sim.seed("Amazon Linux 2023"))

    with pytest.raises(PreconditionFailed) as caught:
        sim.gateway.ensure_os_supported(machine)

    assert caught.value.code == "UnsupportedOperatingSystem"
    assert "Ubuntu" in str(caught.value)  # names what ASR does support
    assert sim.control.stats().per_operation.get("SupportedOperatingSystems_Get", 0) <= 1


def test_machine_the_simulator_marks_unsupported_fails_its_enable_job_with_asrs_error(sim: Sim) -> None:
    """The appliance reports only the OS it sees; ASR's own prerequisite check fails the EnableDr job."""
    ip = sim.seed("Ubuntu 22.04")
    sim.control.set_faults(machines={ip: FaultRule(unsupported_os=True)})
    machine = sim.gateway.find_machine_by_ip(ip)
    sim.gateway.ensure_os_supported(machine)  # the name is on ASR's list

    job = sim.finish(sim.gateway.begin_enable_replication(machine, plan_for(machine)))

    assert job.state == "Failed"
    assert any("78180" in e for e in job.errors)


# ---- preconditions -----------------------------------------------------------------------------


def test_operations_ask_allowed_operations_first(sim: Sim) -> None:
    machine = sim.gateway.find_machine_by_ip(sim.seed())
    enable_job = sim.gateway.begin_enable_replication(machine, plan_for(machine))

    # Another job in flight on the item is a wait (transient, retried after it), not a refusal.
    with pytest.raises(AwaitingOperation) as busy:
        sim.gateway.begin_test_failover(machine.name)
    assert busy.value.code == "OperationInProgress"

    sim.succeed(enable_job)
    sim.control.reset()
    refusals = {
        "TestFailover": sim.gateway.begin_test_failover,
        "TestFailoverCleanup": sim.gateway.begin_test_failover_cleanup,
        "UnplannedFailover": sim.gateway.begin_unplanned_failover,
        "Commit": sim.gateway.begin_commit,
        "CompleteMigration": sim.gateway.begin_complete_migration,
    }
    for operation, call in refusals.items():
        with pytest.raises(PreconditionFailed) as caught:
            call(machine.name)
        message = str(caught.value)
        if operation == "CompleteMigration":  # neither CompleteMigration nor a post-failover DisableProtection
            assert caught.value.code == "CompleteMigrationNotOffered"
            continue
        assert caught.value.code == "OperationNotAllowed"
        assert operation in message
        assert machine.name in message
        assert "DisableProtection" in message  # the allowed list
    # Refused here: not one write reached ASR.
    assert sim.control.stats().writes == 0


def test_unknown_item_is_not_found(sim: Sim) -> None:
    with pytest.raises(NotFound):
        sim.gateway.begin_commit("no-such-item")


def test_disable_replication_before_failover(sim: Sim) -> None:
    machine = sim.gateway.find_machine_by_ip(sim.seed())
    sim.succeed(sim.gateway.begin_enable_replication(machine, plan_for(machine)))

    sim.succeed(sim.gateway.begin_disable_replication(machine.name))

    with pytest.raises(NotFound):
        sim.gateway.get_replication_state(machine.name)


# ---- failover never twice ----------------------------------------------------------------------


def test_a_second_failover_is_never_requested(sim: Sim) -> None:
    machine = sim.protected(sim.seed())

    first = sim.gateway.begin_unplanned_failover(machine.name)
    # Asked again while ASR fails over: the running job, not a second request.
    assert sim.new_gateway().begin_unplanned_failover(machine.name) == first
    sim.succeed(first)
    for gateway in (sim.gateway, sim.new_gateway()):
        with pytest.raises(PreconditionFailed) as caught:
            gateway.begin_unplanned_failover(machine.name)
        assert caught.value.code == "AlreadyFailedOver"
    sim.succeed(sim.gateway.begin_commit(machine.name))
    with pytest.raises(PreconditionFailed) as after_commit:
        sim.gateway.begin_unplanned_failover(machine.name)
    assert after_commit.value.code == "AlreadyFailedOver"

    stats = sim.control.stats()
    assert stats.failover_requests[machine.name] == 1
    assert stats.failovers_started[machine.name] == 1


# ---- faults as the SDK sees them ---------------------------------------------------------------


def test_429_is_throttled_with_retry_after_and_not_retried_by_the_sdk(sim: Sim) -> None:
    ip = sim.seed()
    sim.gateway.find_machine_by_ip(ip)  # topology resolved before the fault
    sim.control.reset()
    sim.control.set_faults(run=FaultRule(throttle_rate=1.0, throttle_retry_after_seconds=7))

    with pytest.raises(ThrottledError) as caught:
        sim.gateway.find_machine_by_ip(ip)

    assert caught.value.retry_after_seconds == 7
    stats = sim.control.stats()
    assert stats.throttled_429 == 1
    assert stats.total_requests == 1


@pytest.mark.parametrize("status", [500, 503])
def test_5xx_is_transient_and_not_retried_by_the_sdk(sim: Sim, status: int) -> None:
    machine = sim.protected(sim.seed())
    sim.control.reset()
    sim.control.set_faults(run=FaultRule(server_error_rate=1.0, server_error_statuses=(status,), scope="writes"))

    with pytest.raises(TransientCloudError) as caught:
        sim.gateway.begin_test_failover(machine.name)

    assert not isinstance(caught.value, ThrottledError)
    stats = sim.control.stats()
    assert stats.server_errors_5xx == 1
    assert stats.writes == 1  # the POST was sent once: no hidden SDK retry


def test_unreachable_asr_is_transient(sim: Sim) -> None:
    gateway = sim.new_gateway(sim.settings.model_copy(update={"asr_base_url": "https://127.0.0.1:9"}))

    with pytest.raises(TransientCloudError):
        gateway.find_machine_by_ip("10.0.0.1")


def test_failed_job_reports_the_asr_error(sim: Sim) -> None:
    ip = sim.seed()
    error = AsrErrorSpec(code="28031", message="The appliance could not reach the source.")
    sim.control.set_faults(
        machines={ip: FaultRule(job_failure_rate=1.0, job_failure_scenarios=("EnableDr",), job_failure_error=error)}
    )
    machine = sim.gateway.find_machine_by_ip(ip)

    job = sim.finish(sim.gateway.begin_enable_replication(machine, plan_for(machine)))

    assert job.state == "Failed"
    assert "28031: The appliance could not reach the source." in job.errors


def test_a_failed_job_is_restarted_only_while_asr_offers_restart(sim: Sim) -> None:
    machine = sim.protected(sim.seed())
    sim.control.set_faults(
        machines={machine.name: FaultRule(job_failure_rate=1.0, job_failure_scenarios=("UnplannedFailover",))}
    )
    failed = sim.finish(sim.gateway.begin_unplanned_failover(machine.name))
    assert (failed.state, failed.restartable) == ("Failed", True)  # allowedActions: ["Restart"]
    sim.control.clear_faults()

    rerun = sim.gateway.restart_job(failed.job_id, machine.name)
    assert rerun != failed.job_id
    # Asked again (a rerun whose answer was lost): the same re-run, no second restart.
    assert sim.new_gateway().restart_job(failed.job_id, machine.name) == rerun
    assert not sim.gateway.get_job(failed.job_id).restartable
    sim.succeed(rerun)
    with pytest.raises(PreconditionFailed) as refused:
        sim.gateway.restart_job(rerun, machine.name)  # it succeeded: nothing to restart
    assert refused.value.code == "JobNotRestartable"

    stats = sim.control.stats()
    assert stats.failover_requests[machine.name] == 1  # one failover request; the re-run is ASR's
    assert stats.failover_restarts[machine.name] == 1
    assert stats.job_restarts == {"UnplannedFailover": 1}


def test_the_simulator_refuses_a_restart_out_of_turn_in_arms_shape(sim: Sim) -> None:
    machine = sim.gateway.find_machine_by_ip(sim.seed())
    enable = sim.gateway.begin_enable_replication(machine, plan_for(machine))
    client = sim.clients[-1]
    with pytest.raises(HttpResponseError) as caught:  # a running job offers Cancel, not Restart
        client.replication_jobs.begin_restart(
            sim.settings.asr_resource_group, sim.settings.asr_vault_name, enable, polling=False
        )
    assert caught.value.status_code == 400
    assert caught.value.error is not None
    assert caught.value.error.code == "JobActionNotAllowed"
    sim.succeed(enable)


def test_a_failover_whose_202_was_lost_to_a_5xx_is_found_in_asrs_state(sim: Sim) -> None:
    machine = sim.protected(sim.seed())
    sim.control.set_faults(
        run=FaultRule(
            server_error_rate=1.0, server_errors_after_effect=True, scope="writes", server_error_statuses=(503,)
        )
    )
    with pytest.raises(TransientCloudError):
        sim.gateway.begin_unplanned_failover(machine.name)  # ASR accepted it; the answer was a 503
    sim.control.clear_faults()

    found = sim.gateway.find_item_job(machine.name, frozenset({"unplannedfailover"}))
    assert found is not None
    assert sim.gateway.begin_unplanned_failover(machine.name) == found  # the running job, not a second request
    sim.succeed(found)
    assert sim.gateway.find_item_job(machine.name, frozenset({"unplannedfailover"})) == found  # by the job list
    assert sim.control.stats().failover_requests[machine.name] == 1


def test_a_commit_asked_again_after_it_went_through_returns_its_job(sim: Sim) -> None:
    machine = sim.protected(sim.seed())
    sim.succeed(sim.gateway.begin_unplanned_failover(machine.name))
    commit = sim.gateway.begin_commit(machine.name)
    assert sim.new_gateway().begin_commit(machine.name) == commit  # running: its job
    sim.succeed(commit)
    assert sim.new_gateway().begin_commit(machine.name) == commit  # done: the job that did it
    assert sim.control.stats().per_operation.get("ReplicationProtectedItems_FailoverCommit") == 1


def test_stalled_replication_shows_in_health(sim: Sim) -> None:
    ip = sim.seed(disks=(512,))
    machine = sim.gateway.find_machine_by_ip(ip)
    sim.succeed(sim.gateway.begin_enable_replication(machine, plan_for(machine)))
    sim.control.set_faults(machines={ip: FaultRule(stalled=True)})
    sim.clock.advance_by(DAY / 2)

    state = sim.gateway.get_replication_state(machine.name)

    assert state.replication_health == "Critical"
    assert "InitialReplicationProgress: NoProgress" in state.health_errors
    assert any(error.startswith("78161") for error in state.health_errors)


# ---- recovery plans (waves) --------------------------------------------------------------------


def test_recovery_plan_fails_over_and_commits_its_members_once(sim: Sim) -> None:
    members = [sim.protected(sim.seed()), sim.protected(sim.seed())]
    names = [m.name for m in members]

    created = sim.gateway.create_recovery_plan("wave-w1-1", names)
    assert created
    assert sim.gateway.create_recovery_plan("wave-w1-1", names) == created
    with pytest.raises(TransientCloudError) as creating:
        sim.gateway.begin_recovery_plan_failover("wave-w1-1")  # ASR is still creating it
    assert getattr(creating.value, "code", None) == "RecoveryPlanBeingCreated"
    assert sim.control.stats().failover_requests.get(names[0], 0) == 0  # nothing sent before creation ended
    sim.succeed(created)

    failover = sim.gateway.begin_recovery_plan_failover("wave-w1-1")
    assert sim.gateway.begin_recovery_plan_failover("wave-w1-1") == failover
    sim.succeed(failover)
    with pytest.raises(PreconditionFailed) as again:
        sim.gateway.begin_recovery_plan_failover("wave-w1-1")
    assert again.value.code == "AlreadyFailedOver"
    sim.succeed(sim.gateway.begin_recovery_plan_commit("wave-w1-1"))

    for name in names:
        assert "CompleteMigration" in sim.gateway.get_replication_state(name).allowed_operations
        assert sim.control.stats().failovers_started[name] == 1


def test_recovery_plan_limits(sim: Sim) -> None:
    with pytest.raises(InvalidInput):
        sim.gateway.create_recovery_plan("too-big", [f"item-{i}" for i in range(101)])
    with pytest.raises(InvalidInput):
        sim.gateway.create_recovery_plan("empty", [])
    with pytest.raises(NotFound):
        sim.gateway.begin_recovery_plan_failover("no-such-plan")


# ---- the review's findings (issue 13) -------------------------------------------------------------


def _raw_enable(sim: Sim, name: str, provider: dict[str, Any], **props: Any) -> Any:
    """An enable request as an older aws2azure sent it, through the SDK; returns the HttpResponseError."""
    client = build_site_recovery_client(sim.settings, build_asr_credential(sim.settings))
    sim.clients.append(client)
    infra = sim.control.infrastructure()
    body = {"properties": {"policyId": infra.policy_id, **props, "providerSpecificDetails": provider}}
    with pytest.raises(HttpResponseError) as caught:
        client.replication_protected_items.begin_create(
            sim.settings.asr_resource_group, sim.settings.asr_vault_name,
            infra.fabric_name, infra.protection_container_name, name, body, polling=False,
        )  # fmt: skip
    return caught.value


def _provider(sim: Sim, discovery_id: str, **extra: Any) -> dict[str, Any]:
    infra = sim.control.infrastructure()
    return {
        "instanceType": "InMageRcm",
        "fabricDiscoveryMachineId": discovery_id,
        "processServerId": infra.process_server_id,
        "targetResourceGroupId": sim.settings.target_resource_group_id,
        "targetNetworkId": sim.settings.target_network_id,
        **extra,
    }


def test_finding1_discovery_waits_for_the_agent_and_reads_offazure_with_paging(sim: Sim) -> None:
    ip = f"10.21.{next(_ip_numbers)}.5"
    sim.control.seed_machine(ip, "Linux", "Ubuntu 22.04", [32], agent_registered=False)
    with pytest.raises(AwaitingDiscovery):
        sim.gateway.find_machine_by_ip(ip)
    info = sim.control.agent_registered(ip)
    for _ in range(3):
        sim.seed()
    previous = sim.control.config()
    sim.control.configure(previous.model_copy(update={"page_size": 2}))
    try:
        sim.control.reset()
        machine = sim.gateway.find_machine_by_ip(ip)
        pages = sim.control.stats().per_operation["ServersController_ListByServerSiteResource"]
    finally:
        sim.control.configure(previous)
    assert machine.id == info.fabric_discovery_machine_id  # the OffAzure machine's ARM id
    assert "/providers/Microsoft.OffAzure/" in machine.id
    assert (machine.os_type, machine.os_name) == ("Linux", "Ubuntu 22.04")
    assert machine.disk_ids == info.disk_ids
    assert pages > 1  # followed nextLink


def test_finding1_a_protectable_item_id_as_discovery_id_is_refused(sim: Sim) -> None:
    name = sim.control.seed_machine(f"10.22.{next(_ip_numbers)}.5", "Linux", "Ubuntu 22.04", [32])
    infra = sim.control.infrastructure()
    protectable = f"{infra.protection_container_id}/replicationProtectableItems/{name}"
    cache = sim.settings.asr_cache_storage_account_id
    error = _raw_enable(
        sim,
        name,
        _provider(sim, protectable, disksDefault={"diskType": "Standard_LRS", "logStorageAccountId": cache}),
        protectableItemId=protectable,
    )
    assert error.status_code == 400
    assert error.error is not None
    assert error.error.code == "InvalidFabricDiscoveryMachineId"
    assert "fabricDiscoveryMachineId" in (error.error.message or "")


def test_finding2_the_old_enable_body_is_refused_naming_log_storage_account(sim: Sim) -> None:
    ip = sim.seed()
    machine = sim.gateway.find_machine_by_ip(ip)
    error = _raw_enable(sim, machine.name, _provider(sim, machine.id, disksDefault={"diskType": "Standard_LRS"}))
    assert error.status_code == 400
    assert error.error is not None
    assert error.error.code == "MissingRequiredParameter"
    assert "disksDefault.logStorageAccountId" in (error.error.message or "")


def test_finding2_cache_account_and_disk_type_reach_asr(sim: Sim) -> None:
    machine = sim.gateway.find_machine_by_ip(sim.seed())
    plan = plan_for(machine).model_copy(update={"disk_type": "Premium_LRS"})
    sim.succeed(sim.gateway.begin_enable_replication(machine, plan))
    details = _rcm_details(sim, machine.name)
    disks = details["protectedDisks"]
    assert {d["logStorageAccountId"].lower() for d in disks} == {sim.settings.asr_cache_storage_account_id.lower()}
    assert {d["diskType"] for d in disks} == {"Premium_LRS"}


def _rcm_details(sim: Sim, name: str) -> dict[str, Any]:
    infra = sim.control.infrastructure()
    client = sim.clients[0]
    item = client.replication_protected_items.get(
        sim.settings.asr_resource_group, sim.settings.asr_vault_name, infra.fabric_name,
        infra.protection_container_name, name,
    )  # fmt: skip
    assert item.properties is not None
    assert item.properties.provider_specific_details is not None
    return dict(item.properties.provider_specific_details.as_dict())


def test_finding3_push_install_sends_the_sites_run_as_account(sim: Sim) -> None:
    ip = sim.seed()
    pushing = sim.new_gateway(push_install=True)
    machine = pushing.find_machine_by_ip(ip)
    sim.succeed(pushing.begin_enable_replication(machine, plan_for(machine)))
    run_as = _rcm_details(sim, machine.name)["runAsAccountId"]
    assert run_as
    assert run_as in sim.control.infrastructure().run_as_account_ids
    assert run_as == machine.run_as_account_id  # from the OffAzure machine's properties.runAsAccountId
    # Without push install (the SSM path) no credentials are sent.
    other = sim.gateway.find_machine_by_ip(sim.seed())
    sim.succeed(sim.gateway.begin_enable_replication(other, plan_for(other)))
    assert not _rcm_details(sim, other.name).get("runAsAccountId")


def test_finding5_jobs_ending_other_or_suspended_are_decided_and_resumable(sim: Sim) -> None:
    sim.control.set_faults(
        suspend_scenarios=["EnableDr"],
        end_states={"UpdateVmProperties": JobEnd(state="Other", state_description="CompletedWithInformation")},
    )
    machine = sim.gateway.find_machine_by_ip(sim.seed())
    job_id = sim.gateway.begin_enable_replication(machine, plan_for(machine))
    sim.clock.advance_by(600)
    suspended = sim.gateway.get_job(job_id)
    assert (suspended.asr_state, suspended.state, suspended.verdict) == (
        "Suspended",
        "Suspended",
        "waiting_for_operator",
    )
    assert not suspended.finished
    resumed = sim.gateway.resume_job(job_id)
    assert resumed.verdict == "running"
    sim.succeed(job_id)
    with pytest.raises(PreconditionFailed):
        sim.gateway.resume_job(job_id)  # not suspended any more


def test_finding5_an_injected_other_ending_is_classified_succeeded(sim: Sim) -> None:
    sim.control.set_faults(end_states={"EnableDr": JobEnd(state="Other", state_description="CompletedWithInformation")})
    machine = sim.gateway.find_machine_by_ip(sim.seed())
    job = sim.finish(sim.gateway.begin_enable_replication(machine, plan_for(machine)))
    assert (job.asr_state, job.state_description) == ("Other", "CompletedWithInformation")
    assert job.state == "Succeeded"
    assert job.finished
    assert job.note


def test_finding5_an_injected_cancelled_ending_is_terminal_with_its_reason(sim: Sim) -> None:
    sim.control.set_faults(end_states={"EnableDr": JobEnd(state="Cancelled", state_description="Cancelled")})
    machine = sim.gateway.find_machine_by_ip(sim.seed())
    job = sim.finish(sim.gateway.begin_enable_replication(machine, plan_for(machine)))
    assert job.state == "Cancelled"
    assert job.finished
    assert any("cancelled" in e.lower() for e in job.errors)


def _seed_windows(sim: Sim) -> str:
    ip = f"10.23.{next(_ip_numbers)}.5"
    sim.control.seed_machine(ip, "Windows", "Windows Server 2022", [128])
    return ip


def test_finding7_windows_is_no_license_type_unless_hybrid_benefit_is_chosen(sim: Sim) -> None:
    windows = sim.gateway.find_machine_by_ip(_seed_windows(sim))
    sim.succeed(sim.gateway.begin_enable_replication(windows, plan_for(windows)))
    assert _rcm_details(sim, windows.name)["licenseType"] == "NoLicenseType"
    chosen = sim.gateway.find_machine_by_ip(_seed_windows(sim))
    plan = plan_for(chosen).model_copy(update={"hybrid_benefit": True})
    sim.succeed(sim.gateway.begin_enable_replication(chosen, plan))
    assert _rcm_details(sim, chosen.name)["licenseType"] == "WindowsServer"


def test_finding8_test_failover_into_the_production_network_is_refused_unless_allowed(sim: Sim) -> None:
    ip = sim.seed()
    no_test_network = sim.new_gateway(test_network_id=None)
    machine = sim.protected(ip)
    sim.control.reset()
    with pytest.raises(PreconditionFailed) as caught:
        no_test_network.begin_test_failover(machine.name)
    assert caught.value.code == "TestNetworkRequired"
    assert sim.control.stats().writes == 0
    allowed = sim.new_gateway(test_network_id=None, allow_test_failover_in_target_network=True)
    sim.succeed(allowed.begin_test_failover(machine.name))
