"""The failed-over VM, read through Microsoft.Compute (azure-mgmt-compute): the validation gate's one look.

``ComputeManagementClient.virtual_machines.instance_view(resource_group, vm_name)`` is
``GET .../providers/Microsoft.Compute/virtualMachines/{vmName}/instanceView`` (VirtualMachines_InstanceView):
its ``statuses`` carry ``ProvisioningState/<state>`` and ``PowerState/<state>``, ``vm_agent.statuses`` the guest
agent's displayStatus (``Ready``), ``boot_diagnostics`` where the console screenshot and serial log are (and a
``status`` when they could not be taken). docs/VALIDATION.md has the sources.

Rollback before commit deletes the failed-over VM: ``virtual_machines.begin_delete(resource_group, vm_name)`` is
``DELETE .../providers/Microsoft.Compute/virtualMachines/{vmName}`` (VirtualMachines_Delete, answers 200/202/204, a
long-running operation); sent once without waiting (``polling=False``), the VM is gone when its instance view is 404.
Its disks and NICs are not deleted (docs/ROLLBACK.md).
"""

from __future__ import annotations

import re
import threading
from typing import TYPE_CHECKING, Any

from azure.mgmt.compute import ComputeManagementClient
from azure.mgmt.compute import models as compute

from functions.adapters.asr import SDK_RETRY_SETTINGS, translated_errors
from migration.errors import InvalidInput, NotFound
from migration.ports import VmHealth

if TYPE_CHECKING:
    from azure.core.credentials import TokenCredential

VM_ID = re.compile(
    r"^/subscriptions/(?P<subscription>[^/]+)/resourceGroups/(?P<resource_group>[^/]+)"
    r"/providers/Microsoft\.Compute/virtualMachines/(?P<vm>[^/]+)/?$",
    re.IGNORECASE,
)


def parse_vm_id(vm_id: str) -> tuple[str, str, str]:
    found = VM_ID.match(vm_id)
    if found is None:
        raise InvalidInput(f"{vm_id!r} is not a Microsoft.Compute virtual machine id")
    return found["subscription"], found["resource_group"], found["vm"]


def _state(statuses: list[compute.InstanceViewStatus] | None, prefix: str) -> str | None:
    for status in statuses or []:
        code = status.code or ""
        if code.lower().startswith(prefix.lower() + "/"):
            return code.split("/", 1)[1]
    return None


def health_from(vm_id: str, view: compute.VirtualMachineInstanceView) -> VmHealth:
    """The verdict on one instance view (pure; unit-tested without a server)."""
    agent = view.vm_agent
    agent_status = agent.statuses[0] if agent is not None and agent.statuses else None
    boot = view.boot_diagnostics
    boot_words = ""
    if boot is not None:
        if boot.status is not None and (boot.status.message or boot.status.display_status):
            boot_words = f"{boot.status.display_status or boot.status.code}: {boot.status.message or ''}".rstrip(": ")
        elif boot.serial_console_log_blob_uri:
            boot_words = f"serial log at {boot.serial_console_log_blob_uri}"
    return VmHealth.judge(
        vm_id,
        provisioning_state=_state(view.statuses, "ProvisioningState"),
        power_state=_state(view.statuses, "PowerState"),
        agent_status=agent_status.display_status if agent_status is not None else None,
        agent_message=(agent_status.message or "") if agent_status is not None else "",
        boot_diagnostics=boot_words,
    )


class ComputeVmInspector:
    """VmInspector over azure-mgmt-compute: one client per subscription (the target VM's may not be the vault's)."""

    def __init__(self, credential: TokenCredential, *, base_url: str | None = None,
                 ca_bundle: str | None = None) -> None:  # fmt: skip
        self._credential = credential
        self._options: dict[str, Any] = dict(SDK_RETRY_SETTINGS)
        if base_url:
            self._options["base_url"] = base_url
        if ca_bundle:
            self._options["connection_verify"] = ca_bundle
        self._clients: dict[str, ComputeManagementClient] = {}
        self._lock = threading.Lock()

    def _client(self, subscription: str) -> ComputeManagementClient:
        with self._lock:
            client = self._clients.get(subscription)
            if client is None:
                client = ComputeManagementClient(self._credential, subscription, **self._options)
                self._clients[subscription] = client
            return client

    def inspect(self, vm_id: str) -> VmHealth:
        subscription, resource_group, name = parse_vm_id(vm_id)
        try:
            with translated_errors(f"read the instance view of VM {name}"):
                view = self._client(subscription).virtual_machines.instance_view(resource_group, name)
        except NotFound:
            return VmHealth.not_found(vm_id)
        return health_from(vm_id, view)

    def delete(self, vm_id: str) -> bool:
        """True when the VM is gone; else ask for its deletion (once: not again while ARM says it is deleting)."""
        subscription, resource_group, name = parse_vm_id(vm_id)
        client = self._client(subscription)
        try:
            with translated_errors(f"read the instance view of VM {name}"):
                view = client.virtual_machines.instance_view(resource_group, name)
            if (_state(view.statuses, "ProvisioningState") or "").lower() == "deleting":
                return False
            with translated_errors(f"delete VM {name}"):
                client.virtual_machines.begin_delete(resource_group, name, polling=False)
        except NotFound:
            return True
        return False

    def close(self) -> None:
        with self._lock:
            for client in self._clients.values():
                client.close()
            self._clients.clear()
