"""The policy evaluator against the IAM User Guide's own examples (URLs in tests/integration/infra/iam_policy.py)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.integration.infra.iam_policy import Request, evaluate

ARN = "arn:aws:ec2:eu-west-1:123456789012:instance/i-0123456789abcdef0"


def allow(condition: dict[str, Any] | None = None, resource: str = "arn:aws:ec2:*:*:instance/*") -> dict[str, Any]:
    statement: dict[str, Any] = {"Effect": "Allow", "Action": "ec2:CreateTags", "Resource": resource}
    if condition:
        statement["Condition"] = condition
    return {"Version": "2012-10-17", "Statement": [statement]}


def decide(document: dict[str, Any], context: dict[str, Any], resource: str = ARN) -> str:
    return evaluate([document], Request("ec2:CreateTags", resource, context)).decision


KEYS = {"ForAllValues:StringEquals": {"aws:TagKeys": ["a", "b"]}}


@pytest.mark.parametrize(
    ("context", "decision"),
    [
        pytest.param({"aws:TagKeys": ["a"]}, "Allow", id="subset"),
        pytest.param({"aws:TagKeys": ["a", "b"]}, "Allow", id="all"),
        pytest.param({"aws:TagKeys": ["a", "c"]}, "ImplicitDeny", id="one-outside"),
        # "The ForAllValues set operator also returns true if there are no context keys in the request."
        pytest.param({}, "Allow", id="absent-key-is-vacuously-true"),
    ],
)
def test_for_all_values(context: dict[str, Any], decision: str) -> None:
    assert decide(allow(KEYS), context) == decision


def test_null_false_closes_the_vacuous_case() -> None:
    guarded = allow({**KEYS, "Null": {"aws:TagKeys": "false"}})

    assert decide(guarded, {}) == "ImplicitDeny"
    assert decide(guarded, {"aws:TagKeys": ["a"]}) == "Allow"


def test_a_missing_key_fails_a_plain_operator_and_passes_a_negated_one() -> None:
    assert decide(allow({"StringEquals": {"aws:ResourceTag/x": "1"}}), {}) == "ImplicitDeny"
    assert decide(allow({"StringNotEquals": {"aws:ResourceTag/x": "1"}}), {}) == "Allow"
    assert decide(allow({"StringEqualsIfExists": {"aws:ResourceTag/x": "1"}}), {}) == "Allow"


def test_ignore_case_and_like() -> None:
    assert decide(
        allow({"StringEqualsIgnoreCase": {"aws:ResourceTag/m": ["true"]}}), {"aws:ResourceTag/m": "TRUE"}
    ) == ("Allow")
    assert decide(allow({"StringEquals": {"aws:ResourceTag/m": ["true"]}}), {"aws:ResourceTag/m": "TRUE"}) == (
        "ImplicitDeny"
    )
    assert decide(allow({"StringLike": {"aws:ResourceTag/m": "t?u*"}}), {"aws:ResourceTag/m": "true"}) == "Allow"


def test_resource_arns_match_part_by_part_and_case_sensitively() -> None:
    assert decide(allow(), {}, ARN) == "Allow"
    assert decide(allow(), {}, ARN.replace("instance/", "volume/")) == "ImplicitDeny"
    assert decide(allow(resource="arn:aws:ec2:*:*:Instance/*"), {}, ARN) == "ImplicitDeny"
    # An action without resource-level permissions is authorized against "*" only.
    assert decide(allow(), {}, resource="*") == "ImplicitDeny"


def test_explicit_deny_wins() -> None:
    document = allow()
    document["Statement"].append({"Effect": "Deny", "Action": "ec2:*", "Resource": "*"})

    assert decide(document, {}) == "ExplicitDeny"


def test_an_unknown_operator_is_never_skipped() -> None:
    with pytest.raises(NotImplementedError):
        decide(allow({"DateGreaterThan": {"aws:CurrentTime": "2020-01-01T00:00:00Z"}}), {})


def test_trust_policy_principal_and_source_arn() -> None:
    trust = {
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Service": "scheduler.amazonaws.com"},
                "Action": "sts:AssumeRole",
                "Condition": {
                    "ArnEquals": {"aws:SourceArn": "arn:aws:scheduler:eu-west-1:123456789012:schedule-group/g"}
                },
            }
        ]
    }
    role = "arn:aws:iam::123456789012:role/r"
    group = {"aws:SourceArn": "arn:aws:scheduler:eu-west-1:123456789012:schedule-group/g"}

    assert evaluate([trust], Request("sts:AssumeRole", role, group, "scheduler.amazonaws.com")).allowed
    assert not evaluate([trust], Request("sts:AssumeRole", role, group, "events.amazonaws.com")).allowed
    assert not evaluate([trust], Request("sts:AssumeRole", role, group)).allowed  # no principal: identity policy
