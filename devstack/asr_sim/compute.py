"""Microsoft.Compute as a failover leaves it: the VM each successful failover created, and its instance view.

Path, answer shape and codes follow azure-rest-api-specs specification/compute/resource-manager/Microsoft.Compute
(``GET .../virtualMachines/{vmName}/instanceView``, VirtualMachines_InstanceView; the official example
ComputeRP/stable/2024-07-01/examples/virtualMachineExamples/VirtualMachine_Get_InstanceView.json): ``statuses``
with ``ProvisioningState/succeeded`` and ``PowerState/running``, ``vmAgent.statuses`` with displayStatus
``Ready``. A VM the simulator did not create answers ARM's 404 ``ResourceNotFound``. Faults per machine
(``FaultRule.vm_*``) make one machine's VM unhealthy or slow to start. docs/VALIDATION.md has the sources.

``DELETE .../virtualMachines/{vmName}`` (VirtualMachines_Delete: 200, 202 or 204 in the spec) removes the VM at
once and answers 200 (no long-running operation to poll); its instance view is then 404. An unknown VM is ARM's 404
``ResourceNotFound``. Rollback uses it (docs/ROLLBACK.md).

``POST .../virtualMachines/{vmName}/runCommand`` (VirtualMachines_RunCommand; the official example
ComputeRP/stable/2024-07-01/examples/runCommandExamples/VirtualMachineRunCommand.json) answers 202 with ``Location``
(``.../providers/Microsoft.Compute/locations/{location}/operations/{id}``, as the example's) and ``Retry-After``;
that location answers 202 while the run lasts (``FaultRule.vm_check_seconds`` virtual seconds) and then 200 with
``RunCommandResult`` (``value``: the example's StdOut and StdErr statuses). A body without a string ``commandId`` is
400; a second run while one is in progress is 409 Conflict (Learn: only one script can run at a time). The
simulator stands in for the guest too: it reads the checks from the script's first line
(``# aws2azure-checks ...``, migration/vmchecks.py) and prints each one ``ok`` unless ``FaultRule.vm_check_fail``
names it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from devstack.asr_sim.arm import iso
from devstack.asr_sim.errors import ArmError

if TYPE_CHECKING:
    from devstack.asr_sim.api import Call, Reply
    from devstack.asr_sim.contract import FaultRule
    from devstack.asr_sim.engine import Simulator

# The version azure-mgmt-compute 39.0.0 sends (its operations' default) and the official example's.
COMPUTE_API_VERSIONS = frozenset({"2026-04-01", "2024-07-01"})
VM_PATH = re.compile(
    r"^/subscriptions/(?P<subscription>[^/]+)/resourceGroups/(?P<resource_group>[^/]+)"
    r"/providers/Microsoft\.Compute/virtualMachines/(?P<vm>[^/]+)(?P<rest>/.*)?$",
    re.IGNORECASE,
)
INSTANCE_VIEW = "VirtualMachines_InstanceView"
DELETE = "VirtualMachines_Delete"
RUN_COMMAND = "VirtualMachines_RunCommand"
RUN_COMMAND_STATUS = "VirtualMachines_RunCommandStatus"
OPERATION_PATH = re.compile(
    r"^/subscriptions/(?P<subscription>[^/]+)/providers/Microsoft\.Compute/locations/(?P<location>[^/]+)"
    r"/operations/(?P<operation>[^/]+)/?$",
    re.IGNORECASE,
)
LOCATION = "westeurope"
# The command ids the gate sends (Learn's lists of Linux and Windows action Run Commands name both).
RUN_COMMAND_IDS = frozenset({"RunShellScript", "RunPowerShellScript"})
CHECK_HEADER = "# aws2azure-checks"
AGENT_VERSION = "2.7.41491.1102"
_RG_ID = re.compile(r"^/subscriptions/(?P<subscription>[^/]+)/resourceGroups/(?P<resource_group>[^/]+)/?$", re.I)


@dataclass
class FailedOverVm:
    """An Azure VM a failover created (it stays when replication is removed: the VM is the migration's result)."""

    subscription: str
    resource_group: str
    name: str
    machine_name: str
    created_at: datetime
    runs: list[RunCommandRun] = field(default_factory=list)

    @property
    def key(self) -> str:
        return vm_key(self.subscription, self.resource_group, self.name)


@dataclass
class RunCommandRun:
    """One run command in a VM: what it was sent and when it ends (on the virtual clock)."""

    operation: str
    command_id: str
    script: list[str]
    started_at: datetime
    ends_at: datetime


def vm_key(subscription: str, resource_group: str, name: str) -> str:
    return f"{subscription}/{resource_group}/{name}".lower()


def vm_from_settings(settings: dict[str, Any], machine_name: str, at: datetime) -> FailedOverVm | None:
    """The VM a failover of an item with these enable settings creates (targetResourceGroupId, targetVmName)."""
    found = _RG_ID.match(str(settings.get("targetResourceGroupId", "")))
    name = str(settings.get("targetVmName", ""))
    if found is None or not name:
        return None
    return FailedOverVm(found["subscription"], found["resource_group"], name, machine_name, at)


def route(method: str, path: str, api_version: str | None) -> tuple[str, dict[str, str]] | None:
    """(operation, params) for a Microsoft.Compute VM path, None if the path is not one; raises ARM's errors."""
    found = VM_PATH.match(path)
    operation = OPERATION_PATH.match(path)
    if found is None and operation is None:
        return None
    _check_api_version(api_version)
    if operation is not None:
        if method != "GET":
            raise ArmError(405, "MethodNotAllowed", f"The method '{method}' is not allowed on '{path}'.")
        return RUN_COMMAND_STATUS, {"subscription": operation["subscription"], "operation": operation["operation"]}
    assert found is not None
    rest = (found["rest"] or "").rstrip("/")
    params = {"subscription": found["subscription"], "resource_group": found["resource_group"], "vm": found["vm"]}
    if not rest:
        if method != "DELETE":
            raise ArmError(405, "MethodNotAllowed", f"The method '{method}' is not allowed on '{path}'.")
        return DELETE, params
    if rest.lower() == "/runcommand":
        if method != "POST":
            raise ArmError(405, "MethodNotAllowed", f"The method '{method}' is not allowed on '{path}'.")
        return RUN_COMMAND, params
    if rest.lower() != "/instanceview":
        raise ArmError(404, "InvalidResourceType", f"The resource path '{rest or '/'}' is not served by the simulator.")
    if method != "GET":
        raise ArmError(405, "MethodNotAllowed", f"The method '{method}' is not allowed on '{path}'.")
    return INSTANCE_VIEW, params


def _check_api_version(api_version: str | None) -> None:
    if not api_version:
        raise ArmError(
            400, "MissingApiVersionParameter", "The api-version query parameter (?api-version=) is required."
        )
    if api_version not in COMPUTE_API_VERSIONS:
        raise ArmError(
            400,
            "NoRegisteredProviderFound",
            f"No registered resource provider found for API version '{api_version}' for type 'virtualMachines'. "
            f"The supported api-versions are '{', '.join(sorted(COMPUTE_API_VERSIONS))}'.",
        )


def machine_of(sim: Simulator, params: dict[str, str]) -> str | None:
    if "vm" not in params:
        found = _run_of(sim, params.get("operation", ""))
        return found[0].machine_name if found is not None else None
    vm = sim.vms.get(vm_key(params["subscription"], params["resource_group"], params["vm"]))
    return vm.machine_name if vm is not None else None


def _run_of(sim: Simulator, operation: str) -> tuple[FailedOverVm, RunCommandRun] | None:
    for vm in sim.vms.values():
        for run in vm.runs:
            if run.operation == operation:
                return vm, run
    return None


def _not_found(p: dict[str, str]) -> ArmError:
    return ArmError(
        404,
        "ResourceNotFound",
        f"The Resource 'Microsoft.Compute/virtualMachines/{p['vm']}' under resource group "
        f"'{p['resource_group']}' was not found. For more details please go to https://aka.ms/ARMResourceNotFoundFix",
    )


def instance_view(call: Call) -> Reply:
    from devstack.asr_sim.api import Reply

    p = call.params
    vm = call.sim.vms.get(vm_key(p["subscription"], p["resource_group"], p["vm"]))
    if vm is None:
        raise _not_found(p)
    return Reply(200, render_instance_view(vm, call.sim.machine_rule(vm.machine_name), call.now))


def delete(call: Call) -> Reply:
    from devstack.asr_sim.api import Reply

    p = call.params
    key = vm_key(p["subscription"], p["resource_group"], p["vm"])
    if key not in call.sim.vms:
        raise _not_found(p)
    del call.sim.vms[key]
    return Reply(200, None)


def run_command(call: Call) -> Reply:
    """Start a run command (202 + Location), unless the body is wrong (400) or one is in progress (409)."""
    from devstack.asr_sim.api import Reply

    p = call.params
    vm = call.sim.vms.get(vm_key(p["subscription"], p["resource_group"], p["vm"]))
    if vm is None:
        raise _not_found(p)
    body = call.body if isinstance(call.body, dict) else {}
    command_id = body.get("commandId")
    if not isinstance(command_id, str) or not command_id:
        raise ArmError(400, "InvalidParameter", "Required parameter 'commandId' is missing (null).")
    if command_id not in RUN_COMMAND_IDS:
        raise ArmError(400, "InvalidParameter", f"The command id '{command_id}' is not served by the simulator.")
    script = body.get("script", [])
    if not isinstance(script, list) or not all(isinstance(line, str) for line in script):
        raise ArmError(400, "InvalidParameter", "The value of parameter 'script' is invalid: a list of strings.")
    unknown = set(body) - {"commandId", "script", "parameters"}
    if unknown:
        raise ArmError(400, "InvalidRequestContent", f"The request content has unknown members {sorted(unknown)}.")
    if any(call.now < run.ends_at for run in vm.runs):
        raise ArmError(409, "Conflict",
                       "Run command extension execution is in progress. Please wait for completion before invoking "
                       "a run command.")  # fmt: skip
    rule = call.sim.machine_rule(vm.machine_name)
    seconds = rule.vm_check_seconds if rule is not None else 20
    run = RunCommandRun(f"{vm.name}-runcommand-{len(vm.runs) + 1}", command_id, list(script), call.now,
                        call.now + timedelta(seconds=seconds))  # fmt: skip
    vm.runs.append(run)
    return Reply(202, None, _run_headers(call, p["subscription"], run))


def _run_headers(call: Call, subscription: str, run: RunCommandRun) -> dict[str, str]:
    version = call.query.get("api-version", "2024-07-01")
    return {
        "Location": f"{call.base_url}/subscriptions/{subscription}/providers/Microsoft.Compute/locations/{LOCATION}"
        f"/operations/{run.operation}?monitor=true&api-version={version}",
        "Retry-After": str(call.sim.config.lro_retry_after_seconds),
    }


def run_command_status(call: Call) -> Reply:
    """202 while the run lasts, then 200 with its RunCommandResult."""
    from devstack.asr_sim.api import Reply

    found = _run_of(call.sim, call.params["operation"])
    if found is None:
        raise ArmError(404, "NotFound", f"The operation '{call.params['operation']}' was not found.")
    vm, run = found
    if call.now < run.ends_at:
        return Reply(202, None, _run_headers(call, call.params["subscription"], run))
    rule = call.sim.machine_rule(vm.machine_name)
    stdout = "\n".join(guest_output(run.script, rule.vm_check_fail if rule is not None else ()))
    return Reply(200, {"value": [
        {"code": "ComponentStatus/StdOut/succeeded", "level": "Info", "displayStatus": "Provisioning succeeded",
         "message": stdout},
        {"code": "ComponentStatus/StdErr/succeeded", "level": "Info", "displayStatus": "Provisioning succeeded",
         "message": ""},
    ]})  # fmt: skip


def guest_output(script: list[str], failing: tuple[str, ...]) -> list[str]:
    """What the gate's script prints in the simulated guest: every check it names ok, except the failing ones."""
    if not script or not script[0].startswith(CHECK_HEADER):
        return []
    lines: list[str] = []
    for word in script[0][len(CHECK_HEADER) :].split():
        kind, _, value = word.partition("=")
        targets = value.split(",") if kind == "tcp" else [value] if kind == "http" else []
        for target in targets:
            if target in failing:
                detail = "not listening" if kind == "tcp" else "HTTP 503"
                lines.append(f"aws2azure-check {kind} {target} fail {detail}")
            else:
                lines.append(f"aws2azure-check {kind} {target} ok " + ("listening" if kind == "tcp" else "HTTP 200"))
    return lines


def render_instance_view(vm: FailedOverVm, rule: FaultRule | None, now: datetime) -> dict[str, Any]:
    """The VM's instance view now: starting until its boot time has passed, then running with a Ready agent,
    unless the machine's fault rule says otherwise."""
    boot = timedelta(seconds=rule.vm_boot_seconds if rule is not None else 0)
    booted = now >= vm.created_at + boot
    power = (rule.vm_power_state if rule is not None else None) or ("running" if booted else "starting")
    provisioning = (rule.vm_provisioning_state if rule is not None else None) or "succeeded"
    agent_ready = booted and power == "running" and (rule is None or rule.vm_agent_ready)
    statuses: list[dict[str, Any]] = [
        {"code": f"ProvisioningState/{provisioning}", "level": "Error" if provisioning == "failed" else "Info",
         "displayStatus": "Provisioning failed" if provisioning == "failed" else "Provisioning succeeded",
         "time": iso(vm.created_at)},
        {"code": f"PowerState/{power}", "level": "Info", "displayStatus": f"VM {power}"},
    ]  # fmt: skip
    body: dict[str, Any] = {
        "computerName": vm.name,
        "osName": "",
        "hyperVGeneration": "V1",
        "statuses": statuses,
        "bootDiagnostics": {
            "consoleScreenshotBlobUri": f"https://bootdiag.blob.core.windows.net/bootdiagnostics-{vm.name}/{vm.name}.screenshot.bmp",
            "serialConsoleLogBlobUri": f"https://bootdiag.blob.core.windows.net/bootdiagnostics-{vm.name}/{vm.name}.serialconsole.log",
        },
    }
    if booted and power == "running":
        # The guest agent reports only once the guest has booted.
        body["vmAgent"] = {
            "vmAgentVersion": AGENT_VERSION,
            "statuses": [
                {"code": "ProvisioningState/succeeded", "level": "Info", "displayStatus": "Ready",
                 "message": "GuestAgent is running and accepting new configurations.", "time": iso(now)}
                if agent_ready else
                {"code": "ProvisioningState/Unavailable", "level": "Warning", "displayStatus": "Not Ready",
                 "message": "The simulator's injected fault: the guest agent is not ready.", "time": iso(now)}
            ],
        }  # fmt: skip
    return body


HANDLERS = {INSTANCE_VIEW: instance_view, DELETE: delete, RUN_COMMAND: run_command,
            RUN_COMMAND_STATUS: run_command_status}  # fmt: skip
