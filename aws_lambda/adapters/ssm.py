"""AWS Systems Manager through boto3: is the instance managed and online, run the Mobility service install, read
the result. Facts from botocore's ssm service model (botocore/data/ssm/2014-11-06/service-2.json): SendCommand
takes up to 50 InstanceIds and a Comment of at most 100 characters; GetCommandInvocation needs PluginName (the
step's name) when the document has more than one step and returns the *first* 24,000 characters of stdout and
8,000 of stderr; DescribeInstanceInformation filters by InstanceIds, PingStatus is Online | ConnectionLost |
Inactive."""

from __future__ import annotations

from typing import TYPE_CHECKING

from botocore.exceptions import BotoCoreError, ClientError

from aws_lambda.adapters.aws_errors import error_code, translate
from aws_lambda.models.agent import CommandResult
from migration.readiness import OsFamily

if TYPE_CHECKING:
    from mypy_boto3_ssm import SSMClient

SEND_COMMAND_MAX_INSTANCES = 50
COMMENT_MAX = 100
# The step names of the install document (infra/aws/template.yaml, MobilityInstallDocument).
INSTALL_STEPS: dict[OsFamily, str] = {"linux": "installMobilityLinux", "windows": "installMobilityWindows"}


class SsmGateway:
    """Implements AgentInstaller over one SSM client and the install document's name."""

    def __init__(self, client: SSMClient, *, document_name: str, timeout_seconds: int = 3600) -> None:
        self._client = client
        self._document = document_name
        self._timeout = timeout_seconds

    def ping_status(self, instance_id: str) -> str | None:
        try:
            response = self._client.describe_instance_information(
                Filters=[{"Key": "InstanceIds", "Values": [instance_id]}]
            )
        except (ClientError, BotoCoreError) as exc:
            raise translate(exc, f"describe SSM instance information of {instance_id}") from exc
        for info in response.get("InstanceInformationList", []):
            if info.get("InstanceId") == instance_id:
                return str(info.get("PingStatus", "Inactive"))
        return None  # not a managed instance

    def send_install(self, instance_id: str, *, comment: str) -> str:
        try:
            response = self._client.send_command(
                InstanceIds=[instance_id],
                DocumentName=self._document,
                Comment=comment[:COMMENT_MAX],
                # If the command has not started by then it does not run (the agent was offline too long).
                TimeoutSeconds=self._timeout,
            )
        except (ClientError, BotoCoreError) as exc:
            raise translate(exc, f"send {self._document} to {instance_id}") from exc
        return str(response["Command"]["CommandId"])

    def invocation(self, command_id: str, instance_id: str, os_family: OsFamily) -> CommandResult:
        try:
            raw = self._client.get_command_invocation(
                CommandId=command_id, InstanceId=instance_id, PluginName=INSTALL_STEPS[os_family]
            )
        except ClientError as exc:
            if error_code(exc) == "InvocationDoesNotExist":
                # Right after SendCommand the invocation may not be readable yet.
                return CommandResult(status="Pending")
            raise translate(exc, f"read command {command_id} on {instance_id}") from exc
        except BotoCoreError as exc:
            raise translate(exc, f"read command {command_id} on {instance_id}") from exc
        return CommandResult(
            status=str(raw.get("Status", "Pending")),
            status_details=str(raw.get("StatusDetails", "")),
            response_code=int(raw.get("ResponseCode", -1)),
            stdout=str(raw.get("StandardOutputContent", "")),
            stderr=str(raw.get("StandardErrorContent", "")),
        )
