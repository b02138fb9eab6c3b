"""What the stand-in knows and does: managed nodes, documents, commands and their invocations, on a clock.

Every limit and error code is botocore's ssm service model's (botocore/data/ssm/2014-11-06/service-2.json,
botocore 1.44.8): SendCommand ``InstanceIds`` at most 50, ``Comment`` at most 100, ``TimeoutSeconds`` 30..2592000,
errors InvalidDocument / InvalidInstanceId / DuplicateInstanceId / InvalidParameters / UnsupportedPlatformType;
GetCommandInvocation ``CommandId`` 36 characters, errors InvalidCommandId / InvalidPluginName /
InvocationDoesNotExist; DescribeInstanceInformation ``MaxResults`` 5..50, filter ``Values`` 1..100, errors
InvalidFilterKey / InvalidInstanceInformationFilterValue / InvalidNextToken / InvalidInstanceId.
"""

from __future__ import annotations

import re
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from devstack.ssm_sim.contract import FaultPlan, InvocationInfo, ManagedNode, SsmDocument

SEND_COMMAND_MAX_INSTANCES = 50
COMMENT_MAX = 100
TIMEOUT_MIN, TIMEOUT_MAX = 30, 2_592_000
DEFAULT_TIMEOUT_SECONDS = 3600  # SendCommand's documented default when TimeoutSeconds is absent
MAX_RESULTS_MIN, MAX_RESULTS_MAX = 5, 50
FILTER_VALUES_MAX = 100
STDOUT_MAX, STDERR_MAX = 24_000, 8_000  # GetCommandInvocation returns the first N characters
# The managed-node id pattern of the API reference (ListCommandInvocations InstanceId).
INSTANCE_ID = re.compile(r"(^i-(\w{8}|\w{17})$)|(^mi-\w{17}$)")
# CreateDocument Name: prefixes reserved by AWS (botocore ssm model, CreateDocumentRequest.Name).
RESERVED_DOCUMENT_PREFIXES = ("aws", "amazon", "amzn", "AWSEC2", "AWSConfigRemediation", "AWSSupport")
# InstanceInformationStringFilter keys the service accepts (the API reference's list for Filters).
STRING_FILTER_KEYS = frozenset(
    {"InstanceIds", "AgentVersion", "PingStatus", "PlatformTypes", "ActivationIds", "IamRole", "ResourceType",
     "AssociationStatus"}
)  # fmt: skip
PLUGIN_ACTIONS = {"aws:runShellScript": ("Linux", "MacOS"), "aws:runPowerShellScript": ("Windows",)}


class Clock(Protocol):
    def now(self) -> datetime: ...


class SsmError(Exception):
    """An error the service answers with: HTTP 400 and ``{"__type": code, "Message": ...}``."""

    def __init__(self, code: str, message: str = "", status: int = 400) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.status = status


@dataclass
class Step:
    name: str
    action: str
    platforms: tuple[str, ...]


@dataclass
class Invocation:
    command_id: str
    instance_id: str
    document: str
    comment: str
    requested: datetime
    due: datetime
    expires: datetime
    os: str
    steps: list[Step]
    fault: str | None
    status: str = "InProgress"
    status_details: str = "InProgress"
    response_code: int = -1
    started: datetime | None = None
    ended: datetime | None = None
    stdout: str = ""
    stderr: str = ""
    registered: bool = False


@dataclass
class Engine:
    clock: Clock
    # Called when an install on a machine completes (the appliance registers it); raises if it could not.
    register: Callable[[ManagedNode], None] | None = None
    nodes: dict[str, ManagedNode] = field(default_factory=dict)
    documents: dict[str, list[Step]] = field(default_factory=dict)
    # document name -> parameter name -> has a default
    parameters: dict[str, dict[str, bool]] = field(default_factory=dict)
    invocations: dict[tuple[str, str], Invocation] = field(default_factory=dict)
    commands: dict[str, dict[str, Any]] = field(default_factory=dict)
    faults: FaultPlan = field(default_factory=FaultPlan)
    lock: threading.RLock = field(default_factory=threading.RLock)

    # ------------------------------------------------------------------ control

    def add_node(self, node: ManagedNode) -> None:
        with self.lock:
            self.nodes[node.instance_id] = node

    def add_document(self, document: SsmDocument) -> list[str]:
        content = document.content
        if document.name.lower().startswith(tuple(p.lower() for p in RESERVED_DOCUMENT_PREFIXES)):
            raise SsmError("ValidationException", f"document names may not start with {RESERVED_DOCUMENT_PREFIXES}")
        if content.get("schemaVersion") != "2.2":
            raise SsmError("InvalidDocumentSchemaVersion", "a Command document here must be schemaVersion 2.2")
        steps: list[Step] = []
        for raw in content.get("mainSteps") or []:
            action, name = raw.get("action"), raw.get("name")
            if action not in PLUGIN_ACTIONS or not isinstance(name, str) or not name:
                raise SsmError("InvalidDocumentContent", f"unsupported step {raw!r}")
            platforms = PLUGIN_ACTIONS[action]
            condition = (raw.get("precondition") or {}).get("StringEquals")
            if condition is not None:
                if condition[0] != "platformType":
                    raise SsmError("InvalidDocumentContent", f"precondition {condition!r}")
                platforms = tuple(p for p in platforms if p == condition[1])
            steps.append(Step(name, action, platforms))
        if not steps:
            raise SsmError("InvalidDocumentContent", "mainSteps is empty")
        declared = content.get("parameters") or {}
        with self.lock:
            self.documents[document.name] = steps
            self.parameters[document.name] = {k: "default" in (v or {}) for k, v in declared.items()}
        return [s.name for s in steps]

    def set_faults(self, plan: FaultPlan) -> None:
        with self.lock:
            self.faults = plan

    def info(self) -> list[InvocationInfo]:
        with self.lock:
            self.advance()
            return [
                InvocationInfo(command_id=i.command_id, instance_id=i.instance_id, document_name=i.document,
                               status=i.status, registered_with_appliance=i.registered)
                for i in self.invocations.values()
            ]  # fmt: skip

    # ------------------------------------------------------------------ the API

    def describe_instance_information(self, body: dict[str, Any]) -> dict[str, Any]:
        if body.get("InstanceInformationFilterList") and body.get("Filters"):
            raise SsmError("InvalidFilterKey", "use InstanceInformationFilterList or Filters, not both")
        max_results = body.get("MaxResults")
        if max_results is not None and not MAX_RESULTS_MIN <= int(max_results) <= MAX_RESULTS_MAX:
            raise SsmError("ValidationException", f"MaxResults must be between {MAX_RESULTS_MIN} and {MAX_RESULTS_MAX}")
        filters: list[tuple[str, list[str]]] = []
        for raw in body.get("Filters") or []:
            key, values = raw.get("Key"), raw.get("Values") or []
            if key not in STRING_FILTER_KEYS and not str(key).startswith("tag:"):
                raise SsmError("InvalidFilterKey", f"the filter key {key!r} is not valid")
            if not 1 <= len(values) <= FILTER_VALUES_MAX:
                raise SsmError("InvalidInstanceInformationFilterValue", f"{key}: 1 to {FILTER_VALUES_MAX} values")
            filters.append((key, [str(v) for v in values]))
        for raw in body.get("InstanceInformationFilterList") or []:
            key, values = raw.get("key"), raw.get("valueSet") or []
            if key not in {"InstanceIds", "AgentVersion", "PingStatus", "PlatformTypes", "ActivationIds",
                           "IamRole", "ResourceType", "AssociationStatus"}:  # fmt: skip
                raise SsmError("InvalidFilterKey", f"the filter key {key!r} is not valid")
            if not 1 <= len(values) <= FILTER_VALUES_MAX:
                raise SsmError("InvalidInstanceInformationFilterValue", f"{key}: 1 to {FILTER_VALUES_MAX} values")
            filters.append((key, [str(v) for v in values]))
        for key, values in filters:
            if key == "InstanceIds":
                bad = [v for v in values if not INSTANCE_ID.match(v)]
                if bad:
                    raise SsmError("InvalidInstanceId", f"Instance Id {bad[0]} is not valid")
        with self.lock:
            nodes = sorted(self.nodes.values(), key=lambda n: n.instance_id)
        for key, values in filters:
            nodes = [n for n in nodes if _matches(n, key, values)]
        start = 0
        token = body.get("NextToken")
        if token:
            try:
                start = int(token)
            except ValueError:
                raise SsmError("InvalidNextToken", "The specified token is not valid") from None
        size = int(max_results or MAX_RESULTS_MAX)
        page = nodes[start : start + size]
        now = self.clock.now().timestamp()
        out: dict[str, Any] = {
            "InstanceInformationList": [
                {
                    "InstanceId": n.instance_id,
                    "PingStatus": n.ping_status,
                    "LastPingDateTime": now,
                    "AgentVersion": n.agent_version,
                    "IsLatestVersion": True,
                    "PlatformType": n.platform_type,
                    "PlatformName": n.platform_name,
                    "PlatformVersion": n.platform_version,
                    "ResourceType": "EC2Instance",
                    "IPAddress": n.ip_address,
                    "ComputerName": n.computer_name,
                }
                for n in page
            ]
        }
        if start + size < len(nodes):
            out["NextToken"] = str(start + size)
        return out

    def send_command(self, body: dict[str, Any]) -> dict[str, Any]:
        name = body.get("DocumentName")
        if not name:
            raise SsmError("ValidationException", "DocumentName is required")
        ids = list(body.get("InstanceIds") or [])
        if body.get("Targets"):
            raise SsmError("InvalidParameters", "Targets is not supported by this stand-in; pass InstanceIds")
        if not ids:
            raise SsmError("ValidationException", "InstanceIds or Targets is required")
        if len(ids) > SEND_COMMAND_MAX_INSTANCES:
            raise SsmError(
                "ValidationException",
                f"1 validation error detected: Value at 'instanceIds' failed to satisfy constraint: "
                f"Member must have length less than or equal to {SEND_COMMAND_MAX_INSTANCES}",
            )
        if len(set(ids)) != len(ids):
            raise SsmError("DuplicateInstanceId", "You can't specify a managed node ID in more than one request")
        comment = str(body.get("Comment", ""))
        if len(comment) > COMMENT_MAX:
            raise SsmError("ValidationException", f"Comment must be at most {COMMENT_MAX} characters")
        timeout = int(body.get("TimeoutSeconds", DEFAULT_TIMEOUT_SECONDS))
        if not TIMEOUT_MIN <= timeout <= TIMEOUT_MAX:
            raise SsmError("ValidationException", f"TimeoutSeconds must be between {TIMEOUT_MIN} and {TIMEOUT_MAX}")
        given = dict(body.get("Parameters") or {})
        with self.lock:
            self.advance()
            steps = self.documents.get(str(name))
            if steps is None:
                raise SsmError("InvalidDocument", "The specified SSM document doesn't exist.")
            declared = self.parameters[str(name)]
            unknown = sorted(set(given) - set(declared))
            missing = sorted(k for k, has_default in declared.items() if not has_default and k not in given)
            if unknown or missing:
                raise SsmError("InvalidParameters", f"unknown parameters {unknown}, missing parameters {missing}")
            for instance_id in ids:
                node = self.nodes.get(instance_id)
                if node is None:
                    raise SsmError("InvalidInstanceId", f"Instances [[{instance_id}]] not in a valid state")
                if not any(node.platform_type in s.platforms for s in steps):
                    raise SsmError("UnsupportedPlatformType", f"{name} has no step for {node.platform_type}")
            now = self.clock.now()
            command_id = str(uuid.uuid4())
            for instance_id in ids:
                node = self.nodes[instance_id]
                self.invocations[(command_id, instance_id)] = Invocation(
                    command_id=command_id,
                    instance_id=instance_id,
                    document=str(name),
                    comment=comment,
                    requested=now,
                    due=now + timedelta(seconds=self.faults.install_seconds),
                    expires=now + timedelta(seconds=timeout),
                    os=node.platform_type,
                    steps=steps,
                    fault=self.faults.instances.get(instance_id),
                    status="Pending" if node.ping_status != "Online" else "InProgress",
                    status_details="Pending" if node.ping_status != "Online" else "InProgress",
                )
            command = {
                "CommandId": command_id,
                "DocumentName": name,
                "DocumentVersion": "$DEFAULT",
                "Comment": comment,
                "ExpiresAfter": (now + timedelta(seconds=timeout)).timestamp(),
                "Parameters": {},
                "InstanceIds": ids,
                "Targets": [],
                "RequestedDateTime": now.timestamp(),
                "Status": "Pending",
                "StatusDetails": "Pending",
                "MaxConcurrency": "50",
                "MaxErrors": "0",
                "TargetCount": len(ids),
                "CompletedCount": 0,
                "ErrorCount": 0,
                "DeliveryTimedOutCount": 0,
                "TimeoutSeconds": timeout,
            }
            self.commands[command_id] = command
        return {"Command": command}

    def get_command_invocation(self, body: dict[str, Any]) -> dict[str, Any]:
        command_id, instance_id = str(body.get("CommandId", "")), str(body.get("InstanceId", ""))
        if len(command_id) != 36:
            raise SsmError("InvalidCommandId", "")
        if not INSTANCE_ID.match(instance_id):
            raise SsmError("InvalidInstanceId", f"Instance Id {instance_id} is not valid")
        plugin = body.get("PluginName")
        with self.lock:
            self.advance()
            if command_id not in self.commands:
                raise SsmError("InvalidCommandId", "")
            invocation = self.invocations.get((command_id, instance_id))
            if invocation is None:
                raise SsmError("InvocationDoesNotExist", "")
            if plugin is None and len(invocation.steps) > 1:
                raise SsmError("InvalidPluginName", "the document has more than one step: name it in PluginName")
            step = next((s for s in invocation.steps if plugin in (None, s.name)), None)
            if step is None:
                raise SsmError("InvalidPluginName", "")
            status, details, code, stdout, stderr = (
                invocation.status, invocation.status_details, invocation.response_code, invocation.stdout,
                invocation.stderr,
            )  # fmt: skip
            if invocation.os not in step.platforms and invocation.ended is not None:
                status, details, code = "Success", "Success", 0
                stdout = (
                    f'Step execution skipped due to unsatisfied preconditions: "platformType" StringEquals '
                    f'"{"Windows" if invocation.os != "Windows" else "Linux"}". Step name: {step.name}'
                )
                stderr = ""
            return {
                "CommandId": command_id,
                "InstanceId": instance_id,
                "Comment": invocation.comment,
                "DocumentName": invocation.document,
                "DocumentVersion": "$DEFAULT",
                "PluginName": step.name,
                "ResponseCode": code,
                "ExecutionStartDateTime": _string_time(invocation.started),
                "ExecutionElapsedTime": _elapsed(invocation.started, invocation.ended),
                "ExecutionEndDateTime": _string_time(invocation.ended),
                "Status": status,
                "StatusDetails": details,
                "StandardOutputContent": stdout[:STDOUT_MAX],
                "StandardOutputUrl": "",
                "StandardErrorContent": stderr[:STDERR_MAX],
                "StandardErrorUrl": "",
                "CloudWatchOutputConfig": {"CloudWatchLogGroupName": "", "CloudWatchOutputEnabled": False},
            }

    # ------------------------------------------------------------------ time passes

    def advance(self) -> None:
        """End every invocation whose virtual time has come (called on each request and by a ticker)."""
        with self.lock:
            now = self.clock.now()
            for invocation in self.invocations.values():
                if invocation.ended is not None:
                    continue
                node = self.nodes.get(invocation.instance_id)
                if invocation.status == "Pending":
                    if node is not None and node.ping_status == "Online":
                        invocation.status = invocation.status_details = "InProgress"
                        invocation.due = now + timedelta(seconds=self.faults.install_seconds)
                    elif now >= invocation.expires:
                        # Never delivered: the agent was offline for the whole TimeoutSeconds.
                        self._end(invocation, now, "TimedOut", "DeliveryTimedOut", -1, "", "")
                    continue
                if invocation.started is None:
                    invocation.started = invocation.requested
                if now >= invocation.due and node is not None:
                    self._complete(invocation, node, now)

    def _complete(self, invocation: Invocation, node: ManagedNode, now: datetime) -> None:
        if invocation.fault == "install-fails":
            out, err, code = _failed_output(node)
            self._end(invocation, now, "Failed", "Failed", code, out, err)
            return
        if invocation.fault != "never-discovered" and self.register is not None:
            try:
                self.register(node)
            except Exception as exc:  # the appliance did not answer: the configurator fails, as it would
                self._end(invocation, now, "Failed", "Failed", 1, _installed_output(node, registered=False),
                          f"UnifiedAgentConfigurator: registration with the appliance failed: {exc}")  # fmt: skip
                return
            invocation.registered = True
        self._end(invocation, now, "Success", "Success", 0, _installed_output(node, registered=True), "")

    def _end(self, invocation: Invocation, now: datetime, status: str, details: str, code: int, out: str,
             err: str) -> None:  # fmt: skip
        invocation.status, invocation.status_details, invocation.response_code = status, details, code
        invocation.stdout, invocation.stderr, invocation.ended = out, err, now
        invocation.started = invocation.started or now
        command = self.commands[invocation.command_id]
        mine = [i for i in self.invocations.values() if i.command_id == invocation.command_id]
        done = [i for i in mine if i.ended is not None]
        command["CompletedCount"] = len(done)
        command["ErrorCount"] = sum(1 for i in done if i.status == "Failed")
        command["DeliveryTimedOutCount"] = sum(1 for i in done if i.status_details == "DeliveryTimedOut")
        if len(done) == len(mine):
            command["Status"] = "Success" if all(i.status == "Success" for i in done) else "Failed"
            command["StatusDetails"] = command["Status"]
        else:
            command["Status"] = command["StatusDetails"] = "InProgress"


def _matches(node: ManagedNode, key: str, values: list[str]) -> bool:
    if key == "InstanceIds":
        return node.instance_id in values
    if key == "PingStatus":
        return node.ping_status in values
    if key == "PlatformTypes":
        return node.platform_type in values
    if key == "ResourceType":
        return "EC2Instance" in values
    if key == "AgentVersion":
        return node.agent_version in values
    return False  # activations, IAM roles, associations and tags: none are recorded here


def _string_time(when: datetime | None) -> str:
    return "" if when is None else when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z"


def _elapsed(start: datetime | None, end: datetime | None) -> str:
    if start is None or end is None:
        return ""
    seconds = max(0.0, (end - start).total_seconds())
    return f"PT{seconds:.3f}S"


def _installed_output(node: ManagedNode, *, registered: bool) -> str:
    if node.platform_type == "Windows":
        lines = [
            "Downloading the Mobility service installer and the appliance's configuration file",
            ".\\Microsoft-ASR_UA_9.62.0.0_Windows_GA_release.exe /q /x:C:\\ProgramData\\aws2azure\\asr",
            ".\\UnifiedAgentInstaller.exe /Platform vmware /Silent /Role MS /CSType CSPrime",
            "Installation of Mobility service succeeded.",
            "UnifiedAgentConfigurator.exe /SourceConfigFilePath config.json /CredentialLessDiscovery true "
            "/CSType CSPrime",
        ]
    else:
        lines = [
            "Downloading the Mobility service installer and the appliance's configuration file",
            "tar -xf Microsoft-ASR_UA_9.62.0.0_LinuxVersion_GA_release.tar.gz",
            "./install -q -r MS -v VmWare -c CSPrime",
            "Installation of Mobility service succeeded.",
            "/usr/local/ASR/Vx/bin/UnifiedAgentConfigurator.sh -S config.json -q -D true -c CSPrime",
        ]
    lines.append(f"Registration with the appliance {'succeeded' if registered else 'failed'} ({node.ip_address}).")
    return "\n".join(lines) + "\n"


def _failed_output(node: ManagedNode) -> tuple[str, str, int]:
    """A failed install as the step reports it (simulated text; exit codes: the script's own exit 1)."""
    if node.platform_type == "Windows":
        return (
            ".\\UnifiedAgentInstaller.exe /Platform vmware /Silent /Role MS /CSType CSPrime\n",
            "Installation of Mobility service failed.\n"
            "Prerequisite check failed: not enough free space on the system volume (2 GB needed).\n"
            "See C:\\ProgramData\\ASRSetupLogs\\ASRUnifiedAgentInstaller.log\n",
            1,
        )
    return (
        "./install -q -r MS -v VmWare -c CSPrime\n",
        "Installation of Mobility service failed.\n"
        "Prerequisite check failed: kernel version not supported by this installer.\n"
        "See /var/log/ua_install.log\n",
        1,
    )
