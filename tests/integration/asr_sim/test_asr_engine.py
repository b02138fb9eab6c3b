"""The simulated vault's rules, driven directly (no HTTP): state transitions, illegal operations,
replication spread, jobs, faults and determinism. Everything moves with a fake virtual clock."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest

from devstack.asr_sim.arm import Vault
from devstack.asr_sim.contract import AsrErrorSpec, FaultPlan, FaultRule, MachineSeed, SimConfig, Stats
from devstack.asr_sim.engine import Simulator
from devstack.asr_sim.errors import ArmError
from devstack.asr_sim.faults import FaultInjector
from devstack.asr_sim.oscatalog import is_supported
from devstack.asr_sim.replication import GIB, MIB, effective_rate_bytes_per_s
from devstack.asr_sim.status import OPS_COMMITTED, OPS_FAILED_OVER, OPS_PROTECTED
from tests.integration.asr_sim.support import FakeClock

VAULT = Vault("00000000-0000-0000-0000-000000000001", "aws2azure-rg", "aws2azure-vault")
DAY = 86_400.0


@dataclass
class World:
    sim: Simulator
    clock: FakeClock

    @property
    def now(self) -> Any:
        return self.clock.now()

    def seed(self, ip: str, disks: tuple[int, ...] = (10,), **kw: Any) -> str:
        kw.setdefault("upload_mb_per_s", 10.0)
        kw.setdefault("churn_mb_per_day", 0.0)
        os_name = kw.pop("os_name", "Ubuntu 22.04")
        return self.sim.seed_machine(MachineSeed(ip=ip, os_type="Linux", os_name=os_name, disks_gib=disks, **kw)).name

    def enable_body(self, machine: str, **details: Any) -> dict[str, Any]:
        infra = self.sim.infrastructure()
        provider = {
            "instanceType": "InMageRcm",
            "fabricDiscoveryMachineId": f"{infra.physical_site_id}/machines/{machine}",
            "processServerId": infra.process_server_id,
            "targetResourceGroupId": "/subscriptions/s/resourceGroups/target",
            "testNetworkId": "/subscriptions/s/resourceGroups/target/providers/Microsoft.Network/virtualNetworks/t",
            "disksDefault": {
                "logStorageAccountId": "/subscriptions/s/resourceGroups/target/providers/Microsoft.Storage"
                "/storageAccounts/c",
                "diskType": "Standard_LRS",
            },
            **details,
        }
        return {
            "properties": {
                "policyId": infra.policy_id,
                "providerSpecificDetails": provider,
            }
        }

    def enable(self, item: str, machine: str, **details: Any) -> str:
        return self.sim.enable(item, self.enable_body(machine, **details), self.now).name

    def advance(self, seconds: float) -> None:
        self.clock.advance(seconds)
        self.sim.settle(self.now)

    def finish(self, job: str) -> str:
        end = self.sim.job(job).end_time()
        assert end is not None, "job is suspended"
        self.advance(max(0.0, (end - self.now).total_seconds()) + 1)
        return self.sim.job(job).state_at(self.now)

    def state(self, item: str) -> str:
        return self.sim.status(self.sim.item(item), self.now).protection_state

    def allowed(self, item: str) -> list[str]:
        return self.sim.status(self.sim.item(item), self.now).allowed_operations

    def protect(self, item: str, machine: str) -> None:
        assert self.finish(self.enable(item, machine)) == "Succeeded"
        done = self.sim.item(item).replication.completed_at()  # type: ignore[union-attr]
        assert done is not None
        self.advance((done - self.now).total_seconds() + 1)
        assert self.state(item) == "Protected"

    def test_failover(self, item: str) -> str:
        body = {
            "properties": {
                "failoverDirection": "PrimaryToRecovery",
                "providerSpecificDetails": {"instanceType": "InMageRcm"},
            }
        }
        return self.sim.test_failover(item, body, self.now).name

    def failover(self, item: str, perform_shutdown: Any = "false") -> str:
        details = {"instanceType": "InMageRcm", "performShutdown": perform_shutdown}
        body = {"properties": {"failoverDirection": "PrimaryToRecovery", "providerSpecificDetails": details}}
        return self.sim.unplanned_failover(item, body, self.now).name

    def remove(self, item: str, reason: str = "MigrationComplete") -> str:
        return self.sim.remove(item, {"properties": {"disableProtectionReason": reason}}, self.now).name


@pytest.fixture
def world() -> World:
    return World(Simulator(VAULT, seed=7), FakeClock())


def refused(status: int, code: str) -> Any:
    """Context manager asserting an ArmError of this status and code."""

    class _Refused:
        def __enter__(self) -> None:
            return None

        def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> bool:
            assert isinstance(exc, ArmError), f"expected ArmError {status} {code}, got {exc!r}"
            assert (exc.status, exc.code) == (status, code), exc.message
            return True

    return _Refused()


# ---------------------------------------------------------------------- state transitions


def test_enable_replication_runs_a_job_and_blocks_every_operation(world: World) -> None:
    machine = world.seed("10.0.0.1")
    job = world.enable("item", machine)
    assert world.sim.job(job).state_at(world.now) == "NotStarted"
    assert world.state("item") == "EnablingProtection"
    assert world.allowed("item") == []
    world.advance(10)
    assert world.sim.job(job).state_at(world.now) == "InProgress"


def test_finished_enable_job_starts_initial_replication(world: World) -> None:
    machine = world.seed("10.0.0.1")
    assert world.finish(world.enable("item", machine)) == "Succeeded"
    assert world.state("item") == "InitialReplicationInProgress"
    assert world.allowed("item") == ["DisableProtection"]
    assert world.sim.status(world.sim.item("item"), world.now).ir_health == "InProgress"


def test_initial_replication_completes_into_protected(world: World) -> None:
    world.protect("item", world.seed("10.0.0.1"))
    assert world.allowed("item") == OPS_PROTECTED


def test_test_failover_waits_for_cleanup(world: World) -> None:
    world.protect("item", world.seed("10.0.0.1"))
    job = world.test_failover("item")
    status = world.sim.status(world.sim.item("item"), world.now)
    assert (status.test_failover_state, status.allowed_operations) == ("InProgress", [])
    assert world.finish(job) == "Succeeded"
    status = world.sim.status(world.sim.item("item"), world.now)
    assert status.test_failover_state == "WaitingForCompletion"
    assert status.protection_description == "Cleanup test failover pending"
    assert status.allowed_operations == ["TestFailoverCleanup"]


def test_cleanup_returns_the_item_to_protected(world: World) -> None:
    world.protect("item", world.seed("10.0.0.1"))
    world.finish(world.test_failover("item"))
    job = world.sim.test_failover_cleanup("item", {}, world.now).name
    assert world.sim.status(world.sim.item("item"), world.now).test_failover_state == "MarkedForDeletion"
    assert world.finish(job) == "Succeeded"
    assert world.allowed("item") == OPS_PROTECTED
    assert world.sim.item("item").last_test_failover_time is not None


def test_unplanned_failover_leaves_commit_pending_in_azure(world: World) -> None:
    world.protect("item", world.seed("10.0.0.1"))
    job = world.failover("item")
    assert (world.state("item"), world.allowed("item")) == ("UnplannedFailoverInProgress", [])
    assert world.finish(job) == "Succeeded"
    status = world.sim.status(world.sim.item("item"), world.now)
    assert status.protection_state == "UnplannedFailoverCommitPendingStatesBegin"
    assert status.active_location == "Recovery"
    assert (
        status.allowed_operations
        == OPS_FAILED_OVER
        == ["CompleteMigration", "Commit", "DisableProtection", "ChangePit"]
    )


def test_commit_then_complete_migration_removes_the_item(world: World) -> None:
    machine = world.seed("10.0.0.1")
    world.protect("item", machine)
    world.finish(world.failover("item"))
    assert world.finish(world.sim.commit("item", world.now).name) == "Succeeded"
    assert (world.state("item"), world.allowed("item")) == ("UnplannedFailoverCommitted", OPS_COMMITTED)
    job = world.remove("item")
    assert world.state("item") == "DisablingProtection"
    assert world.finish(job) == "Succeeded"
    with refused(404, "NotFound"):
        world.sim.item("item")
    assert world.sim.machines[machine].protected_item_name is None


def test_disable_protection_during_initial_replication(world: World) -> None:
    machine = world.seed("10.0.0.1")
    world.finish(world.enable("item", machine))
    assert world.finish(world.remove("item", "NotSpecified")) == "Succeeded"
    assert "item" not in world.sim.items


def test_failed_enable_shows_the_error_and_restart_recovers(world: World) -> None:
    machine = world.seed("10.0.0.1")
    world.sim.set_faults(FaultPlan(machines={machine: FaultRule(job_failure_rate=1.0)}), world.now)
    job = world.enable("item", machine)
    assert world.finish(job) == "Failed"
    status = world.sim.status(world.sim.item("item"), world.now)
    assert (status.protection_state, status.replication_health) == ("EnablingFailed", "Critical")
    assert status.health_errors[0]["errorCode"] == AsrErrorSpec().code
    assert status.allowed_operations == ["DisableProtection"]
    assert world.sim.job(job).allowed_actions(world.now) == ["Restart"]
    world.sim.set_faults(FaultPlan(), world.now)
    again = world.sim.restart_job(job, world.now)
    assert world.finish(again.name) == "Succeeded"
    assert world.state("item") == "InitialReplicationInProgress"
    assert world.sim.job(job).allowed_actions(world.now) == []


def test_failed_failover_can_be_tried_again(world: World) -> None:
    machine = world.seed("10.0.0.1")
    world.protect("item", machine)
    rule = FaultRule(job_failure_rate=1.0, job_failure_scenarios=("UnplannedFailover",))
    world.sim.set_faults(FaultPlan(machines={machine: rule}), world.now)
    assert world.finish(world.failover("item")) == "Failed"
    assert (world.state("item"), world.allowed("item")) == ("Protected", OPS_PROTECTED)


def test_failed_test_failover_needs_a_cleanup(world: World) -> None:
    machine = world.seed("10.0.0.1")
    world.protect("item", machine)
    world.sim.set_faults(
        FaultPlan(run=FaultRule(job_failure_rate=1.0, job_failure_scenarios=("TestFailover",))), world.now
    )
    assert world.finish(world.test_failover("item")) == "Failed"
    status = world.sim.status(world.sim.item("item"), world.now)
    assert (status.test_failover_state, status.allowed_operations) == ("Failed", ["TestFailoverCleanup"])


def test_cancelled_enable_counts_as_failed(world: World) -> None:
    job = world.enable("item", world.seed("10.0.0.1"))
    world.advance(30)
    cancelled = world.sim.cancel_job(job, world.now)
    assert cancelled.state_at(world.now) == "Cancelled"
    assert world.state("item") == "EnablingFailed"


def test_purge_removes_an_item_in_any_idle_state(world: World) -> None:
    machine = world.seed("10.0.0.1")
    world.sim.set_faults(FaultPlan(machines={machine: FaultRule(job_failure_rate=1.0)}), world.now)
    world.finish(world.enable("item", machine))
    world.sim.set_faults(FaultPlan(), world.now)
    assert world.finish(world.sim.purge("item", world.now).name) == "Succeeded"
    assert "item" not in world.sim.items


def test_update_applies_its_changes_when_the_job_ends(world: World) -> None:
    world.finish(world.enable("item", world.seed("10.0.0.1")))
    body = {"properties": {"providerSpecificDetails": {"instanceType": "InMageRcm", "targetVmSize": "Standard_D4s_v5"}}}
    job = world.sim.update("item", body, world.now)
    assert "targetVmSize" not in world.sim.item("item").settings
    world.finish(job.name)
    assert world.sim.item("item").settings["targetVmSize"] == "Standard_D4s_v5"


def test_recovery_plan_fails_over_and_commits_its_members(world: World) -> None:
    names = [f"item-{i}" for i in range(3)]
    for index, name in enumerate(names):
        world.protect(name, world.seed(f"10.0.1.{index}"))
    world.finish(world.sim.create_plan("wave", plan_body(world, names), world.now).name)
    assert world.sim.plan_allowed_operations(world.sim.plan("wave"), world.now) == ["UnplannedFailover", "TestFailover"]
    body = {"properties": {"failoverDirection": "PrimaryToRecovery", "sourceSiteOperations": "NotRequired"}}
    job = world.sim.plan_unplanned_failover("wave", body, world.now)
    assert {world.state(n) for n in names} == {"UnplannedFailoverInProgress"}
    assert world.finish(job.name) == "Succeeded"
    assert {world.state(n) for n in names} == {"UnplannedFailoverCommitPendingStatesBegin"}
    assert world.finish(world.sim.plan_commit("wave", world.now).name) == "Succeeded"
    assert {world.state(n) for n in names} == {"UnplannedFailoverCommitted"}
    assert world.sim.recorder.failovers_started == dict.fromkeys(names, 1)


def plan_body(world: World, names: list[str]) -> dict[str, Any]:
    container = world.sim.infrastructure().protection_container_id
    members = [{"id": f"{container}/replicationProtectedItems/{n}", "virtualMachineId": n} for n in names]
    return {
        "properties": {
            "primaryFabricId": world.sim.infrastructure().fabric_id,
            "recoveryFabricId": "Microsoft Azure",
            "groups": [{"groupType": "Boot", "replicationProtectedItems": members}],
        }
    }


# ---------------------------------------------------------------------- illegal operations


def test_failover_before_protection_is_refused(world: World) -> None:
    world.finish(world.enable("item", world.seed("10.0.0.1")))
    with refused(400, "OperationNotAllowedInCurrentState"):
        world.failover("item")


def test_test_failover_before_protection_is_refused(world: World) -> None:
    world.finish(world.enable("item", world.seed("10.0.0.1")))
    with refused(400, "OperationNotAllowedInCurrentState"):
        world.test_failover("item")


def test_any_operation_while_a_job_runs_is_a_conflict(world: World) -> None:
    world.enable("item", world.seed("10.0.0.1"))
    with refused(409, "ReplicationOperationInProgress"):
        world.remove("item", "NotSpecified")


def test_second_failover_while_the_first_runs_is_a_conflict(world: World) -> None:
    world.protect("item", world.seed("10.0.0.1"))
    world.failover("item")
    with refused(409, "ReplicationOperationInProgress"):
        world.failover("item")
    assert world.sim.recorder.failover_requests["item"] == 2
    assert world.sim.recorder.failovers_started["item"] == 1


def test_failover_after_failover_is_refused(world: World) -> None:
    world.protect("item", world.seed("10.0.0.1"))
    world.finish(world.failover("item"))
    with refused(400, "OperationNotAllowedInCurrentState"):
        world.failover("item")


def test_failover_while_test_failover_awaits_cleanup_is_refused(world: World) -> None:
    world.protect("item", world.seed("10.0.0.1"))
    world.finish(world.test_failover("item"))
    with refused(400, "OperationNotAllowedInCurrentState"):
        world.failover("item")


def test_commit_without_failover_is_refused(world: World) -> None:
    world.protect("item", world.seed("10.0.0.1"))
    with refused(400, "OperationNotAllowedInCurrentState"):
        world.sim.commit("item", world.now)


def test_cleanup_without_test_failover_is_refused(world: World) -> None:
    world.protect("item", world.seed("10.0.0.1"))
    with refused(400, "OperationNotAllowedInCurrentState"):
        world.sim.test_failover_cleanup("item", {}, world.now)


def test_complete_migration_before_failover_is_refused(world: World) -> None:
    world.protect("item", world.seed("10.0.0.1"))
    with refused(400, "OperationNotAllowedInCurrentState"):
        world.remove("item", "MigrationComplete")


@pytest.mark.parametrize(
    ("shutdown", "code"), [("true", "SourceShutdownNotSupported"), (False, "MissingRequiredParameter")]
)
def test_failover_must_not_ask_to_shut_the_aws_source_down(world: World, shutdown: Any, code: str) -> None:
    world.protect("item", world.seed("10.0.0.1"))
    with refused(400, code):
        world.failover("item", perform_shutdown=shutdown)
    assert world.allowed("item") == OPS_PROTECTED


def test_enabling_twice_is_a_conflict(world: World) -> None:
    machine = world.seed("10.0.0.1")
    world.enable("item", machine)
    with refused(409, "ReplicationProtectedItemAlreadyExists"):
        world.enable("item", machine)
    with refused(409, "ProtectableItemAlreadyProtected"):
        world.enable("other-name", machine)


@pytest.mark.parametrize(
    ("details", "code"),
    [
        ({"instanceType": "HyperVReplicaAzure"}, "InvalidReplicationProvider"),
        ({"fabricDiscoveryMachineId": "/subscriptions/x/machines/y"}, "InvalidFabricDiscoveryMachineId"),
        ({"processServerId": "not-ours"}, "ProcessServerNotFound"),
        ({"targetResourceGroupId": "nope"}, "InvalidTargetResourceGroup"),
        ({"disksDefault": None}, "MissingRequiredParameter"),
        ({"disksToInclude": [{"diskId": "unknown"}]}, "InvalidDiskSelection"),
    ],
)
def test_bad_enable_input_is_refused(world: World, details: dict[str, Any], code: str) -> None:
    machine = world.seed("10.0.0.1")
    with refused(400, code):
        world.sim.enable("item", world.enable_body(machine, **details), world.now)
    assert "item" not in world.sim.items


def test_enable_with_an_unknown_policy_is_refused(world: World) -> None:
    body = world.enable_body(world.seed("10.0.0.1"))
    body["properties"]["policyId"] = "/subscriptions/x/replicationPolicies/other"
    with refused(400, "InvalidPolicy"):
        world.sim.enable("item", body, world.now)


def test_update_after_failover_is_refused(world: World) -> None:
    world.protect("item", world.seed("10.0.0.1"))
    world.finish(world.failover("item"))
    with refused(400, "OperationNotAllowedInCurrentState"):
        world.sim.update("item", {"properties": {}}, world.now)


def test_recovery_plan_holds_at_most_100_items(world: World) -> None:
    names = []
    for index in range(101):
        machine = world.seed(f"10.1.{index // 200}.{index % 200}")
        world.enable(f"item-{index}", machine)
        names.append(f"item-{index}")
    with refused(400, "RecoveryPlanItemLimitExceeded"):
        world.sim.create_plan("too-big", plan_body(world, names), world.now)


def test_recovery_plan_failover_needs_every_member_protected(world: World) -> None:
    world.protect("ready", world.seed("10.0.0.1"))
    world.finish(world.enable("not-ready", world.seed("10.0.0.2")))
    world.finish(world.sim.create_plan("wave", plan_body(world, ["ready", "not-ready"]), world.now).name)
    body = {"properties": {"failoverDirection": "PrimaryToRecovery", "sourceSiteOperations": "NotRequired"}}
    with refused(400, "RecoveryPlanOperationNotAllowed"):
        world.sim.plan_unplanned_failover("wave", body, world.now)
    assert world.allowed("ready") == OPS_PROTECTED
    required = {"properties": {"failoverDirection": "PrimaryToRecovery", "sourceSiteOperations": "Required"}}
    with refused(400, "SourceShutdownNotSupported"):
        world.sim.plan_unplanned_failover("wave", required, world.now)


def test_job_actions_out_of_turn_are_refused(world: World) -> None:
    world.protect("item", world.seed("10.0.0.1"))
    failover = world.failover("item")
    with refused(400, "JobActionNotAllowed"):
        world.sim.cancel_job(failover, world.now)  # a migration failover is never cancellable
    with refused(400, "JobActionNotAllowed"):
        world.sim.resume_job(failover, world.now)
    world.finish(failover)
    with refused(400, "JobActionNotAllowed"):
        world.sim.restart_job(failover, world.now)


# ---------------------------------------------------------------------- replication spread and health


def test_initial_replication_time_follows_disk_size_and_churn(world: World) -> None:
    small = world.seed("10.0.0.1", disks=(100,))
    large = world.seed("10.0.0.2", disks=(100, 400))
    churny = world.seed("10.0.0.3", disks=(100,), churn_mb_per_day=400_000)
    for item, machine in (("small", small), ("large", large), ("churny", churny)):
        world.enable(item, machine)
    world.advance(600)
    durations = {}
    for item in ("small", "large", "churny"):
        progress = world.sim.item(item).replication
        assert progress is not None
        done = progress.completed_at()
        assert done is not None
        durations[item] = (done - progress.started_at).total_seconds()
    assert durations["small"] == pytest.approx(100 * GIB / (10 * MIB))
    assert durations["large"] == pytest.approx(5 * durations["small"])
    assert durations["churny"] == pytest.approx(100 * GIB / effective_rate_bytes_per_s(10, 400_000))
    assert durations["churny"] > durations["small"]


def test_default_upload_rates_spread_across_machines() -> None:
    sim = Simulator(VAULT, seed=1, config=SimConfig(upload_mb_per_s_range=(3.0, 12.0)))
    rates = {sim.seed_machine(MachineSeed(ip=f"10.9.0.{i}", os_type="Linux", os_name="Ubuntu 22.04",
                                          disks_gib=(8,))).upload_mb_per_s for i in range(20)}  # fmt: skip
    assert len(rates) == 20
    assert all(3.0 <= r <= 12.0 for r in rates)


def test_churn_above_upload_never_completes(world: World) -> None:
    machine = world.seed("10.0.0.1", upload_mb_per_s=1.0, churn_mb_per_day=200_000)
    world.finish(world.enable("item", machine))
    world.advance(30 * DAY)
    status = world.sim.status(world.sim.item("item"), world.now)
    assert (status.protection_state, status.replication_health, status.ir_health) == (
        "InitialReplicationInProgress",
        "Warning",
        "SlowProgress",
    )


def test_stalled_replication_freezes_progress_and_goes_critical(world: World) -> None:
    machine = world.seed("10.0.0.1", disks=(100,))
    world.finish(world.enable("item", machine))
    world.advance(3600)
    world.sim.set_faults(FaultPlan(machines={"10.0.0.1": FaultRule(stalled=True)}), world.now)
    progress = world.sim.item("item").replication
    assert progress is not None
    frozen = progress.bytes_at(world.now)
    world.advance(5 * DAY)
    assert progress.bytes_at(world.now) == frozen
    status = world.sim.status(world.sim.item("item"), world.now)
    assert (status.protection_state, status.replication_health, status.ir_health) == (
        "InitialReplicationInProgress",
        "Critical",
        "NoProgress",
    )
    assert status.health_errors[0]["errorCode"] == "78161"
    world.sim.set_faults(FaultPlan(), world.now)
    world.advance(3600)
    assert progress.bytes_at(world.now) == pytest.approx(frozen + 3600 * 10 * MIB)


def test_rpo_stays_small_then_grows_when_replication_stalls(world: World) -> None:
    machine = world.seed("10.0.0.1", churn_mb_per_day=10_240)
    world.protect("item", machine)
    world.advance(3 * 3600)
    progress = world.sim.item("item").replication
    assert progress is not None
    rpo = progress.rpo(world.now)
    assert rpo is not None
    assert rpo[2] == 45 + 4 * 10  # base lag + 4 s per GiB/day of churn
    protected_at = progress.completed_at()
    assert protected_at is not None
    assert (rpo[0] - protected_at).total_seconds() % 300 == pytest.approx(0, abs=1e-3)  # 5-minute crash points
    world.sim.set_faults(FaultPlan(machines={machine: FaultRule(stalled=True)}), world.now)
    world.advance(3600)
    rpo = progress.rpo(world.now)
    assert rpo is not None
    assert rpo[2] >= 3600
    assert world.sim.status(world.sim.item("item"), world.now).replication_health == "Critical"
    assert world.allowed("item") == OPS_PROTECTED  # failover stays possible, to the last point


def test_unsupported_os_fails_the_enable_job_at_the_prerequisite_check(world: World) -> None:
    machine = world.seed("10.0.0.1", os_name="Amazon Linux 2")
    assert not world.sim.os_supported(world.sim.machines[machine])
    job = world.sim.job(world.enable("item", machine))
    assert job.failing_task == 0
    assert world.finish(job.name) == "Failed"
    assert job.error is not None
    assert job.error.code == "78180"


def test_unsupported_os_fault_overrides_a_supported_name(world: World) -> None:
    machine = world.seed("10.0.0.1", os_name="Ubuntu 22.04")
    world.sim.set_faults(FaultPlan(machines={machine: FaultRule(unsupported_os=True)}), world.now)
    assert not world.sim.os_supported(world.sim.machines[machine])


@pytest.mark.parametrize(
    ("os_type", "name", "supported"),
    [
        ("Linux", "Ubuntu 22.04", True),
        ("Linux", "Ubuntu 22.04.3 LTS", True),
        ("Linux", "RHEL 9.2", True),
        ("Linux", "RHEL 90", False),
        ("Windows", "Windows Server 2019 Datacenter", True),
        ("Windows", "Windows Server 2008 R2", False),
        ("Linux", "Amazon Linux 2", False),
        ("Windows", "Ubuntu 22.04", False),
    ],
)
def test_os_catalog_matching(os_type: str, name: str, supported: bool) -> None:
    assert is_supported(os_type, name) is supported


# ---------------------------------------------------------------------- jobs


def test_job_runs_through_its_tasks(world: World) -> None:
    job = world.sim.job(world.enable("item", world.seed("10.0.0.1")))
    start = job.started_at
    world.clock.current = start + timedelta(seconds=job.seconds * 0.5)
    assert job.state_at(world.now) == "InProgress"
    assert job.elapsed_run_seconds(world.now) == pytest.approx(job.seconds * 0.5)
    assert 200 <= job.seconds <= 300  # 240 s +-20 % jitter


def test_suspended_job_waits_for_resume(world: World) -> None:
    machine = world.seed("10.0.0.1")
    world.sim.set_faults(FaultPlan(suspend_scenarios=("EnableDr",)), world.now)
    job = world.sim.job(world.enable("item", machine))
    world.advance(DAY)
    assert job.state_at(world.now) == "Suspended"
    assert job.allowed_actions(world.now) == ["Resume", "Cancel"]
    world.sim.resume_job(job.name, world.now)
    assert job.state_at(world.now) == "InProgress"
    assert world.finish(job.name) == "Succeeded"
    assert world.state("item") == "InitialReplicationInProgress"


# ---------------------------------------------------------------------- faults, determinism, stats


def test_fault_draws_are_deterministic_and_match_the_rate() -> None:
    plan = FaultPlan(seed=3, run=FaultRule(throttle_rate=0.25, server_error_rate=0.25))

    def draws() -> list[int | None]:
        injector = FaultInjector()
        return [
            injector.decide(plan, None, method="GET", path=f"/p/{i % 40}", kind="read", wall=float(i)).status
            for i in range(2000)
        ]

    first, second = draws(), draws()
    assert first == second
    assert 0.2 < first.count(429) / 2000 < 0.3
    assert {s for s in first if s not in (None, 429)} == {500, 503}


def test_write_budget_throttles_writes_beyond_the_rate() -> None:
    plan = FaultPlan(max_writes_per_second=3, write_budget_retry_after_seconds=2)
    injector = FaultInjector()
    statuses = [
        injector.decide(plan, None, method="PUT", path=f"/i/{i}", kind="write", wall=10.0 + i * 0.1).status
        for i in range(5)
    ]
    assert statuses == [None, None, None, 429, 429]
    later = injector.decide(plan, None, method="PUT", path="/i/x", kind="write", wall=11.05)
    assert later.status is None


def test_same_seed_same_run() -> None:
    def run() -> list[tuple[str, str]]:
        world = World(Simulator(VAULT, seed=11), FakeClock())
        world.sim.set_faults(FaultPlan(seed=5, run=FaultRule(job_failure_rate=0.5)), world.now)
        jobs = [world.enable(f"item-{i}", world.seed(f"10.0.0.{i}")) for i in range(12)]
        world.advance(DAY)
        return [(j, world.sim.job(j).state_at(world.now)) for j in jobs]

    first = run()
    assert first == run()
    assert {state for _, state in first} == {"Succeeded", "Failed"}


def test_peak_writes_in_any_one_second_window() -> None:
    stats = Stats(write_timestamps=[0.0, 0.5, 0.9, 1.2, 1.3, 1.35, 1.4, 5.0])
    assert stats.peak_writes_per_second() == 6  # 0.5, 0.9, 1.2, 1.3, 1.35, 1.4
    assert Stats().peak_writes_per_second() == 0
