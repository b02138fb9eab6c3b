"""checkov custom check: no IAM statement in the SAM template allows a wildcard action.

checkov's own CKV_AWS_63 catches only a bare "*" and stops at the first statement of a policy;
this one looks at every statement of every policy document and rejects any action with "*" or
"?" in it (ec2:*, s3:Get*), and NotAction in an Allow statement (it grants everything else).
Loaded by infra/tools/check_templates.py with --external-checks-dir.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

# checkov lives in .venv-infra only; the project's mypy runs in .venv, where it is absent.
from checkov.cloudformation.checks.resource.base_resource_check import (  # type: ignore[import-not-found]
    BaseResourceCheck,
)
from checkov.common.models.enums import CheckCategories, CheckResult  # type: ignore[import-not-found]

CHECK_ID = "CKV_A2A_1"
POLICY_RESOURCES = (
    "AWS::IAM::Role",
    "AWS::IAM::Policy",
    "AWS::IAM::ManagedPolicy",
    "AWS::IAM::User",
    "AWS::IAM::Group",
    "AWS::SQS::QueuePolicy",
    "AWS::SNS::TopicPolicy",
    "AWS::S3::BucketPolicy",
    "AWS::Serverless::Function",
    "AWS::Serverless::StateMachine",
)


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _strings(value: Any) -> Iterator[str]:
    """Every string inside a value, intrinsic functions included (Fn::If branches, Fn::Sub text)."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)


def _policy_documents(resource_type: str, properties: dict[str, Any]) -> Iterator[Any]:
    for key in ("PolicyDocument", "AssumeRolePolicyDocument"):
        if key in properties:
            yield properties[key]
    for policy in _as_list(properties.get("Policies") or []):
        if isinstance(policy, dict) and "PolicyDocument" in policy:
            yield policy["PolicyDocument"]
        elif isinstance(policy, dict) and "Statement" in policy:
            yield policy  # SAM inline policy document


def _unreviewable_sam_policies(properties: dict[str, Any]) -> bool:
    """A SAM function's Policies entry that names a managed policy cannot be read here."""
    return any(isinstance(policy, str) for policy in _as_list(properties.get("Policies") or []))


def statement_problems(statement: Any) -> list[str]:
    if not isinstance(statement, dict):
        return []
    problems = []
    if statement.get("Effect") == "Allow" and "NotAction" in statement:
        problems.append("NotAction in an Allow statement")
    for action in _strings(statement.get("Action", [])):
        if "*" in action or "?" in action:
            problems.append(f"wildcard action {action!r}")
    return problems


class NoWildcardIamActions(BaseResourceCheck):  # type: ignore[misc]
    def __init__(self) -> None:
        super().__init__(
            name="Ensure no IAM statement allows a wildcard action or NotAction (aws2azure)",
            id=CHECK_ID,
            categories=(CheckCategories.IAM,),
            supported_resources=POLICY_RESOURCES,
        )

    def scan_resource_conf(self, conf: dict[str, Any]) -> CheckResult:
        properties = conf.get("Properties")
        if not isinstance(properties, dict):
            return CheckResult.UNKNOWN
        self.evaluated_keys = ["Properties"]
        if conf.get("Type") == "AWS::Serverless::Function" and _unreviewable_sam_policies(properties):
            return CheckResult.FAILED
        for document in _policy_documents(str(conf.get("Type")), properties):
            if not isinstance(document, dict):
                continue
            for statement in _as_list(document.get("Statement", [])):
                if statement_problems(statement):
                    return CheckResult.FAILED
        return CheckResult.PASSED


check = NoWildcardIamActions()
