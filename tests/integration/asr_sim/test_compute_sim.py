"""The simulator's Microsoft.Compute surface (the failed-over VM's instance view) through azure-mgmt-compute, and the
product's VmInspector adapter against it: 404 ResourceNotFound before a failover, a running VM with a Ready agent
after it, and a machine's VM made unhealthy or slow by a fault."""

from __future__ import annotations

from typing import Any

import pytest
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from azure.mgmt.compute import ComputeManagementClient

from functions.adapters.compute import ComputeVmInspector
from tests.integration.asr_sim.support import AsrDriver, LocalCredential, raw_json

# The keys of the official example's answer (azure-rest-api-specs, Microsoft.Compute ComputeRP/stable/2024-07-01/
# examples/virtualMachineExamples/VirtualMachine_Get_InstanceView.json); the simulator serves a subset.
EXAMPLE_KEYS = {"platformUpdateDomain", "platformFaultDomain", "computerName", "osName", "osVersion", "vmAgent",
                "disks", "bootDiagnostics", "extensions", "hyperVGeneration", "patchStatus", "isVMInStandbyPool",
                "statuses"}  # fmt: skip
STATUS_KEYS = {"code", "level", "displayStatus", "message", "time"}


def compute_client(asr: AsrDriver, subscription: str | None = None) -> ComputeManagementClient:
    return ComputeManagementClient(LocalCredential(), subscription or asr.endpoint.subscription_id,
                                   base_url=asr.endpoint.base_url, connection_verify=asr.endpoint.ca_cert,
                                   retry_total=0)  # fmt: skip


def inspector(asr: AsrDriver) -> ComputeVmInspector:
    return ComputeVmInspector(LocalCredential(), base_url=asr.endpoint.base_url, ca_bundle=asr.endpoint.ca_cert)


def vm_id(asr: AsrDriver, name: str) -> str:
    return (f"/subscriptions/{asr.endpoint.subscription_id}/resourceGroups/aws2azure-target/providers/"
            f"Microsoft.Compute/virtualMachines/{name}")  # fmt: skip


def failed_over(asr: AsrDriver, ip: str, item: str) -> str:
    """Seed, protect and fail over one machine; return its VM's name (the enable body's targetVmName)."""
    machine = asr.seed(ip)
    asr.protect(item, machine)
    asr.run(asr.client.replication_protected_items.begin_unplanned_failover, item, asr.failover_body())
    return f"vm-{machine[:8]}"


def test_no_vm_before_the_failover_then_a_running_one_with_a_ready_agent(asr: AsrDriver) -> None:
    machine = asr.seed("10.40.0.1")
    asr.protect("vm-a", machine)
    name = f"vm-{machine[:8]}"
    client = compute_client(asr)
    with pytest.raises(ResourceNotFoundError) as raised:
        client.virtual_machines.instance_view("aws2azure-target", name)
    assert raised.value.error is not None
    assert raised.value.error.code == "ResourceNotFound"
    before = inspector(asr).inspect(vm_id(asr, name))
    assert not before.found
    assert before.verdict == "pending"

    asr.run(asr.client.replication_protected_items.begin_unplanned_failover, "vm-a", asr.failover_body())
    body: dict[str, Any] = client.virtual_machines.instance_view("aws2azure-target", name, cls=raw_json)  # type: ignore[assignment]
    assert set(body) <= EXAMPLE_KEYS
    assert all(set(status) <= STATUS_KEYS for status in body["statuses"] + body["vmAgent"]["statuses"])
    view = client.virtual_machines.instance_view("aws2azure-target", name)
    assert [s.code for s in view.statuses or []] == ["ProvisioningState/succeeded", "PowerState/running"]
    assert view.vm_agent is not None
    assert [s.display_status for s in view.vm_agent.statuses or []] == ["Ready"]
    health = inspector(asr).inspect(vm_id(asr, name))
    assert health.passed, health.findings
    assert (health.provisioning_state, health.power_state, health.agent_status) == ("succeeded", "running", "Ready")
    # The VM is the migration's result: it stays when replication is removed.
    asr.run(asr.client.replication_protected_items.begin_failover_commit, "vm-a")
    asr.run(asr.client.replication_protected_items.begin_delete, "vm-a",
            {"properties": {"disableProtectionReason": "MigrationComplete"}})  # fmt: skip
    assert inspector(asr).inspect(vm_id(asr, name)).passed
    stats = asr.control.stats()
    assert stats.per_operation.get("VirtualMachines_InstanceView", 0) >= 4


def test_an_unknown_resource_group_or_api_version_is_refused_like_arm(asr: AsrDriver) -> None:
    name = failed_over(asr, "10.40.0.2", "vm-b")
    with pytest.raises(ResourceNotFoundError):
        compute_client(asr).virtual_machines.instance_view("another-rg", name)
    with pytest.raises(HttpResponseError) as raised:
        compute_client(asr).virtual_machines.instance_view("aws2azure-target", name, api_version="2015-06-15")
    assert raised.value.status_code == 400
    assert raised.value.error is not None
    assert raised.value.error.code == "NoRegisteredProviderFound"


def test_a_machine_s_vm_can_be_made_stopped_agentless_or_slow(asr: AsrDriver) -> None:
    stopped = failed_over(asr, "10.40.0.3", "vm-c")
    asr.control.vm_fault("10.40.0.3", power_state="stopped")
    health = inspector(asr).inspect(vm_id(asr, stopped))
    assert health.verdict == "failed"
    assert "the VM is not running (PowerState/stopped)" in health.findings

    machine = asr.seed("10.40.0.4")
    asr.control.vm_fault("10.40.0.4", boot_seconds=600)
    asr.protect("vm-d", machine)
    asr.run(asr.client.replication_protected_items.begin_unplanned_failover, "vm-d", asr.failover_body())
    slow = vm_id(asr, f"vm-{machine[:8]}")
    first = inspector(asr).inspect(slow)
    assert first.verdict == "pending"
    assert first.power_state == "starting"
    assert first.agent_status is None
    asr.advance(600)
    assert inspector(asr).inspect(slow).passed

    machine = asr.seed("10.40.0.5")
    asr.control.vm_fault("10.40.0.5", agent_ready=False)
    asr.protect("vm-e", machine)
    asr.run(asr.client.replication_protected_items.begin_unplanned_failover, "vm-e", asr.failover_body())
    agentless = inspector(asr).inspect(vm_id(asr, f"vm-{machine[:8]}"))
    assert agentless.verdict == "pending"
    assert agentless.agent_status == "Not Ready"
    assert asr.control.faults().machines["10.40.0.3"].vm_power_state == "stopped"  # the other faults stay


def test_rollback_disables_an_uncommitted_failover_and_deletes_its_vm(asr: AsrDriver) -> None:
    """docs/ROLLBACK.md: a failed-over, uncommitted item offers DisableProtection; the removal keeps the VM, which
    DELETE removes (200), after which its instance view and a second DELETE are ARM's 404 ResourceNotFound."""
    name = failed_over(asr, "10.40.0.9", "vm-rb")
    item = asr.item("vm-rb").properties
    assert item is not None
    assert "DisableProtection" in (item.allowed_operations or [])
    assert "Commit" in (item.allowed_operations or [])  # not committed
    disable = {"properties": {"replicationProviderInput": {"instanceType": "DisableProtectionProviderSpecificInput"}}}
    asr.run(asr.client.replication_protected_items.begin_delete, "vm-rb", disable)
    vms = inspector(asr)
    assert vms.inspect(vm_id(asr, name)).found  # disabling protection does not delete the failed-over VM

    assert vms.delete(vm_id(asr, name)) is False  # deletion asked for
    assert vms.delete(vm_id(asr, name)) is True  # gone: its instance view is 404
    assert not vms.inspect(vm_id(asr, name)).found
    with pytest.raises(ResourceNotFoundError) as raised:
        compute_client(asr).virtual_machines.begin_delete("aws2azure-target", name, polling=False).result()
    assert raised.value.error is not None
    assert raised.value.error.code == "ResourceNotFound"
    assert asr.control.stats().per_operation.get("VirtualMachines_Delete") == 2
