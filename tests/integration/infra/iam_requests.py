"""The IAM authorizations behind each AWS API call a Lambda makes, from botocore's own event hooks.

A boto3 session built by ``recording_session`` notes every operation its clients send (service,
operation, parameters as the code passed them) before botocore builds the request; ``authorizations``
turns one call into the IAM requests AWS evaluates for it, with the resource ARNs and condition keys
the Service Authorization Reference lists for that action:

- EC2 (list_amazonec2.html): Describe* support no resource-level permissions ("*"); CreateTags and
  StopInstances and StartInstances act on instance/ID, with aws:TagKeys and aws:RequestTag/K for the tags written and
  aws:ResourceTag/K (and ec2:ResourceTag/K) for the tags the instance already has.
- DynamoDB (list_amazondynamodb.html): item calls act on table/NAME.
- Secrets Manager (list_awssecretsmanager.html): GetSecretValue acts on the secret's ARN.
- EventBridge Scheduler (list_amazoneventbridgescheduler.html): schedule calls act on
  schedule/GROUP/NAME; CreateSchedule and UpdateSchedule also need iam:PassRole on the target's role,
  with iam:PassedToService scheduler.amazonaws.com (EventBridge Scheduler user guide, "Set up the
  execution role").
- Lambda (list_awslambda.html): Invoke is lambda:InvokeFunction on function:NAME.
- Systems Manager (list_awssystemsmanager.html): SendCommand acts on the document and on each
  instance.

A call this module has no mapping for raises, so a new call fails the test until its mapping (and the
template's permission) is added, never passes unchecked.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import boto3

from tests.integration.infra.iam_policy import Request


@dataclass(frozen=True)
class Call:
    service: str  # the IAM service prefix (botocore's signing name for these services)
    operation: str
    params: Mapping[str, Any]
    # The tags of each instance the call names, read (as an administrator) at the moment of the call.
    instance_tags: Mapping[str, Mapping[str, str]] = field(default_factory=dict)


@dataclass
class CallLog:
    calls: list[Call] = field(default_factory=list)

    def operations(self) -> set[str]:
        return {f"{c.service}:{c.operation}" for c in self.calls}


def recording_session(
    *,
    access_key_id: str,
    secret_access_key: str,
    region: str,
    log: CallLog,
    tags_of: Callable[[str], Mapping[str, str]],
) -> boto3.Session:
    session = boto3.session.Session(
        aws_access_key_id=access_key_id, aws_secret_access_key=secret_access_key, region_name=region
    )

    def note(params: Mapping[str, Any], model: Any, **_: Any) -> None:
        service = model.service_model.signing_name or model.service_model.endpoint_prefix
        named = [i for i in [*params.get("InstanceIds", []), *params.get("Resources", [])] if str(i).startswith("i-")]
        snapshot = {i: dict(tags_of(i)) for i in named} if service == "ec2" else {}
        log.calls.append(Call(service, model.name, copy.deepcopy(dict(params)), snapshot))

    session.events.register("before-parameter-build", note)
    return session


@dataclass(frozen=True)
class Account:
    region: str
    account_id: str
    partition: str = "aws"

    def arn(self, service: str, resource: str, *, account: bool = True) -> str:
        return f"arn:{self.partition}:{service}:{self.region}:{self.account_id if account else ''}:{resource}"


EC2_DESCRIBE_PREFIX = "Describe"
DYNAMODB_ITEM_CALLS = {"GetItem", "PutItem", "UpdateItem", "DeleteItem"}
SCHEDULE_CALLS = {"CreateSchedule", "UpdateSchedule", "DeleteSchedule", "GetSchedule"}


def _tag_context(tags: Mapping[str, str], prefix: str) -> dict[str, str]:
    return {f"{prefix}/{key}": value for key, value in tags.items()}


def authorizations(call: Call, account: Account) -> list[Request]:
    """The IAM requests AWS evaluates for this call."""
    p = call.params
    action = f"{call.service}:{call.operation}"
    if call.service == "ec2":
        if call.operation.startswith(EC2_DESCRIBE_PREFIX):
            return [Request(action)]
        if call.operation in ("CreateTags", "DeleteTags"):
            written = {t["Key"]: t.get("Value", "") for t in p.get("Tags", [])}
            requests = []
            for resource_id in p["Resources"]:
                if not resource_id.startswith("i-"):
                    raise NotImplementedError(f"{action} on {resource_id}: only instances are mapped")
                existing = call.instance_tags[resource_id]
                context: dict[str, Any] = {"aws:TagKeys": list(written)}
                context |= _tag_context(written, "aws:RequestTag")
                context |= _tag_context(existing, "aws:ResourceTag") | _tag_context(existing, "ec2:ResourceTag")
                requests.append(Request(action, account.arn("ec2", f"instance/{resource_id}"), context))
            return requests
        if call.operation in ("StopInstances", "StartInstances"):
            return [
                Request(
                    action,
                    account.arn("ec2", f"instance/{instance_id}"),
                    _tag_context(call.instance_tags[instance_id], "aws:ResourceTag")
                    | _tag_context(call.instance_tags[instance_id], "ec2:ResourceTag"),
                )
                for instance_id in p["InstanceIds"]
            ]
    if call.service == "dynamodb" and call.operation in DYNAMODB_ITEM_CALLS:
        return [Request(action, account.arn("dynamodb", f"table/{p['TableName']}"))]
    if call.service == "secretsmanager" and call.operation == "GetSecretValue":
        if not str(p["SecretId"]).startswith("arn:"):
            raise NotImplementedError("GetSecretValue by name: the Lambdas are given secret ARNs")
        return [Request(action, p["SecretId"])]
    if call.service == "scheduler" and call.operation in SCHEDULE_CALLS:
        group = p.get("GroupName", "default")
        requests = [Request(action, account.arn("scheduler", f"schedule/{group}/{p['Name']}"))]
        if call.operation in ("CreateSchedule", "UpdateSchedule"):
            requests.append(
                Request(
                    "iam:PassRole",
                    p["Target"]["RoleArn"],
                    {"iam:PassedToService": "scheduler.amazonaws.com"},
                )
            )
        return requests
    if call.service == "lambda" and call.operation == "Invoke":
        name = p["FunctionName"]
        arn = name if name.startswith("arn:") else account.arn("lambda", f"function:{name}")
        return [Request("lambda:InvokeFunction", arn)]
    if call.service == "ssm" and call.operation == "SendCommand":
        document = p["DocumentName"]
        if document.startswith("arn:"):
            document_arn = document
        elif document.startswith("AWS-"):
            document_arn = account.arn("ssm", f"document/{document}", account=False)
        else:
            document_arn = account.arn("ssm", f"document/{document}")
        instances = [account.arn("ec2", f"instance/{i}") for i in p.get("InstanceIds", [])]
        return [Request(action, arn) for arn in [document_arn, *instances]]
    if call.service == "sns" and call.operation == "Publish":
        # Publish is authorized on the topic (Service Authorization Reference: resource type topic).
        return [Request(action, p["TopicArn"])]
    raise NotImplementedError(
        f"{action}: no IAM mapping yet; add it from the Service Authorization Reference (and grant it in the template)"
    )
