"""IAM statements in the forms AWS documents, checked on the template after the SAM transform.

Each rule is one AWS documentation fact (docs/AWS.md lists the pages):

trust      a role that a service other than Lambda assumes names its source in the trust policy:
           EventBridge Scheduler with aws:SourceAccount and an aws:SourceArn that is a schedule GROUP's
           ARN (Scheduler assumes the execution role with the group's ARN; a schedule's ARN or a name
           prefix never matches); any other service with aws:SourceArn or aws:SourceAccount.
permission every AWS::Lambda::Permission for a service principal names the SourceArn it accepts,
           so no other rule, bucket or schedule of any account can invoke the function.
resource   a queue or topic policy that lets a service principal in names the aws:SourceArn.
tag-keys   a statement that allows ec2:CreateTags or ec2:DeleteTags lists the exact tag keys it may
           write (ForAllValues:StringEquals on aws:TagKeys, no wildcard, with "Null": false so a
           request without tags does not pass vacuously), and they are status keys only: a role that
           could write a request tag (aws2azure:migrate) could satisfy the aws:ResourceTag condition
           that guards ec2:StopInstances.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

SCHEDULER = "scheduler.amazonaws.com"
LAMBDA = "lambda.amazonaws.com"
TAG_WRITE_ACTIONS = frozenset({"ec2:createtags", "ec2:deletetags"})
ARN_OPERATORS = ("ArnEquals", "ArnLike", "StringEquals", "StringLike")


def as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def statements(document: Any) -> Iterator[dict[str, Any]]:
    if isinstance(document, dict):
        for statement in as_list(document.get("Statement")):
            if isinstance(statement, dict):
                yield statement


def service_principals(statement: dict[str, Any]) -> list[str]:
    principal = statement.get("Principal")
    if not isinstance(principal, dict):
        return []
    return [s for s in as_list(principal.get("Service")) if isinstance(s, str)]


def condition_values(statement: dict[str, Any], key: str, operators: tuple[str, ...]) -> list[Any]:
    """The values the statement's Condition gives for key under any of these operators (IfExists excluded)."""
    found: list[Any] = []
    for operator, block in (statement.get("Condition") or {}).items():
        if operator in operators and isinstance(block, dict):
            for name, value in block.items():
                if name.lower() == key.lower():
                    found.extend(as_list(value))
    return found


def _is_schedule_group_arn(value: Any, resources: dict[str, Any]) -> bool:
    """A GetAtt of a ScheduleGroup's Arn, or a literal/Sub ARN of the form ...:scheduler:...:schedule-group/NAME."""
    if isinstance(value, dict) and "Fn::GetAtt" in value:
        target = value["Fn::GetAtt"]
        name, attribute = target if isinstance(target, list) else str(target).split(".", 1)
        return attribute == "Arn" and (resources.get(name) or {}).get("Type") == "AWS::Scheduler::ScheduleGroup"
    text = value.get("Fn::Sub") if isinstance(value, dict) else value
    if isinstance(text, list):
        text = text[0]
    if not isinstance(text, str):
        return False
    head, _, rest = text.partition(":scheduler:")
    return head.startswith("arn:") and ":schedule-group/" in rest and ":schedule/" not in rest


def trust_problems(logical_id: str, role: dict[str, Any], resources: dict[str, Any]) -> list[str]:
    problems: list[str] = []
    document = (role.get("Properties") or {}).get("AssumeRolePolicyDocument")
    for index, statement in enumerate(statements(document)):
        if statement.get("Effect") != "Allow":
            continue
        where = f"{logical_id} trust statement {index}"
        for service in service_principals(statement):
            source_arns = condition_values(statement, "aws:SourceArn", ARN_OPERATORS)
            source_accounts = condition_values(statement, "aws:SourceAccount", ("StringEquals",))
            if service == SCHEDULER:
                if not source_accounts:
                    problems.append(f"{where}: {SCHEDULER} without aws:SourceAccount (StringEquals)")
                if not source_arns:
                    problems.append(f"{where}: {SCHEDULER} without aws:SourceArn of a schedule group")
                for value in source_arns:
                    if not _is_schedule_group_arn(value, resources):
                        problems.append(
                            f"{where}: aws:SourceArn {value!r} is not a schedule group's ARN; Scheduler assumes "
                            "its execution role with the group's ARN (arn:...:scheduler:REGION:ACCOUNT:"
                            "schedule-group/NAME), so this role could never be assumed"
                        )
            elif service != LAMBDA and not source_arns and not source_accounts:
                problems.append(f"{where}: {service} without aws:SourceArn or aws:SourceAccount (confused deputy)")
    return problems


def permission_problems(logical_id: str, permission: dict[str, Any]) -> list[str]:
    properties = permission.get("Properties") or {}
    principal = properties.get("Principal")
    if isinstance(principal, str) and principal.endswith(".amazonaws.com") and "SourceArn" not in properties:
        return [f"{logical_id}: lets {principal} invoke the function without a SourceArn"]
    return []


def resource_policy_problems(logical_id: str, resource: dict[str, Any]) -> list[str]:
    problems: list[str] = []
    document = (resource.get("Properties") or {}).get("PolicyDocument")
    for index, statement in enumerate(statements(document)):
        if statement.get("Effect") != "Allow":
            continue
        for service in service_principals(statement):
            if not condition_values(statement, "aws:SourceArn", ARN_OPERATORS):
                problems.append(f"{logical_id} statement {index}: lets {service} in without aws:SourceArn")
    return problems


def _actions(statement: dict[str, Any]) -> set[str]:
    return {a.lower() for a in as_list(statement.get("Action")) if isinstance(a, str)}


def tag_key_problems(where: str, statement: dict[str, Any], allowed_keys: frozenset[str]) -> list[str]:
    if statement.get("Effect") != "Allow" or not (_actions(statement) & TAG_WRITE_ACTIONS):
        return []
    if "NotAction" in statement:
        return [f"{where}: NotAction with a tag-writing action"]
    condition = statement.get("Condition") or {}
    problems: list[str] = []
    for operator, block in condition.items():
        if (
            isinstance(block, dict)
            and any(k.lower() == "aws:tagkeys" for k in block)
            and operator not in {"ForAllValues:StringEquals", "Null"}
        ):
            problems.append(f"{where}: aws:TagKeys under {operator}; list the keys with ForAllValues:StringEquals")
    keys = condition_values(statement, "aws:TagKeys", ("ForAllValues:StringEquals",))
    if not keys:
        problems.append(f"{where}: writes tags without an aws:TagKeys allowlist (ForAllValues:StringEquals)")
    for key in keys:
        if not isinstance(key, str) or "*" in key or "?" in key:
            problems.append(f"{where}: tag key {key!r} is not one literal key")
        elif key not in allowed_keys:
            problems.append(
                f"{where}: may write {key!r}, which is not a tag aws2azure writes ({', '.join(sorted(allowed_keys))})"
            )
    null = condition_values(statement, "aws:TagKeys", ("Null",))
    if [str(v).lower() for v in null] != ["false"]:
        problems.append(f'{where}: without "Null": {{aws:TagKeys: false}}, ForAllValues passes a request with no tags')
    return problems


def role_policy_statements(role: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for policy in as_list((role.get("Properties") or {}).get("Policies")):
        if isinstance(policy, dict):
            for statement in statements(policy.get("PolicyDocument")):
                yield str(policy.get("PolicyName")), statement


def check(template: dict[str, Any], allowed_tag_keys: frozenset[str]) -> tuple[list[str], list[str]]:
    """(problems, notes) for a CloudFormation template (after the SAM transform)."""
    resources: dict[str, Any] = template.get("Resources") or {}
    problems: list[str] = []
    counts = {"trust": 0, "permission": 0, "resource": 0, "tag-keys": 0}
    for logical_id, resource in resources.items():
        kind = (resource or {}).get("Type")
        if kind == "AWS::IAM::Role":
            counts["trust"] += 1
            problems += trust_problems(logical_id, resource, resources)
            for policy_name, statement in role_policy_statements(resource):
                if _actions(statement) & TAG_WRITE_ACTIONS:
                    counts["tag-keys"] += 1
                where = f"{logical_id} policy {policy_name} {statement.get('Sid', '')}".rstrip()
                problems += tag_key_problems(where, statement, allowed_tag_keys)
        elif kind in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"):
            for statement in statements((resource.get("Properties") or {}).get("PolicyDocument")):
                if _actions(statement) & TAG_WRITE_ACTIONS:
                    counts["tag-keys"] += 1
                problems += tag_key_problems(
                    f"{logical_id} {statement.get('Sid', '')}".rstrip(), statement, allowed_tag_keys
                )
        elif kind == "AWS::Lambda::Permission":
            counts["permission"] += 1
            problems += permission_problems(logical_id, resource)
        elif kind in ("AWS::SQS::QueuePolicy", "AWS::SNS::TopicPolicy"):
            counts["resource"] += 1
            problems += resource_policy_problems(logical_id, resource)
    notes = [
        f"{counts['trust']} trust policies, {counts['permission']} Lambda permissions, "
        f"{counts['resource']} queue/topic policies, {counts['tag-keys']} tag-writing statements checked"
    ]
    return problems, notes
