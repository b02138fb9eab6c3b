"""Each Lambda's real AWS calls, signed as a principal that holds exactly its role's policy from the template.

The template is taken after the SAM transform (aws-sam-translator, in .venv-infra) and its intrinsics
resolved to the ARNs of the resources provisioned in moto's server. For each function an IAM user is
created in moto with that role's statements, and its access key signs every call the function's own
composition root (aws_lambda.bootstrap with AwsClients(session)) makes while it handles a real event.

What checks what:
- moto's server, with IAM enforcement on (/moto-api/reset-auth 0: every request after it is
  authenticated and authorized), checks the signature and the Action of each statement. It compares
  each statement's Resource with "*" for these services and ignores conditions other than
  StringEquals on request parameters, so it is given the role's statements with Resource "*" and no
  Condition: moto proves the *actions* (a call outside them is denied with AccessDenied).
- tests/integration/infra/iam_policy.py evaluates every recorded call against the role's *exact* statements:
  Resource ARNs, and the conditions moto cannot evaluate. Those are WriteStatusTags
  (ForAllValues:StringEquals aws:TagKeys + Null), StopTaggedInstances (StringEqualsIgnoreCase
  aws:ResourceTag/aws2azure:migrate), PassSchedulerRole (StringEquals iam:PassedToService), and the
  SchedulerRole's trust policy (StringEquals aws:SourceAccount, ArnEquals aws:SourceArn), and the
  conditional AnnouncePhases statement (sns:Publish on exactly the PhaseTopicArn topic, which the stack here
  is given: intake's run publishes its phase change there, signed as intake's role).
Not exercised here: Logs and X-Ray statements (the Lambda runtime and the X-Ray daemon use them, not
the code) and the dead-letter statements (Lambda and EventBridge send there, not the code).
"""

from __future__ import annotations

import importlib
import json
import os
import threading
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
from aws_lambda_powertools.utilities.parser import parse
from azure.storage.queue import QueueClient
from botocore.exceptions import ClientError

from aws_lambda.bootstrap import AwsClients, build_cutover, build_intake, build_reconcile, build_status_sync
from aws_lambda.logic.cutover import start_cutover
from aws_lambda.logic.reconcile import reconcile
from aws_lambda.logic.status_sync import sync_statuses
from aws_lambda.models.cutover import CutoverRequest
from aws_lambda.models.tag_change import TagChangeEvent
from aws_lambda.settings import CutoverSettings, IntakeSettings, ReconcileSettings, StatusSyncSettings
from devstack.aws_local import (
    APPLIANCE_CIDR,
    IDEMPOTENCY_TABLE,
    QUEUE_NAME,
    SCHEDULER_GROUP,
    LocalAwsSide,
    LocalLambdaContext,
    provision,
)
from devstack.launcher import Stack
from devstack.settings import MOTO_AMIS_FILE
from infra.tools.sam_translate import physical_ids, resolve
from migration.identity import InstanceRef
from migration.lifecycle import Phase
from migration.tags import CUTOVER_AT, MIGRATE, PROGRESS, REASON, STATUS, UPDATED_AT
from tests.integration.aws.aws_test_support import AMI_UBUNTU, LocalAws, QueueReader
from tests.integration.aws.test_aws_status_sync import StatusApi
from tests.integration.infra.iam_policy import Request, evaluate
from tests.integration.infra.iam_requests import Account, CallLog, authorizations, recording_session
from tests.integration.infra.infra_support import ensure_infra_venv, translated_sam_template

pytestmark = pytest.mark.integration

ROLES = {
    "intake": "IntakeRole",
    "cutover": "CutoverRole",
    "status_sync": "StatusSyncRole",
    "reconcile": "ReconcileRole",
}
FUNCTIONS = {
    "intake": "IntakeFunction",
    "cutover": "CutoverFunction",
    "status_sync": "StatusSyncFunction",
    "reconcile": "ReconcileFunction",
}
BOTH_PORTS = [
    {"IpProtocol": "tcp", "FromPort": 443, "ToPort": 443, "IpRanges": [{"CidrIp": APPLIANCE_CIDR}]},
    {"IpProtocol": "tcp", "FromPort": 9443, "ToPort": 9443, "IpRanges": [{"CidrIp": APPLIANCE_CIDR}]},
]
FAR_FUTURE = "2099-12-01T22:00:00Z"
PHASE_TOPIC = "aws2azure-phases"
# The process environment the Lambda runtime would give (the template sets the Powertools names).
PROCESS_ENVIRONMENT = {
    "AWS_ENDPOINT_URL": "",
    "POWERTOOLS_SERVICE_NAME": "aws2azure",
    "POWERTOOLS_METRICS_NAMESPACE": "aws2azure",
    "POWERTOOLS_TRACE_DISABLED": "true",
}


@dataclass(frozen=True)
class Principal:
    role: str
    access_key_id: str
    secret_access_key: str
    documents: list[dict[str, Any]]  # the role's policies, exactly as the template gives them


@dataclass
class World:
    aws: LocalAws
    account: Account
    template: dict[str, Any]
    principals: dict[str, Principal]
    environments: dict[str, dict[str, str]]
    status_api: StatusApi
    scheduler_role: dict[str, Any]

    def tags_of(self, instance_id: str) -> dict[str, str]:
        return self.aws.tags_of(instance_id)

    def session(self, function: str, log: CallLog) -> boto3.Session:
        principal = self.principals[function]
        return recording_session(
            access_key_id=principal.access_key_id,
            secret_access_key=principal.secret_access_key,
            region=self.account.region,
            log=log,
            tags_of=self.tags_of,
        )

    def refused(self, function: str, log: CallLog) -> list[str]:
        """Every recorded authorization that the role's exact policy does not allow."""
        problems = []
        for call in log.calls:
            for request in authorizations(call, self.account):
                result = evaluate(self.principals[function].documents, request)
                if not result.allowed:
                    problems.append(
                        f"{request.action} on {request.resource} {dict(request.context)}: {result.decision}"
                    )
        return problems


def _moto_api(url: str, path: str, body: bytes) -> None:
    # text/plain: with the form content type urllib sends by default, moto's server reads an empty body.
    request = urllib.request.Request(
        f"{url}/moto-api/{path}", data=body, method="POST", headers={"content-type": "text/plain"}
    )
    with urllib.request.urlopen(request, timeout=10):
        pass


def _projection(documents: list[dict[str, Any]]) -> dict[str, Any]:
    """What moto can evaluate of these documents: each Allow statement's actions, on "*"."""
    actions = sorted(
        {
            action
            for document in documents
            for statement in document["Statement"]
            if statement["Effect"] == "Allow"
            for action in ([statement["Action"]] if isinstance(statement["Action"], str) else statement["Action"])
        }
    )
    return {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": actions, "Resource": "*"}]}


def _real_ids(
    template: dict[str, Any], parameters: dict[str, str], side: LocalAwsSide, admin: boto3.Session
) -> dict[str, dict[str, str]]:
    """Ref/GetAtt values: the resources provisioned in moto where they exist, made-up ARNs otherwise."""
    endpoint = side.aws_environment["AWS_ENDPOINT_URL"]
    ids = physical_ids(template, parameters, {"AWS::Region": side.region, "AWS::AccountId": side.account_id})
    table_arn = admin.client("dynamodb", endpoint_url=endpoint).describe_table(TableName=IDEMPOTENCY_TABLE)["Table"][
        "TableArn"
    ]
    group_arn = admin.client("scheduler", endpoint_url=endpoint).get_schedule_group(Name=SCHEDULER_GROUP)["Arn"]
    ids["IdempotencyTable"] = {"Ref": IDEMPOTENCY_TABLE, "Arn": table_arn}
    ids["QueueSasSecret"] = {"Ref": side.queue_sas_secret_arn}
    ids["StatusApiKeySecret"] = {"Ref": side.status_api_key_secret_arn}
    ids["CutoverScheduleGroup"] = {"Ref": SCHEDULER_GROUP, "Arn": group_arn}
    ids["SchedulerRole"] = {"Ref": "aws2azure-local", "Arn": side.scheduler_role_arn}
    return ids


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    reason = ensure_infra_venv()
    if reason:
        pytest.skip(reason)
    template = translated_sam_template()
    stack = Stack(tmp_path_factory.mktemp("iam-stack"))
    before = os.environ.get("MOTO_AMIS_PATH")
    os.environ["MOTO_AMIS_PATH"] = str(MOTO_AMIS_FILE)
    try:
        settings = stack.up(["moto", "azurite"], quiet=True)
    finally:
        if before is None:
            os.environ.pop("MOTO_AMIS_PATH", None)
        else:
            os.environ["MOTO_AMIS_PATH"] = before
    status_api = StatusApi()
    threading.Thread(target=status_api.server.serve_forever, daemon=True).start()
    saved = {key: os.environ.get(key) for key in PROCESS_ENVIRONMENT}
    try:
        side = provision(settings)
        endpoint = side.aws_environment["AWS_ENDPOINT_URL"]
        # boto3 clients the bootstrap makes go to moto; Powertools reads its names at import.
        os.environ.update(PROCESS_ENVIRONMENT | {"AWS_ENDPOINT_URL": endpoint})
        importlib.reload(importlib.import_module("aws_lambda.observability"))
        testing = boto3.session.Session(
            aws_access_key_id="testing", aws_secret_access_key="testing", region_name=side.region
        )
        iam = testing.client("iam", endpoint_url=endpoint)
        iam.create_user(UserName="admin")
        admin_policy = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}
        iam.put_user_policy(UserName="admin", PolicyName="admin", PolicyDocument=json.dumps(admin_policy))
        admin_key = iam.create_access_key(UserName="admin")["AccessKey"]
        admin = boto3.session.Session(
            aws_access_key_id=admin_key["AccessKeyId"],
            aws_secret_access_key=admin_key["SecretAccessKey"],
            region_name=side.region,
        )
        phase_topic = admin.client("sns", endpoint_url=endpoint).create_topic(Name=PHASE_TOPIC)["TopicArn"]
        parameters = {
            "AzureQueueUrl": side.queue_url,
            "StatusApiUrl": status_api.url,
            "ApplianceCidr": APPLIANCE_CIDR,
            "ApplianceSecurityGroupId": side.appliance_security_group_id,
            "PhaseTopicArn": phase_topic,
        }
        pseudo = {"AWS::Region": side.region, "AWS::AccountId": side.account_id}
        ids = _real_ids(template, parameters, side, admin)
        principals: dict[str, Principal] = {}
        environments: dict[str, dict[str, str]] = {}
        for function, role in ROLES.items():
            role_properties = template["Resources"][role]["Properties"]
            documents = [
                resolve(p["PolicyDocument"], template, parameters, ids, pseudo) for p in role_properties["Policies"]
            ]
            user = f"lambda-{function.replace('_', '-')}"
            iam.create_user(UserName=user)
            iam.put_user_policy(UserName=user, PolicyName=role, PolicyDocument=json.dumps(_projection(documents)))
            key = iam.create_access_key(UserName=user)["AccessKey"]
            principals[function] = Principal(role, key["AccessKeyId"], key["SecretAccessKey"], documents)
            variables = template["Resources"][FUNCTIONS[function]]["Properties"]["Environment"]["Variables"]
            environments[function] = {
                **{k: str(v) for k, v in resolve(variables, template, parameters, ids, pseudo).items()},
                "POWERTOOLS_TRACE_DISABLED": "true",
                # moto's SSM has no DescribeInstanceInformation: the local stack installs the agent "by hand".
                "AGENT_INSTALL": "manual",
            }
        scheduler_role = resolve(
            template["Resources"]["SchedulerRole"]["Properties"], template, parameters, ids, pseudo
        )
        # From here on moto authenticates and authorizes every request.
        _moto_api(endpoint, "reset-auth", b"0")
        ec2 = admin.client("ec2", endpoint_url=endpoint)
        reader = QueueReader(QueueClient.from_connection_string(settings.azurite.connection_string, QUEUE_NAME))  # type: ignore[union-attr]
        aws = LocalAws(stack=settings, side=side, ec2=ec2, queue=reader, session=admin)
        yield World(
            aws=aws,
            account=Account(region=side.region, account_id=side.account_id),
            template=template,
            principals=principals,
            environments=environments,
            status_api=status_api,
            scheduler_role=scheduler_role,
        )
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        status_api.server.shutdown()
        status_api.server.server_close()
        stack.down(quiet=True)


@pytest.fixture(scope="module")
def requested(world: World) -> tuple[str, CallLog]:
    """An instance taken through intake, signed as intake's role: (instance id, intake's calls)."""
    aws = world.aws
    group = aws.workload_group("iam-workload", ingress=BOTH_PORTS)
    instance_id = aws.launch(AMI_UBUNTU, groups=[group], tags={MIGRATE: "true", CUTOVER_AT: FAR_FUTURE})
    log = CallLog()
    runtime = build_intake(
        IntakeSettings.from_environment(world.environments["intake"]), AwsClients(world.session("intake", log))
    )
    runtime.idempotency.register_lambda_context(LocalLambdaContext("aws2azure-intake", region=world.account.region))
    change = parse(event=aws.tag_change(instance_id, [MIGRATE, CUTOVER_AT]), model=TagChangeEvent)

    outcome = runtime.intake.handle(change)

    assert outcome.action == "requested", outcome
    return instance_id, log


# ---------------------------------------------------------------- every call allowed


def test_intake_calls_pass_under_intake_role(world: World, requested: tuple[str, CallLog]) -> None:
    instance_id, log = requested

    assert world.refused("intake", log) == []
    assert {
        "ec2:DescribeInstances",
        "ec2:CreateTags",
        "scheduler:CreateSchedule",
        "secretsmanager:GetSecretValue",
        "sns:Publish",
    } <= log.operations()
    assert any(o.startswith("dynamodb:") for o in log.operations())
    assert world.tags_of(instance_id)[STATUS] == Phase.REQUESTED.value
    # The evaluator is not vacuous: without the tag statement the same calls are refused.
    principal = world.principals["intake"]
    without_tags = [
        {**d, "Statement": [s for s in d["Statement"] if s.get("Sid") != "WriteStatusTags"]}
        for d in principal.documents
    ]
    world.principals["intake"] = Principal(
        principal.role, principal.access_key_id, principal.secret_access_key, without_tags
    )
    try:
        assert any(r.startswith("ec2:CreateTags") for r in world.refused("intake", log))
    finally:
        world.principals["intake"] = principal


def test_the_schedule_intake_creates_can_invoke_cutover_through_the_scheduler_role(
    world: World, requested: tuple[str, CallLog]
) -> None:
    _, log = requested
    (create,) = [c for c in log.calls if c.operation == "CreateSchedule"]
    target = create.params["Target"]
    role = world.scheduler_role
    account = world.account

    assume = Request(
        "sts:AssumeRole",
        target["RoleArn"],
        {
            "aws:SourceAccount": account.account_id,
            "aws:SourceArn": account.arn("scheduler", f"schedule-group/{create.params['GroupName']}"),
        },
        principal_service="scheduler.amazonaws.com",
    )
    invoke = Request("lambda:InvokeFunction", target["Arn"])

    assert evaluate([role["AssumeRolePolicyDocument"]], assume).allowed
    assert evaluate([p["PolicyDocument"] for p in role["Policies"]], invoke).allowed


def test_cutover_calls_pass_under_cutover_role(world: World, requested: tuple[str, CallLog]) -> None:
    instance_id, intake_log = requested
    (create,) = [c for c in intake_log.calls if c.operation == "CreateSchedule"]
    request = CutoverRequest.model_validate_json(create.params["Target"]["Input"])
    log = CallLog()
    deps = build_cutover(
        CutoverSettings.from_environment(world.environments["cutover"]), AwsClients(world.session("cutover", log))
    )

    outcome = start_cutover([request], deps)

    assert world.refused("cutover", log) == []
    assert "ec2:StopInstances" in log.operations(), outcome
    assert world.aws.state_of(instance_id) in ("stopping", "stopped")


def test_status_sync_calls_pass_under_status_sync_role(world: World, requested: tuple[str, CallLog]) -> None:
    instance_id, _ = requested
    ref = InstanceRef(account_id=world.account.account_id, region=world.account.region, instance_id=instance_id)
    world.status_api.put(ref, Phase.REPLICATING, progress=40, reason="initial replication")
    log = CallLog()
    deps = build_status_sync(
        StatusSyncSettings.from_environment(world.environments["status_sync"]),
        AwsClients(world.session("status_sync", log)),
    )

    sync_statuses(deps)

    assert world.refused("status_sync", log) == []
    assert "ec2:CreateTags" in log.operations()
    tags = world.tags_of(instance_id)
    assert tags[STATUS] == Phase.REPLICATING.value
    assert tags[PROGRESS] == "40"


def test_reconcile_calls_pass_under_reconcile_role(world: World) -> None:
    aws = world.aws
    group = aws.workload_group("iam-missed", ingress=BOTH_PORTS)
    aws.launch(AMI_UBUNTU, groups=[group], tags={MIGRATE: "true"})  # tagged, never seen by intake
    log = CallLog()
    deps = build_reconcile(
        ReconcileSettings.from_environment(world.environments["reconcile"]), AwsClients(world.session("reconcile", log))
    )

    reconcile(deps)

    assert world.refused("reconcile", log) == []
    assert "lambda:Invoke" in log.operations()


# ---------------------------------------------------------------- calls outside the policy are denied


@pytest.mark.parametrize(
    ("function", "call"),
    [
        pytest.param("intake", "stop", id="intake-stops-an-instance"),
        pytest.param("status_sync", "stop", id="status-sync-stops-an-instance"),
        pytest.param("reconcile", "tag", id="reconcile-writes-tags"),
    ],
)
def test_moto_denies_an_action_outside_the_role(
    world: World, requested: tuple[str, CallLog], function: str, call: str
) -> None:
    instance_id, _ = requested
    ec2 = world.session(function, CallLog()).client("ec2")

    def forbidden() -> None:
        if call == "stop":
            ec2.stop_instances(InstanceIds=[instance_id])
        else:
            ec2.create_tags(Resources=[instance_id], Tags=[{"Key": STATUS, "Value": "Migrated"}])

    with pytest.raises(ClientError) as denied:
        forbidden()

    assert denied.value.response["Error"]["Code"] in ("AccessDenied", "UnauthorizedOperation"), denied.value.response


def test_no_role_may_write_the_tag_that_guards_stop_instances(world: World, requested: tuple[str, CallLog]) -> None:
    instance_id, _ = requested
    arn = world.account.arn("ec2", f"instance/{instance_id}")
    for function in ("intake", "cutover", "status_sync"):
        documents = world.principals[function].documents
        allowed = evaluate(documents, Request("ec2:CreateTags", arn, {"aws:TagKeys": [STATUS, REASON, UPDATED_AT]}))
        forged = evaluate(documents, Request("ec2:CreateTags", arn, {"aws:TagKeys": [STATUS, MIGRATE]}))

        assert allowed.allowed, function
        assert forged.decision == "ImplicitDeny", function


def test_cutover_may_stop_only_an_instance_tagged_for_migration(world: World) -> None:
    documents = world.principals["cutover"].documents
    arn = world.account.arn("ec2", "instance/i-0123456789abcdef0")

    tagged = evaluate(documents, Request("ec2:StopInstances", arn, {f"aws:ResourceTag/{MIGRATE}": "True"}))
    untagged = evaluate(documents, Request("ec2:StopInstances", arn, {}))
    declined = evaluate(documents, Request("ec2:StopInstances", arn, {f"aws:ResourceTag/{MIGRATE}": "false"}))

    assert tagged.allowed
    assert untagged.decision == "ImplicitDeny"
    assert declined.decision == "ImplicitDeny"


def test_status_sync_may_start_only_an_instance_tagged_for_migration(world: World) -> None:
    # A rollback before commit starts the source again (docs/ROLLBACK.md), scoped like cutover's StopInstances.
    documents = world.principals["status_sync"].documents
    arn = world.account.arn("ec2", "instance/i-0123456789abcdef0")

    tagged = evaluate(documents, Request("ec2:StartInstances", arn, {f"aws:ResourceTag/{MIGRATE}": "yes"}))
    untagged = evaluate(documents, Request("ec2:StartInstances", arn, {}))
    stop = evaluate(documents, Request("ec2:StopInstances", arn, {f"aws:ResourceTag/{MIGRATE}": "yes"}))

    assert tagged.allowed
    assert untagged.decision == "ImplicitDeny"
    assert stop.decision == "ImplicitDeny"


def test_status_sync_may_not_read_the_queue_sas(world: World) -> None:
    # moto allows it (the action is in the role, moto does not compare resources); the exact policy does not.
    documents = world.principals["status_sync"].documents
    sas = Request("secretsmanager:GetSecretValue", world.aws.side.queue_sas_secret_arn)
    key = Request("secretsmanager:GetSecretValue", world.aws.side.status_api_key_secret_arn)

    assert evaluate(documents, key).allowed
    assert evaluate(documents, sas).decision == "ImplicitDeny"


def test_scheduler_role_is_not_assumable_with_a_schedule_arn_or_from_another_account(world: World) -> None:
    trust = [world.scheduler_role["AssumeRolePolicyDocument"]]
    account = world.account
    role_arn = world.aws.side.scheduler_role_arn

    def assume(source_arn: str, source_account: str = account.account_id) -> str:
        context: Mapping[str, str] = {"aws:SourceArn": source_arn, "aws:SourceAccount": source_account}
        request = Request("sts:AssumeRole", role_arn, context, principal_service="scheduler.amazonaws.com")
        return evaluate(trust, request).decision

    group = account.arn("scheduler", f"schedule-group/{SCHEDULER_GROUP}")
    assert assume(group) == "Allow"
    assert assume(account.arn("scheduler", f"schedule/{SCHEDULER_GROUP}/aws2azure-cutover-i-1")) == "ImplicitDeny"
    assert assume(account.arn("scheduler", "schedule-group/someone-elses")) == "ImplicitDeny"
    assert assume(group, source_account="210987654321") == "ImplicitDeny"


def test_the_ssm_calls_are_allowed_only_as_the_template_scopes_them(world: World) -> None:
    """The SSM path's calls (moto has no DescribeInstanceInformation, so the moto run uses the manual install;
    the exact statements are evaluated here instead): intake sends only the stack's install document, only
    to instances tagged for migration; status sync reads command invocations; neither may do the other's."""
    intake, status_sync = world.principals["intake"].documents, world.principals["status_sync"].documents
    account, region = world.aws.side.account_id, world.aws.side.region
    partition_arn = f"arn:aws:ssm:{region}:{account}:document"
    stack_documents = [f"{partition_arn}/{name}" for name in _document_names(intake, partition_arn)]
    assert stack_documents, "intake's policy names no install document"
    instance = world.account.arn("ec2", "instance/i-0123456789abcdef0")
    tagged = {f"ssm:resourceTag/{MIGRATE}": "true"}

    assert all(evaluate(intake, Request("ssm:SendCommand", doc)).allowed for doc in stack_documents)
    assert evaluate(intake, Request("ssm:SendCommand", instance, tagged)).allowed
    assert not evaluate(intake, Request("ssm:SendCommand", instance, {})).allowed
    assert not evaluate(intake, Request("ssm:SendCommand", f"{partition_arn}/AWS-RunShellScript")).allowed
    assert evaluate(intake, Request("ssm:DescribeInstanceInformation", "*")).allowed
    assert evaluate(status_sync, Request("ssm:GetCommandInvocation", "*")).allowed
    assert not evaluate(status_sync, Request("ssm:SendCommand", instance, tagged)).allowed


def _document_names(documents: list[dict[str, Any]], prefix: str) -> list[str]:
    names = []
    for document in documents:
        for statement in document.get("Statement", []):
            resources = statement.get("Resource", [])
            for resource in resources if isinstance(resources, list) else [resources]:
                if isinstance(resource, str) and resource.startswith(prefix + "/"):
                    names.append(resource.removeprefix(prefix + "/"))
    return names


def test_phase_announcements_may_go_only_to_the_phase_topic(world: World, requested: tuple[str, CallLog]) -> None:
    """intake's run published its phase change (allowed above); the statement names that topic and no other,
    for intake and status sync only, and it is absent when PhaseTopicArn is empty."""
    _, log = requested
    (publish,) = [c for c in log.calls if c.operation == "Publish"]
    topic = publish.params["TopicArn"]
    other = world.account.arn("sns", "someone-elses-topic")
    for function in ("intake", "status_sync"):
        documents = world.principals[function].documents
        assert evaluate(documents, Request("sns:Publish", topic)).allowed, function
        assert evaluate(documents, Request("sns:Publish", other)).decision == "ImplicitDeny", function
    for function in ("cutover", "reconcile"):
        assert evaluate(world.principals[function].documents, Request("sns:Publish", topic)).decision == (
            "ImplicitDeny"
        ), function
    without = resolve(
        world.template["Resources"]["IntakeRole"]["Properties"]["Policies"][0]["PolicyDocument"],
        world.template,
        {"PhaseTopicArn": ""},
    )
    assert not any("sns:Publish" in json.dumps(statement) for statement in without["Statement"])
