"""Issue 5's end-to-end path: a CloudEvent on the queue -> Migrated, against the whole local stack.

Checks the three places that tell the story: the simulator's request log (what was asked of ASR),
the Table records (what we recorded), and the orchestration's outcome.
"""

from __future__ import annotations

from collections.abc import Iterator

import boto3
import httpx
import pytest
from azure.data.tables import TableServiceClient
from azure.storage.queue import QueueClient

from aws2azure.api_client import ApiError, MigrationApi
from aws_lambda.adapters.ec2 import Ec2Gateway
from aws_lambda.logic.status_sync import StatusSyncDependencies, sync_statuses
from devstack.asr_sim.control import SimulatorControl
from devstack.launcher import Stack
from devstack.settings import StackSettings
from functions.adapters.table_store import TableStore
from migration.errors import NotFound
from migration.records import MigrationRecord
from migration.tags import CUTOVER_STOP, MIGRATE, REASON, ROLLBACK_START, STATUS
from tests.e2e.support import (
    REGION,
    api_of,
    intake_queue,
    migration_id,
    phase_of,
    restart_host,
    send_event,
    wait_for,
)
from tests.integration.aws.aws_test_support import AMI_UBUNTU

pytestmark = [pytest.mark.integration, pytest.mark.e2e]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Stack, StackSettings]]:
    stack = Stack(tmp_path_factory.mktemp("e2e-stack"))
    settings = stack.up()
    yield stack, settings
    stack.down()


def test_a_request_on_the_queue_ends_migrated_with_one_failover_despite_duplicates_and_restarts(
    stack: tuple[Stack, StackSettings],
) -> None:
    running, settings = stack
    assert settings.asr is not None
    assert settings.azurite is not None
    sim = SimulatorControl.from_endpoint(settings.asr)
    api, queue = api_of(settings), intake_queue(settings)
    instance = "i-0e2e0000000000001"
    item = sim.seed_machine("10.20.0.11", "Linux", "Ubuntu 22.04 LTS", [64, 256], friendly_name=instance)
    request = {"private_ip": "10.20.0.11", "os_family": "linux", "wave": "e2e", "request_id": "r-e2e-1"}

    send_event(queue, "MigrationRequested", instance, request)
    send_event(queue, "MigrationRequested", instance, request)  # a duplicate delivery changes nothing
    wait_for(lambda: phase_of(api, instance) == "AwaitingCutover", what="AwaitingCutover")

    stopped = {"requested_by": "schedule", "source_stopped": True}
    for delivery in range(3):
        send_event(queue, "FailoverRequested", instance, stopped)
        if delivery < 2:
            restart_host(running, settings)  # the host dies and comes back between deliveries
    wait_for(lambda: phase_of(api, instance) == "Migrated", timeout=120, what="Migrated")

    stats = sim.stats()
    assert stats.failover_requests.get(item) == 1, stats.failover_requests
    assert stats.failovers_started.get(item) == 1
    writes = [r.operation for r in sim.requests() if r.kind == "write" and r.machine == item]
    assert writes == [
        "ReplicationProtectedItems_Create",
        "ReplicationProtectedItems_UnplannedFailover",
        "ReplicationProtectedItems_FailoverCommit",
        "ReplicationProtectedItems_Delete",
    ], writes

    store = TableStore(TableServiceClient.from_connection_string(settings.azurite.connection_string))
    record = store.get(migration_id(instance))
    assert record.phase.value == "Migrated"
    assert record.failover_requested_at is not None
    kinds = [event.kind for event in store.list_events(migration_id(instance))]
    for expected in ("MigrationRequested", "AsrJobStarted", "AsrJobFinished", "PhaseChanged"):
        assert expected in kinds
    phases = [e.message for e in store.list_events(migration_id(instance)) if e.kind == "PhaseChanged"]
    assert phases[-1].endswith("-> Migrated")
    # The validation gate looked at the failed-over VM before the commit.
    assert "FailingOver -> Validating" in phases
    assert "Validating -> Committing" in phases
    assert "ValidationPassed" in kinds
    assert record.validation is not None
    assert record.validation.verdict == "passed"
    assert record.target_vm_id is not None
    assert record.target_vm_id.endswith(f"/virtualMachines/{instance}")


class _StatusApiOverHttp:
    """Status sync's StatusApi port over the local host's HTTP API (the deployed one reads its key from Secrets
    Manager; here the test holds it)."""

    def __init__(self, api: MigrationApi) -> None:
        self._api = api

    def get_migration(self, migration_id: str) -> MigrationRecord:
        try:
            return MigrationRecord.model_validate(self._api.get(migration_id)["migration"])
        except ApiError as exc:
            if exc.status == 404:
                raise NotFound(str(exc)) from exc
            raise


def test_a_failed_over_vm_that_fails_the_gate_is_rolled_back_not_committed(stack: tuple[Stack, StackSettings]) -> None:
    """Issue 18: the stopped VM fails the gate -> rolled back: protection disabled, the failed-over VM deleted, no
    commit sent; status sync starts the source again in moto and restores its tags; a retry is accepted."""
    _, settings = stack
    assert settings.asr is not None
    assert settings.azurite is not None
    assert settings.moto is not None
    sim = SimulatorControl.from_endpoint(settings.asr)
    api, queue = api_of(settings), intake_queue(settings)
    ec2_client = boto3.session.Session(aws_access_key_id="testing", aws_secret_access_key="testing",
                                       region_name=REGION).client("ec2", endpoint_url=settings.moto.url)  # fmt: skip
    raw = ec2_client.run_instances(ImageId=AMI_UBUNTU, MinCount=1, MaxCount=1, InstanceType="m5.large")
    instance = raw["Instances"][0]["InstanceId"]
    ec2_client.create_tags(Resources=[instance], Tags=[{"Key": MIGRATE, "Value": "true"},
                                                       {"Key": STATUS, "Value": "Requested"}])  # fmt: skip
    item = sim.seed_machine("10.20.0.12", "Linux", "Ubuntu 22.04 LTS", [64], friendly_name=instance)
    sim.vm_fault("10.20.0.12", power_state="stopped")  # the VM the failover creates does not run
    request = {"private_ip": "10.20.0.12", "os_family": "linux", "wave": "e2e", "request_id": "r-e2e-2"}
    send_event(queue, "MigrationRequested", instance, request)
    wait_for(lambda: phase_of(api, instance) == "AwaitingCutover", what="AwaitingCutover")
    # The cutover stops the source (and marks it) before it sends the failover.
    ec2_client.stop_instances(InstanceIds=[instance])
    ec2_client.create_tags(Resources=[instance], Tags=[{"Key": CUTOVER_STOP, "Value": "sent:r-e2e-2:schedule"}])
    send_event(queue, "FailoverRequested", instance, {"requested_by": "schedule", "source_stopped": True})
    wait_for(lambda: phase_of(api, instance) == "RolledBack", timeout=120, what="RolledBack")

    stats = sim.stats()
    assert stats.failovers_started.get(item) == 1
    assert stats.commits_started.get(item, 0) == 0, stats.commits_started
    writes = [r.operation for r in sim.requests() if r.kind == "write" and r.machine == item]
    assert "ReplicationProtectedItems_FailoverCommit" not in writes, writes
    assert writes == [
        "ReplicationProtectedItems_Create",
        "ReplicationProtectedItems_UnplannedFailover",
        "ReplicationProtectedItems_Delete",  # disable protection (POST .../remove)
        "VirtualMachines_Delete",  # the failed-over VM
    ], writes
    store = TableStore(TableServiceClient.from_connection_string(settings.azurite.connection_string))
    record = store.get(migration_id(instance))
    assert "PowerState/stopped" in record.reason
    assert "rolled back before commit" in record.reason
    assert record.validation is not None
    assert record.validation.verdict == "failed"
    assert record.timeline.restart_requested_at is not None
    # The RolledBack audit line is written in its own step after the phase: wait for it, do not race it.
    wait_for(lambda: "RolledBack" in [e.kind for e in store.list_events(migration_id(instance))],
             timeout=120, what="the RolledBack audit line")  # fmt: skip
    events = store.list_events(migration_id(instance))
    kinds = [e.kind for e in events]
    for expected in ("ValidationFailed", "RollbackStarted", "ProtectionDisabled", "FailedOverVmDeleted", "RolledBack"):
        assert expected in kinds, kinds
    failed = [e for e in events if e.kind == "ValidationFailed"]
    assert "PowerState/stopped" in failed[0].message
    # The failed-over VM is gone from Microsoft.Compute: deleted once (200), then its instance view is 404.
    assert record.target_vm_id is not None
    deleted = [r for r in sim.requests() if r.operation == "VirtualMachines_Delete" and r.machine == item]
    assert [r.status for r in deleted] == [200], deleted
    looks = [r for r in sim.requests() if r.operation == "VirtualMachines_InstanceView" and r.seq > deleted[0].seq]
    assert looks, looks
    assert looks[-1].status == 404, looks

    # The AWS side pulls the record and starts the source again, once, with its tags restored.
    ec2 = Ec2Gateway(ec2_client)
    deps = StatusSyncDependencies(inventory=ec2, tags=ec2, status_api=_StatusApiOverHttp(api), sources=ec2)
    outcome = sync_statuses(deps)
    assert instance in outcome.updated, outcome
    state = ec2_client.describe_instances(InstanceIds=[instance])["Reservations"][0]["Instances"][0]["State"]["Name"]
    assert state in ("pending", "running")
    tags = {t["Key"]: t["Value"] for t in ec2_client.describe_tags(
        Filters=[{"Name": "resource-id", "Values": [instance]}])["Tags"]}  # fmt: skip
    assert tags[STATUS] == "RolledBack"
    assert "rolled back before commit" in tags[REASON]
    assert tags[CUTOVER_STOP] == ""
    assert tags[ROLLBACK_START].startswith("rollback-")
    ec2_client.stop_instances(InstanceIds=[instance])
    assert instance not in sync_statuses(deps).updated  # once per request: not started twice

    # RolledBack is retryable: the retry starts again from the beginning (the ASR item is gone: enable runs again).
    assert api.act(migration_id(instance), "retry", {"reason": "VM image fixed"})["action"] == "retry"
    wait_for(lambda: phase_of(api, instance) == "AwaitingCutover", timeout=120, what="AwaitingCutover again")
    assert store.get(migration_id(instance)).failover_requested_at is None


def test_an_invalid_message_goes_to_the_poison_queue_and_nothing_starts(stack: tuple[Stack, StackSettings]) -> None:
    _, settings = stack
    queue = intake_queue(settings)
    queue.send_message("bm90IGEgY2xvdWQgZXZlbnQ=")  # base64 of "not a cloud event"
    assert settings.azurite is not None
    poison = QueueClient.from_connection_string(settings.azurite.connection_string, "migration-requests-poison")
    wait_for(lambda: (poison.get_queue_properties().approximate_message_count or 0) >= 1, what="poison message")


def test_the_http_api_on_the_local_host_says_what_is_wrong(stack: tuple[Stack, StackSettings]) -> None:
    """The API over real HTTP on the local host: keys, 400/404/409 with messages, OpenAPI served."""
    _, settings = stack
    assert settings.host is not None
    base = f"{settings.host.base_url}/api"
    key = {"x-functions-key": settings.host.master_key}
    with httpx.Client(timeout=30) as client:
        assert client.get(f"{base}/migrations").status_code == 401
        assert client.get(f"{base}/migrations", params={"code": settings.host.master_key}).status_code == 200
        missing = client.get(f"{base}/migrations/123456789012-eu-west-1-i-0ffffffffffffffff", headers=key)
        assert missing.status_code == 404
        assert "message" in missing.json()["error"]
        bad_phase = client.get(f"{base}/migrations", params={"phase": "Exploded"}, headers=key)
        assert bad_phase.status_code == 400
        assert "Exploded" in bad_phase.json()["error"]["message"]
        bad_body = client.post(f"{base}/migrations", content=b"{not json", headers=key)
        assert bad_body.status_code == 400
        migrated = migration_id("i-0e2e0000000000001")  # migrated by the first test of this module
        refused = client.post(f"{base}/migrations/{migrated}/cancel", json={}, headers=key)
        assert refused.status_code == 409
        assert "never cancel a migration failover" in refused.json()["error"]["message"]
        wave = client.post(f"{base}/waves/e2e/cutover", json={"surprise": True}, headers=key)
        assert wave.status_code == 400
        assert "surprise" in " ".join(wave.json()["error"]["problems"])
        unknown = client.post(f"{base}/waves/no-such-wave/cutover", json={}, headers=key)
        assert unknown.status_code == 404
        assert unknown.json()["error"]["code"] == "WaveNotFound"
        openapi = client.get(f"{base}/openapi.json", headers=key).json()
        assert openapi["openapi"].startswith("3.")
        assert "/migrations/{migration_id}/cutover" in " ".join(openapi["paths"])
        page = client.get(f"{base}/status", headers=key)
        assert page.status_code == 200
        assert "i-0e2e0000000000001" in page.text


def test_the_instance_s_checks_run_in_the_vm_before_the_commit(stack: tuple[Stack, StackSettings]) -> None:
    """Issue 18: aws2azure:check-tcp / check-http reach the gate in the request: one Run Command in the VM, its
    result read on a later look (no second run in flight), then the commit. A second machine whose port 443 does
    not answer (the simulator's guest fault) is rolled back after CHECK_FAILED_RUNS runs, never committed."""
    _, settings = stack
    assert settings.asr is not None
    assert settings.azurite is not None
    sim = SimulatorControl.from_endpoint(settings.asr)
    api, queue = api_of(settings), intake_queue(settings)
    checks = {"tcp_ports": [443], "http_url": "http://localhost:8080/health"}
    healthy, broken = "i-0e2e0000000000003", "i-0e2e0000000000004"
    healthy_item = sim.seed_machine("10.20.0.13", "Linux", "Ubuntu 22.04 LTS", [64], friendly_name=healthy)
    broken_item = sim.seed_machine("10.20.0.14", "Windows", "Windows Server 2022", [64], friendly_name=broken)
    sim.vm_fault("10.20.0.14", check_fail=("443",))
    for instance, ip, os_family in ((healthy, "10.20.0.13", "linux"), (broken, "10.20.0.14", "windows")):
        request = {"private_ip": ip, "os_family": os_family, "request_id": f"r-{instance}", "checks": checks}
        send_event(queue, "MigrationRequested", instance, request)
    for instance in (healthy, broken):
        wait_for(lambda i=instance: phase_of(api, i) == "AwaitingCutover", what="AwaitingCutover")  # type: ignore[misc]
        send_event(queue, "FailoverRequested", instance, {"requested_by": "schedule", "source_stopped": True})
    wait_for(lambda: phase_of(api, healthy) == "Migrated", timeout=120, what="Migrated")
    wait_for(lambda: phase_of(api, broken) == "RolledBack", timeout=120, what="RolledBack")

    store = TableStore(TableServiceClient.from_connection_string(settings.azurite.connection_string))
    record = store.get(migration_id(healthy))
    assert record.validation is not None
    assert record.validation.checks == ["tcp 443: ok (listening)", "http http://localhost:8080/health: ok (HTTP 200)"]

    def runs(item: str) -> list[int]:
        return [r.status for r in sim.requests() if r.operation == "VirtualMachines_RunCommand" and r.machine == item]

    assert runs(healthy_item) == [202]
    stats = sim.stats()
    assert stats.commits_started.get(healthy_item) == 1

    failed = store.get(migration_id(broken))
    assert "check tcp 443: FAILED (not listening)" in failed.reason
    assert stats.commits_started.get(broken_item, 0) == 0
    broken_runs = [
        r for r in sim.requests() if r.operation == "VirtualMachines_RunCommand" and r.machine == broken_item
    ]
    assert [r.status for r in broken_runs] == [202, 202, 202], broken_runs
    kinds = [e.kind for e in store.list_events(migration_id(broken))]
    assert "ValidationFailed" in kinds
