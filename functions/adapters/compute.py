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

The operator's checks run through ``virtual_machines.begin_run_command(resource_group, vm_name, RunCommandInput)``
= ``POST .../virtualMachines/{vmName}/runCommand`` (VirtualMachines_RunCommand: 200 with the result, or 202 with
``Location``; a long-running operation). It is sent with a polling method that reads only the first answer
(``_NoWait``) and its continuation token is kept; a later look resumes it with one that makes one status request
and returns (``_OneLook``), so an activity never waits for the script and never sends a second run while one is in
flight.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from azure.core.exceptions import HttpResponseError
from azure.core.polling.base_polling import BadResponse, BadStatus, OperationFailed
from azure.mgmt.compute import ComputeManagementClient
from azure.mgmt.compute import models as compute
from azure.mgmt.core.exceptions import ARMErrorFormat
from azure.mgmt.core.polling.arm_polling import ARMPolling

from functions.adapters.asr import SDK_RETRY_SETTINGS, translated_errors
from migration.errors import InvalidInput, NotFound
from migration.ports import CheckRun, VmHealth

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


class _NoWait(ARMPolling):
    """ARM polling that only reads the first answer (200 with the result, or 202 with where to look): the run is
    sent and the activity returns; the poller's continuation token (JSON: the first answer's status and headers)
    is what the record keeps."""

    def run(self) -> None:
        return


class _OneLook(ARMPolling):
    """ARM polling that makes one status request (when not finished yet) and returns: the poller's thread ends at
    once, so resuming a run command from its token is one GET, not a wait for the script."""

    def run(self) -> None:
        if self.finished():
            return
        try:
            self.update_status()
        except (BadStatus, BadResponse, OperationFailed) as exc:
            response = self._pipeline_response.http_response
            raise HttpResponseError(response=response, error_format=ARMErrorFormat) from exc


def output_of(result: compute.RunCommandResult) -> str:
    """Everything the script printed: the message of every status (StdOut and StdErr in the official example)."""
    return "\n".join(status.message or "" for status in result.value or [])


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

    def start_checks(self, vm_id: str, command_id: str, script: Sequence[str]) -> CheckRun:
        subscription, resource_group, name = parse_vm_id(vm_id)
        client = self._client(subscription)
        parameters = compute.RunCommandInput(command_id=command_id, script=list(script))
        with translated_errors(f"run the checks in VM {name}"):
            poller = client.virtual_machines.begin_run_command(resource_group, name, parameters, polling=_NoWait(0))
            poller.wait()
            status = poller.status().lower()
            if status == "succeeded":  # 200: finished at once, the answer is the result
                return CheckRun(state="done", output=output_of(poller.result()))
            token = poller.continuation_token()
        if status in ("failed", "canceled"):
            return CheckRun(state="not_run", error=f"the run command ended {status}")
        return CheckRun(state="running", token=token)

    def poll_checks(self, vm_id: str, token: str) -> CheckRun:
        subscription, resource_group, name = parse_vm_id(vm_id)
        client = self._client(subscription)
        with translated_errors(f"read the checks' run in VM {name}"):
            poller = client.virtual_machines.begin_run_command(
                resource_group, name, compute.RunCommandInput(command_id=""), continuation_token=token,
                polling=_OneLook(0),
            )  # fmt: skip
            poller.wait()
            status = poller.status().lower()
            if status == "succeeded":
                return CheckRun(state="done", output=output_of(poller.result()))
        if status in ("failed", "canceled"):
            return CheckRun(state="not_run", error=f"the run command ended {status}")
        return CheckRun(state="running", token=token)

    def close(self) -> None:
        with self._lock:
            for client in self._clients.values():
                client.close()
            self._clients.clear()
