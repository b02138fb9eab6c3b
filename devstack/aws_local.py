"""The AWS side on the local stack: what the SAM template creates, made on moto's server and Azurite,
and a Lambda context to invoke handlers with. Used by tests, the benchmark and local runs; never deployed
code paths (nothing in ``handlers`` or ``logic`` imports it).
"""

from __future__ import annotations

import contextlib
import io
import json
import time
import urllib.request
import uuid
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
from aws_lambda_powertools.utilities.typing import LambdaContext
from azure.core.exceptions import ResourceExistsError
from azure.storage.queue import QueueSasPermissions, QueueServiceClient, generate_queue_sas

from devstack.settings import AZURITE_ACCOUNT, AZURITE_KEY, StackSettings
from devstack.ssm_sim import control as ssm_control

QUEUE_NAME = "migration-requests"  # functions/settings.py INTAKE_QUEUE
IDEMPOTENCY_TABLE = "aws2azure-idempotency"
SCHEDULER_GROUP = "aws2azure"
QUEUE_SAS_SECRET = "aws2azure/azure-queue-sas"
STATUS_API_KEY_SECRET = "aws2azure/status-api-key"
APPLIANCE_CIDR = "10.0.200.0/28"
INTAKE_FUNCTION = "aws2azure-intake"
CUTOVER_FUNCTION = "aws2azure-cutover"


class LocalLambdaContext(LambdaContext):
    """A Lambda context with a real deadline, as the Lambda runtime passes to a handler."""

    def __init__(
        self,
        function_name: str,
        *,
        region: str = "eu-west-1",
        account_id: str = "123456789012",
        timeout_seconds: float = 60.0,
        memory_mb: int = 512,
    ) -> None:
        self._function_name = function_name
        self._function_version = "$LATEST"
        self._invoked_function_arn = f"arn:aws:lambda:{region}:{account_id}:function:{function_name}"
        self._memory_limit_in_mb = memory_mb
        self._aws_request_id = str(uuid.uuid4())
        self._log_group_name = f"/aws/lambda/{function_name}"
        self._log_stream_name = f"{datetime.now(UTC):%Y/%m/%d}/[$LATEST]{uuid.uuid4().hex}"
        self._deadline = time.monotonic() + timeout_seconds

    def get_remaining_time_in_millis(self) -> int:  # type: ignore[override]
        return max(0, int((self._deadline - time.monotonic()) * 1000))


Handler = Callable[[dict[str, Any], LambdaContext], dict[str, Any]]


@dataclass
class InProcessIntakeInvoker:
    """IntakeInvoker for the local stack: runs the intake handler here, with a fresh Lambda context."""

    handler: Handler
    results: list[dict[str, Any]] = field(default_factory=list)

    def invoke(self, event: Mapping[str, object]) -> None:
        self.results.append(self.handler(dict(event), LocalLambdaContext(INTAKE_FUNCTION)))


@dataclass(frozen=True)
class LocalAwsSide:
    """What ``provision`` made, and the environment each Lambda gets (the SAM template's names)."""

    region: str
    account_id: str
    queue_url: str
    queue_sas_secret_arn: str
    status_api_key_secret_arn: str
    appliance_security_group_id: str
    vpc_id: str
    scheduler_role_arn: str
    cutover_function_arn: str
    aws_environment: dict[str, str]
    # The SSM stand-in (devstack/ssm_sim) when the stack runs one; without it the agent is "installed by hand".
    ssm_url: str | None = None
    install_document: str | None = None

    @property
    def scheduler_dead_letter_arn(self) -> str:
        """The cutover dead-letter queue the template names (nothing reads it locally: no schedule fails over to it)."""
        return f"arn:aws:sqs:{self.region}:{self.account_id}:aws2azure-cutover-dlq"

    def lambda_environment(self, *, status_api_url: str = "http://127.0.0.1:1") -> dict[str, str]:
        return {
            **self.aws_environment,
            "POWERTOOLS_SERVICE_NAME": "aws2azure",
            "POWERTOOLS_METRICS_NAMESPACE": "aws2azure-local",
            "POWERTOOLS_TRACE_DISABLED": "true",
            "IDEMPOTENCY_TABLE": IDEMPOTENCY_TABLE,
            "AZURE_QUEUE_URL": self.queue_url,
            "AZURE_QUEUE_SAS_SECRET_ARN": self.queue_sas_secret_arn,
            "STATUS_API_URL": status_api_url,
            "STATUS_API_KEY_SECRET_ARN": self.status_api_key_secret_arn,
            "APPLIANCE_CIDR": APPLIANCE_CIDR,
            "APPLIANCE_SECURITY_GROUP_ID": self.appliance_security_group_id,
            "CUTOVER_FUNCTION_ARN": self.cutover_function_arn,
            "SCHEDULER_GROUP_NAME": SCHEDULER_GROUP,
            "SCHEDULER_ROLE_ARN": self.scheduler_role_arn,
            "SCHEDULER_DEAD_LETTER_ARN": self.scheduler_dead_letter_arn,
            "STOP_TIMEOUT_SECONDS": "600",
            "INTAKE_FUNCTION_NAME": INTAKE_FUNCTION,
            **self.agent_environment(),
        }

    def agent_environment(self) -> dict[str, str]:
        """With the SSM stand-in: the Mobility service through SSM, as deployed (boto3 reads
        AWS_ENDPOINT_URL_SSM for its SSM client only). Without it (moto's SSM has no
        DescribeInstanceInformation) the agent is "installed by hand"."""
        if self.ssm_url is None or self.install_document is None:
            return {"AGENT_INSTALL": "manual"}
        return {
            "AGENT_INSTALL": "ssm",
            "AGENT_INSTALL_DOCUMENT": self.install_document,
            "AWS_ENDPOINT_URL_SSM": self.ssm_url,
        }


def _session(stack: StackSettings) -> boto3.session.Session:
    if stack.moto is None:
        raise RuntimeError("the local AWS side needs moto's server: start the stack with 'moto'")
    return boto3.session.Session(
        aws_access_key_id=stack.moto.access_key_id,
        aws_secret_access_key=stack.moto.secret_access_key,
        region_name=stack.moto.region,
    )


def queue_sas(*, hours: float = 24) -> str:
    """An add-only SAS for the intake queue, from Azurite's public development key."""
    return generate_queue_sas(
        AZURITE_ACCOUNT,
        QUEUE_NAME,
        AZURITE_KEY,
        permission=QueueSasPermissions(add=True),
        expiry=datetime.now(UTC) + timedelta(hours=hours),
    )


def provision(stack: StackSettings, *, status_api_key: str = "local-status-key") -> LocalAwsSide:
    """Create the queue, secrets, idempotency table, scheduler group, appliance group and a stand-in
    intake function, as infra/aws would. Safe to call once per fresh stack."""
    if stack.azurite is None or stack.moto is None:
        raise RuntimeError("the local AWS side needs 'moto' and 'azurite' running")
    queues = QueueServiceClient.from_connection_string(stack.azurite.connection_string)
    with queues, contextlib.suppress(ResourceExistsError):
        queues.create_queue(QUEUE_NAME)
    queue_url = f"http://{stack.azurite.host}:{stack.azurite.queue_port}/{AZURITE_ACCOUNT}/{QUEUE_NAME}"

    session = _session(stack)
    endpoint = stack.moto.url
    secrets = session.client("secretsmanager", endpoint_url=endpoint)
    sas_arn = secrets.create_secret(Name=QUEUE_SAS_SECRET, SecretString=queue_sas())["ARN"]
    key_arn = secrets.create_secret(Name=STATUS_API_KEY_SECRET, SecretString=status_api_key)["ARN"]

    dynamodb = session.client("dynamodb", endpoint_url=endpoint)
    dynamodb.create_table(
        TableName=IDEMPOTENCY_TABLE,
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    dynamodb.update_time_to_live(
        TableName=IDEMPOTENCY_TABLE, TimeToLiveSpecification={"Enabled": True, "AttributeName": "expiration"}
    )
    session.client("scheduler", endpoint_url=endpoint).create_schedule_group(Name=SCHEDULER_GROUP)

    ec2 = session.client("ec2", endpoint_url=endpoint)
    vpc_id = ec2.describe_vpcs(Filters=[{"Name": "is-default", "Values": ["true"]}])["Vpcs"][0]["VpcId"]
    appliance_sg = ec2.create_security_group(
        GroupName="asr-replication-appliance", Description="ASR replication appliance", VpcId=vpc_id
    )["GroupId"]

    iam = session.client("iam", endpoint_url=endpoint)
    trust = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Service": ["lambda.amazonaws.com", "scheduler.amazonaws.com"]},
                "Action": "sts:AssumeRole",
            }
        ],
    }
    role_arn = iam.create_role(RoleName="aws2azure-local", AssumeRolePolicyDocument=json.dumps(trust))["Role"]["Arn"]
    # moto runs functions in Docker unless told not to; the local stack has none, and the stand-ins
    # only need to accept invocations (reconcile's) and exist as schedule targets (cutover's).
    request = urllib.request.Request(
        f"{endpoint}/moto-api/config",
        data=json.dumps({"lambda": {"use_docker": False}}).encode(),
        headers={"content-type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10):
        pass
    lambdas = session.client("lambda", endpoint_url=endpoint)
    arns = {}
    for name in (INTAKE_FUNCTION, CUTOVER_FUNCTION):
        arns[name] = lambdas.create_function(
            FunctionName=name,
            Runtime="python3.11",
            Role=role_arn,
            Handler=f"aws_lambda.handlers.{name.removeprefix('aws2azure-')}.lambda_handler",
            Code={"ZipFile": _stub_zip()},
        )["FunctionArn"]
    account_id = role_arn.split(":")[4]
    ssm_url = install_document = None
    if stack.ssm is not None:
        # What the template's AWS::SSM::Document creates, registered with the stand-in.
        document = ssm_control.install_document()
        with ssm_control.SsmSimControl(stack.ssm.url) as control:
            control.add_document(document)
        ssm_url, install_document = stack.ssm.url, document.name
    return LocalAwsSide(
        region=stack.moto.region,
        account_id=account_id,
        queue_url=queue_url,
        queue_sas_secret_arn=sas_arn,
        status_api_key_secret_arn=key_arn,
        appliance_security_group_id=appliance_sg,
        vpc_id=vpc_id,
        scheduler_role_arn=role_arn,
        cutover_function_arn=arns[CUTOVER_FUNCTION],
        aws_environment=stack.aws_environment(),
        ssm_url=ssm_url,
        install_document=install_document,
    )


def _stub_zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("README.txt", "stand-in: the real code runs in-process on the local stack\n")
    return buffer.getvalue()
