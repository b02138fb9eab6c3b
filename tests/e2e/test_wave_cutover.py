"""A wave cut over with recovery plans, one of whose members ASR no longer has (issue 19).

Someone removes a member's replicated item in the vault outside aws2azure. Before, the wave's one plan
then failed on that member and the others were never told: they waited for a cutover forever. Now the
wave checks each member against ASR before making a plan: the others migrate, that one is left out
with its reason.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from typing import Literal

import pytest

from aws2azure.api_client import MigrationApi
from devstack.asr_sim.control import SimulatorControl
from devstack.launcher import Stack
from devstack.settings import StackSettings
from tests.e2e.support import api_of, intake_queue, migration_id, phase_of, send_event, wait_for
from tests.integration.asr_sim.support import make_client

pytestmark = [pytest.mark.integration, pytest.mark.e2e]
WAVE = "wave-gone"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Stack, StackSettings]]:
    stack = Stack(tmp_path_factory.mktemp("wave-stack"))
    settings = stack.up()
    yield stack, settings
    stack.down()


def _all_in(api: MigrationApi, instances: list[str], phases: set[str]) -> bool:
    return all(phase_of(api, instance) in phases for instance in instances)


def test_a_member_deleted_from_asr_is_left_out_and_the_others_migrate(stack: tuple[Stack, StackSettings]) -> None:
    _, settings = stack
    assert settings.asr is not None
    sim = SimulatorControl.from_endpoint(settings.asr)
    api, queue = api_of(settings), intake_queue(settings)
    instances = [f"i-0aaa{n:013x}" for n in range(3)]
    for n, instance in enumerate(instances):
        ip = f"10.72.0.{n + 10}"
        sim.seed_machine(ip, "Linux", "Ubuntu 22.04 LTS", [32], friendly_name=instance)
        send_event(queue, "MigrationRequested", instance,
                   {"private_ip": ip, "os_family": "linux", "wave": WAVE, "request_id": f"r-wave-{n}"})  # fmt: skip
    wait_for(functools.partial(_all_in, api, instances, {"AwaitingCutover"}), timeout=300, what="AwaitingCutover")

    # Out of band: the vault's replicated item of one member is purged (the portal's "remove").
    gone = instances[1]
    item = api.get(migration_id(gone))["migration"]["protected_item_name"]
    infra = sim.infrastructure()
    client = make_client(settings.asr)
    [container] = list(client.replication_protection_containers.list_by_replication_fabrics(
        infra.resource_group, infra.vault_name, infra.fabric_name))  # fmt: skip
    client.replication_protected_items.begin_purge(
        infra.resource_group, infra.vault_name, infra.fabric_name, str(container.name), item, polling=False
    )
    wait_for(lambda: item not in {m.name for m in client.replication_protected_items.list(
        infra.resource_group, infra.vault_name)}, timeout=300, what="the item purged")  # fmt: skip

    api.cut_over_wave(WAVE, source_stopped=True)
    others = [i for i in instances if i != gone]
    wait_for(functools.partial(_all_in, api, others, {"Migrated"}), timeout=300, what="the others Migrated")

    events = api.get(migration_id(gone))["events"]
    left_out = [e for e in events if e["kind"] == "LeftOutOfWave"]
    assert left_out, [(e["kind"], e["message"]) for e in events]
    # Depending on how much virtual time the purge took, the claim found the item gone, or the member's own
    # health check had already found it missing and failed it: either way it is left out, and says why.
    why = left_out[-1]["message"]
    assert f"ASR has no replicated item {item}" in why or "not found" in why.lower(), why
    assert phase_of(api, gone) != "Migrated"
    # Exactly one recovery plan failover, and it did not include the purged item.
    stats = sim.stats()
    assert stats.failover_requests.get(item) is None


def test_a_plan_whose_member_fails_its_gate_commits_only_the_healthy_members(
    stack: tuple[Stack, StackSettings],
) -> None:
    _, settings = stack
    assert settings.asr is not None
    sim = SimulatorControl.from_endpoint(settings.asr)
    api, queue = api_of(settings), intake_queue(settings)
    wave = "wave-gate"
    instances = [f"i-0bbb{n:013x}" for n in range(3)]
    items = {}
    for n, instance in enumerate(instances):
        ip = f"10.73.0.{n + 10}"
        items[instance] = sim.seed_machine(ip, "Linux", "Ubuntu 22.04 LTS", [32], friendly_name=instance)
        send_event(queue, "MigrationRequested", instance,
                   {"private_ip": ip, "os_family": "linux", "wave": wave, "request_id": f"r-gate-{n}"})  # fmt: skip
    bad = instances[2]
    sim.vm_fault("10.73.0.12", power_state="stopped")  # the VM the plan's failover creates for it does not run
    wait_for(functools.partial(_all_in, api, instances, {"AwaitingCutover"}), timeout=300, what="AwaitingCutover")

    api.cut_over_wave(wave, source_stopped=True)
    good = [i for i in instances if i != bad]
    wait_for(functools.partial(_all_in, api, good, {"Migrated"}), timeout=300, what="the healthy members Migrated")
    # Its own gate fails after the plan releases it: rolled back (ROLLBACK_ON_FAILED_VALIDATION, docs/ROLLBACK.md).
    wait_for(lambda: phase_of(api, bad) == "RolledBack", timeout=120, what="the unhealthy member RolledBack")

    stats = sim.stats()
    assert all(stats.failovers_started.get(items[i]) == 1 for i in instances), stats.failovers_started
    # The plan was not committed; each healthy member was validated again and committed alone, the bad one never.
    assert stats.commits_started.get(items[bad], 0) == 0, stats.commits_started
    assert all(stats.commits_started.get(items[i]) == 1 for i in good), stats.commits_started
    operations = [r.operation for r in sim.requests() if f"aws2azure-{wave}-" in r.path]
    assert "ReplicationRecoveryPlans_UnplannedFailover" in operations
    assert "ReplicationRecoveryPlans_FailoverCommit" not in operations
    record = api.get(migration_id(bad))
    assert "PowerState/stopped" in record["migration"]["reason"]
    assert "rolled back before commit" in record["migration"]["reason"]
    assert any(e["kind"] == "ValidationFailed" for e in record["events"])
    assert any(e["kind"] == "FailedOverVmDeleted" for e in record["events"])


def test_a_plan_runs_each_member_s_checks_in_its_vm_then_commits_the_plan(stack: tuple[Stack, StackSettings]) -> None:
    """Issue 18: the wave's gate (validate_plan) uses the same step per member, so aws2azure:check-tcp / check-http
    run in each member's VM (one Run Command each, polled by later looks) before the plan is committed whole."""
    _, settings = stack
    assert settings.asr is not None
    sim = SimulatorControl.from_endpoint(settings.asr)
    api, queue = api_of(settings), intake_queue(settings)
    wave = "wave-checks"
    instances = [f"i-0ccc{n:013x}" for n in range(2)]
    items = {}
    checks = {"tcp_ports": [22], "http_url": "http://localhost/healthz"}
    machines: list[tuple[str, Literal["Linux", "Windows"], str]] = [
        ("linux", "Linux", "Ubuntu 22.04 LTS"), ("windows", "Windows", "Windows Server 2022")]  # fmt: skip
    for n, (instance, (os_family, os_type, image)) in enumerate(zip(instances, machines, strict=True)):
        ip = f"10.74.0.{n + 10}"
        items[instance] = sim.seed_machine(ip, os_type, image, [32], friendly_name=instance)
        send_event(queue, "MigrationRequested", instance,
                   {"private_ip": ip, "os_family": os_family, "wave": wave, "request_id": f"r-checks-{n}",
                    "checks": checks})  # fmt: skip
    wait_for(functools.partial(_all_in, api, instances, {"AwaitingCutover"}), timeout=300, what="AwaitingCutover")

    api.cut_over_wave(wave, source_stopped=True)
    wait_for(functools.partial(_all_in, api, instances, {"Migrated"}), timeout=300, what="the members Migrated")

    operations = [r.operation for r in sim.requests() if f"aws2azure-{wave}-" in r.path]
    assert "ReplicationRecoveryPlans_FailoverCommit" in operations  # committed as a plan, not member by member
    for instance in instances:
        runs = [r.status for r in sim.requests()
                if r.operation == "VirtualMachines_RunCommand" and r.machine == items[instance]]  # fmt: skip
        assert runs == [202], (instance, runs)
        record = api.get(migration_id(instance))["migration"]
        assert record["validation"]["checks"] == [
            "tcp 22: ok (listening)",
            "http http://localhost/healthz: ok (HTTP 200)",
        ]
