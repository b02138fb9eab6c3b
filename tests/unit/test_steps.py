"""The migration steps against in-memory ports: each is idempotent and records what it did."""

from __future__ import annotations

from datetime import timedelta

import pytest

from migration.errors import AwaitingDiscovery, InvalidTransition, PermanentCloudError, PreconditionFailed
from migration.events import MigrationRequestedData
from migration.lifecycle import Phase
from migration.records import MigrationRecord
from migration.steps import MigrationSteps
from tests.fakes import FakeAsr, InMemoryStore, ManualClock

INSTANCE = {"account_id": "123456789012", "region": "eu-west-1", "instance_id": "i-0123456789abcdef0"}
IP = "10.0.1.15"


def request(request_id: str = "r-1", **extra: object) -> MigrationRequestedData:
    return MigrationRequestedData.model_validate(
        {"instance": INSTANCE, "private_ip": IP, "os_family": "linux", "request_id": request_id, **extra}
    )


@pytest.fixture
def world() -> tuple[MigrationSteps, InMemoryStore, FakeAsr, ManualClock]:
    store, asr, clock = InMemoryStore(), FakeAsr(), ManualClock()
    asr.add_machine(IP)
    steps = MigrationSteps(store, asr, clock, default_subnet="workloads", target_tags={"owner": "platform"})
    return steps, store, asr, clock


World = tuple[MigrationSteps, InMemoryStore, FakeAsr, ManualClock]


def replicated(world: World) -> str:
    steps, _, asr, _ = world
    registered = steps.register(request())
    steps.start_replication(registered.migration_id)
    asr.protect("machine-1")
    return registered.migration_id


def test_register_creates_the_record_once(world: World) -> None:
    steps, store, _, _ = world
    first = steps.register(request())
    again = steps.register(request())
    assert first.new_request
    assert not again.new_request
    record = store.get(first.migration_id)
    assert record.phase is Phase.REQUESTED
    assert record.private_ip == IP
    assert [e.kind for e in store.events] == ["MigrationRequested"]


def test_start_replication_is_idempotent(world: World) -> None:
    steps, store, asr, _ = world
    migration_id = steps.register(request()).migration_id
    first = steps.start_replication(migration_id)
    second = steps.start_replication(migration_id)
    assert first == second
    assert [op for op, _ in asr.writes] == ["EnableReplication"]
    record = store.get(migration_id)
    assert record.phase is Phase.ENABLING_REPLICATION
    assert record.protected_item_name == "machine-1"


def test_an_undiscovered_machine_is_awaited_with_back_off_then_given_up_with_a_reason(world: World) -> None:
    """Finding 1: a machine the appliance has not discovered yet is a retryable wait, not NotFound/NotReady."""
    steps, store, asr, clock = world
    migration_id = steps.register(request()).migration_id
    asr.machines.clear()
    waits: list[float] = []
    given_up: PermanentCloudError | None = None
    for _ in range(20):
        try:
            steps.start_replication(migration_id)
        except AwaitingDiscovery as exc:
            waits.append(exc.retry_after_seconds or 0.0)
            assert store.get(migration_id).phase is Phase.AWAITING_DISCOVERY
            clock.advance(timedelta(seconds=waits[-1]))
        except PermanentCloudError as exc:
            given_up = exc
            break
    assert given_up is not None
    assert given_up.code == "MachineNotDiscovered"
    assert all(wait > 0 for wait in waits)
    assert waits == sorted(waits)  # backs off
    assert waits[0] == 60
    assert sum(waits) == pytest.approx(steps.discovery_timeout.total_seconds())  # bounded
    assert len(waits) < 8  # within the orchestrator's step attempts (MAX_STEP_ATTEMPTS)
    assert asr.writes == []


def test_a_machine_discovered_while_waiting_is_replicated(world: World) -> None:
    steps, store, asr, clock = world
    migration_id = steps.register(request()).migration_id
    machine = asr.machines.pop(IP)
    with pytest.raises(AwaitingDiscovery):
        steps.start_replication(migration_id)
    asr.machines[IP] = machine  # the agent registered; the appliance lists it
    clock.advance(timedelta(minutes=1))
    started = steps.start_replication(migration_id)
    assert store.get(migration_id).phase is Phase.ENABLING_REPLICATION
    assert asr.writes == [("EnableReplication", started.protected_item_name)]


def test_an_unsupported_os_is_a_precondition_failure(world: World) -> None:
    steps, _, asr, _ = world
    migration_id = steps.register(request()).migration_id
    asr.unsupported_os.add("machine-1")
    with pytest.raises(PreconditionFailed, match="not supported"):
        steps.start_replication(migration_id)


def test_observe_records_progress_and_readiness(world: World) -> None:
    steps, store, asr, _ = world
    migration_id = steps.register(request()).migration_id
    steps.start_replication(migration_id)
    asr._set("machine-1", progress_percent=40, replication_health="Warning", health_errors=("High churn",))
    snapshot = steps.observe_replication(migration_id)
    assert (snapshot.progress_percent, snapshot.ready_for_cutover) == (40, False)
    record = store.get(migration_id)
    assert (record.phase, record.progress_percent, record.replication_health) == (
        Phase.REPLICATING,
        40,
        "Warning",
    )
    assert record.reason == "High churn"
    asr.protect("machine-1")
    assert steps.observe_replication(migration_id).ready_for_cutover


def test_failover_is_sent_once_even_when_the_step_runs_again(world: World) -> None:
    steps, store, asr, _ = world
    migration_id = replicated(world)
    steps.observe_replication(migration_id)
    steps.record_phase(migration_id, Phase.READY_FOR_CUTOVER)
    steps.record_phase(migration_id, Phase.AWAITING_CUTOVER)
    first = steps.start_failover(migration_id)
    # The activity is at-least-once: a rerun after a lost acknowledgement must not fail over again.
    second = steps.start_failover(migration_id)
    asr.failover_done("machine-1")
    third = steps.start_failover(migration_id)
    assert [op for op, _ in asr.writes].count("UnplannedFailover") == 1
    assert first.job_id == second.job_id == third.job_id
    record = store.get(migration_id)
    assert record.failover_requested_at is not None
    assert "FailoverNotRepeated" in [e.kind for e in store.events]


def test_a_failed_failover_job_can_be_retried(world: World) -> None:
    steps, _, asr, _ = world
    migration_id = replicated(world)
    steps.observe_replication(migration_id)
    steps.record_phase(migration_id, Phase.READY_FOR_CUTOVER)
    steps.record_phase(migration_id, Phase.AWAITING_CUTOVER)
    steps.start_failover(migration_id)
    steps.record_phase(migration_id, Phase.FAILED, "failover job failed")
    asr.protect("machine-1")  # ASR rolled the item back to protected: failover is allowed again
    steps.start_failover(migration_id)
    assert [op for op, _ in asr.writes].count("UnplannedFailover") == 2


def test_a_write_asr_refuses_is_a_precondition_failure(world: World) -> None:
    steps, _, _, _ = world
    migration_id = steps.register(request()).migration_id
    steps.start_replication(migration_id)
    with pytest.raises(PreconditionFailed, match="Commit not allowed"):
        steps.start_commit(migration_id)


def test_moving_outside_the_transition_table_is_refused(world: World) -> None:
    steps, _, _, _ = world
    migration_id = steps.register(request()).migration_id
    with pytest.raises(InvalidTransition):
        steps.record_phase(migration_id, Phase.MIGRATED)


def test_a_retry_of_a_failed_replicated_migration_keeps_its_item(world: World) -> None:
    steps, store, _, _ = world
    migration_id = replicated(world)
    steps.record_phase(migration_id, Phase.FAILED, "stalled")
    again = steps.register(request("r-2"))
    assert again.new_request
    assert again.protected_item_name == "machine-1"
    assert store.get(migration_id).phase is Phase.FAILED  # until ASR is read again
    steps.observe_replication(migration_id)
    assert store.get(migration_id).phase is Phase.REPLICATING


def test_a_new_request_after_cancel_starts_from_scratch(world: World) -> None:
    steps, store, _, _ = world
    migration_id = replicated(world)
    assert steps.start_disable_replication(migration_id) is not None
    steps.record_phase(migration_id, Phase.CANCELLED, "tag removed")
    again = steps.register(request("r-2"))
    record = store.get(migration_id)
    assert again.phase is Phase.REQUESTED
    assert record.protected_item_name is None
    assert record.request_id == "r-2"


def test_a_concurrent_writer_does_not_lose_the_update(world: World) -> None:
    steps, store, _, clock = world
    migration_id = steps.register(request()).migration_id
    real_get = store.get
    raced = {"done": False}

    def get_then_race(mid: str) -> MigrationRecord:
        record = real_get(mid)
        if not raced["done"]:
            raced["done"] = True
            # Another writer updates the record between our read and our write.
            other = real_get(mid)
            other.reason = "written by someone else"
            store.update(other)
        return record

    store.get = get_then_race  # type: ignore[method-assign,assignment]
    clock.advance(timedelta(minutes=1))
    steps.record_phase(migration_id, Phase.ENABLING_REPLICATION, "enabling")
    store.get = real_get  # type: ignore[method-assign]
    record = store.get(migration_id)
    assert record.phase is Phase.ENABLING_REPLICATION
    assert record.reason == "enabling"


class FakeVms:
    """The failed-over VM: present until deleted (the deletion takes one more look)."""

    def __init__(self) -> None:
        self.deleting = False
        self.gone = False
        self.deletes = 0

    def inspect(self, vm_id: str) -> object:  # pragma: no cover - not used here
        raise AssertionError("not called")

    def delete(self, vm_id: str) -> bool:
        if self.gone:
            return True
        if self.deleting:
            self.gone = True
            return True
        self.deleting, self.deletes = True, self.deletes + 1
        return False


def failed_over(world: World) -> str:
    steps, _, asr, _ = world
    migration_id = replicated(world)
    steps.observe_replication(migration_id)
    steps.record_phase(migration_id, Phase.READY_FOR_CUTOVER)
    steps.record_phase(migration_id, Phase.AWAITING_CUTOVER)
    steps.start_failover(migration_id)
    asr.failover_done("machine-1")
    steps.record_phase(migration_id, Phase.VALIDATING)
    return migration_id


def test_a_rollback_disables_protection_deletes_the_vm_and_asks_aws_to_start_the_source(world: World) -> None:
    from migration.lifecycle import RollbackRequest

    steps, store, asr, _ = world
    vms = FakeVms()
    steps.vms = vms  # type: ignore[assignment]
    steps.target_resource_group_id = "/subscriptions/s/resourceGroups/target"
    migration_id = failed_over(world)
    order = RollbackRequest(requested_by="validation gate", reason="PowerState/stopped")
    started = steps.start_rollback(migration_id, order)
    assert started is not None
    assert steps.start_rollback(migration_id, order) == started  # a rerun: the disable is not sent twice
    assert [op for op, _ in asr.writes].count("DisableProtection") == 1
    assert "Commit" not in [op for op, _ in asr.writes]
    assert store.get(migration_id).phase is Phase.ROLLING_BACK
    assert steps.remove_failed_over_vm(migration_id).gone is False
    removed = steps.remove_failed_over_vm(migration_id)
    assert removed.gone
    assert (
        removed.vm_id
        == "/subscriptions/s/resourceGroups/target/providers/Microsoft.Compute/virtualMachines/"
        + (INSTANCE["instance_id"])
    )
    assert vms.deletes == 1
    record = store.get(migration_id)
    assert record.phase is Phase.ROLLED_BACK
    assert record.timeline.restart_requested_at is not None
    kinds = [e.kind for e in store.events]
    assert "RollbackStarted" in kinds
    assert any(e.kind == "FailedOverVmDeleted" and "disks and NICs" in e.message for e in store.events)

    # A retry starts from scratch: the failover is forgotten, the AWS side's restart request kept.
    again = steps.register(request("r-2"))
    record = store.get(migration_id)
    assert again.phase is Phase.REQUESTED
    assert record.protected_item_name is None
    assert record.failover_requested_at is None
    assert record.rollback is None
    assert record.timeline.restart_requested_at is not None


def test_a_committed_item_is_never_rolled_back(world: World) -> None:
    from migration.lifecycle import RollbackRequest

    steps, _, asr, _ = world
    migration_id = failed_over(world)
    asr._set("machine-1", allowed_operations=frozenset({"CompleteMigration", "DisableProtection", "Failback"}))
    with pytest.raises(PreconditionFailed, match="commit ended ASR's failover") as refused:
        steps.start_rollback(migration_id, RollbackRequest(reason="too late"))
    assert refused.value.code == "AlreadyCommitted"
    assert "DisableProtection" not in [op for op, _ in asr.writes]
