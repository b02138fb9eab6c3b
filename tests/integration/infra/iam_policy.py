"""A small, strict evaluator of identity-based and trust policies, for the statements moto does not evaluate.

moto's server (5.2) checks a request's signature and whether some statement's Action matches, but
compares every statement's Resource with "*" for EC2, DynamoDB, Secrets Manager, Scheduler and Lambda,
and evaluates only StringEquals conditions on keys present in the request's parameters (it ignores
every other operator, and never reads trust policies for service principals). This module evaluates
the Resource and Condition elements as the IAM User Guide describes them:

- policy evaluation logic, one account: an explicit Deny wins, else an Allow, else an implicit deny
  (https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_evaluation-logic.html);
- Action and Resource with * and ? wildcards, actions case-insensitive, ARNs case-sensitive, NotAction
  and NotResource (reference_policies_elements_*.html);
- condition operators, with ...IfExists and the ForAllValues/ForAnyValue set operators
  (reference_policies_elements_condition_operators.html and
  reference_policies_condition-single-vs-multi-valued-context-keys.html):
  a key absent from the request makes a condition false, except for negated operators
  (StringNotEquals, StringNotLike, ArnNotEquals, ArnNotLike), ...IfExists, ForAllValues (true on an
  absent or empty key: hence the "Null" guard) and Null itself.

An operator it does not know raises, so a policy can never pass by an operator being skipped.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

ContextValue = str | Sequence[str]
Decision = Literal["Allow", "ExplicitDeny", "ImplicitDeny"]


@dataclass(frozen=True)
class Request:
    """One authorization: an action on one resource, with the request's condition context."""

    action: str
    resource: str = "*"
    context: Mapping[str, ContextValue] = field(default_factory=dict)
    principal_service: str | None = None  # for trust policies: the service that assumes the role


@dataclass(frozen=True)
class Result:
    decision: Decision
    statement: str | None = None  # the Sid (or index) of the statement that decided

    @property
    def allowed(self) -> bool:
        return self.decision == "Allow"


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, list | tuple) else [value]


def _glob(pattern: str, value: str, *, case_sensitive: bool) -> bool:
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, value, 0 if case_sensitive else re.IGNORECASE) is not None


def _arn_like(pattern: str, arn: str) -> bool:
    # Each of the six colon-separated parts is matched on its own; the resource part may hold colons.
    pattern_parts = pattern.split(":", 5)
    arn_parts = arn.split(":", 5)
    if len(pattern_parts) != 6 or len(arn_parts) != 6:
        return False
    return all(_glob(p, a, case_sensitive=True) for p, a in zip(pattern_parts, arn_parts, strict=True))


def _resource_matches(pattern: str, resource: str) -> bool:
    if pattern == "*":
        return True
    if resource == "*":
        return False  # an action without resource-level permissions needs "*"
    return _arn_like(pattern, resource)


OPERATORS: dict[str, tuple[bool, Any]] = {
    # name: (negated, match(policy_value, request_value) -> bool)
    "StringEquals": (False, lambda p, v: p == v),
    "StringNotEquals": (True, lambda p, v: p == v),
    "StringEqualsIgnoreCase": (False, lambda p, v: p.lower() == v.lower()),
    "StringNotEqualsIgnoreCase": (True, lambda p, v: p.lower() == v.lower()),
    "StringLike": (False, lambda p, v: _glob(p, v, case_sensitive=True)),
    "StringNotLike": (True, lambda p, v: _glob(p, v, case_sensitive=True)),
    "ArnEquals": (False, _arn_like),
    "ArnLike": (False, _arn_like),
    "ArnNotEquals": (True, _arn_like),
    "ArnNotLike": (True, _arn_like),
    "Bool": (False, lambda p, v: str(p).lower() == str(v).lower()),
}


def _context_values(context: Mapping[str, ContextValue], key: str) -> list[str] | None:
    for name, value in context.items():
        if name.lower() == key.lower():  # condition key names are case-insensitive
            return [value] if isinstance(value, str) else list(value)
    return None


def _condition_holds(operator: str, key: str, policy_values: list[Any], context: Mapping[str, ContextValue]) -> bool:
    values = _context_values(context, key)
    if operator == "Null":
        (wanted,) = {str(v).lower() for v in policy_values}
        return (values is None) == (wanted == "true")
    qualifier, _, base = operator.rpartition(":")
    if_exists = base.endswith("IfExists")
    base = base.removesuffix("IfExists")
    if base not in OPERATORS or qualifier not in ("", "ForAllValues", "ForAnyValue"):
        raise NotImplementedError(f"condition operator {operator} is not evaluated here; add it from the IAM docs")
    negated, match = OPERATORS[base]

    def one(value: str) -> bool:
        hit = any(match(str(p), value) for p in policy_values)
        return not hit if negated else hit

    if qualifier == "ForAllValues":
        return values is None or all(one(v) for v in values)
    if qualifier == "ForAnyValue":
        return values is not None and any(one(v) for v in values)
    if values is None:
        return if_exists or negated
    if len(values) != 1:
        raise ValueError(f"{key} is multivalued: use ForAllValues or ForAnyValue with {operator}")
    return one(values[0])


def _conditions_hold(condition: Mapping[str, Mapping[str, Any]], context: Mapping[str, ContextValue]) -> bool:
    return all(
        _condition_holds(operator, key, _as_list(values), context)
        for operator, block in condition.items()
        for key, values in block.items()
    )


def _principal_matches(statement: Mapping[str, Any], request: Request) -> bool:
    if "Principal" not in statement:
        return request.principal_service is None
    principal = statement["Principal"]
    if request.principal_service is None:
        return False
    if principal == "*":
        return True
    return request.principal_service in _as_list(principal.get("Service"))


def _statement_applies(statement: Mapping[str, Any], request: Request) -> bool:
    if "NotAction" in statement:
        action_hit = not any(_glob(a, request.action, case_sensitive=False) for a in _as_list(statement["NotAction"]))
    else:
        action_hit = any(_glob(a, request.action, case_sensitive=False) for a in _as_list(statement.get("Action")))
    if not action_hit or not _principal_matches(statement, request):
        return False
    if "NotResource" in statement:
        if any(_resource_matches(r, request.resource) for r in _as_list(statement["NotResource"])):
            return False
    elif "Resource" in statement:
        if not any(_resource_matches(r, request.resource) for r in _as_list(statement["Resource"])):
            return False
    elif request.principal_service is None:
        raise ValueError("an identity-based statement without Resource or NotResource is invalid")
    return _conditions_hold(statement.get("Condition") or {}, request.context)


def evaluate(documents: Iterable[Mapping[str, Any]], request: Request) -> Result:
    """The decision for one request against these policy documents (same account)."""
    allowed_by: str | None = None
    for document in documents:
        for index, statement in enumerate(_as_list(document.get("Statement"))):
            if not _statement_applies(statement, request):
                continue
            name = str(statement.get("Sid", index))
            if statement.get("Effect") == "Deny":
                return Result("ExplicitDeny", name)
            if statement.get("Effect") == "Allow" and allowed_by is None:
                allowed_by = name
    return Result("Allow", allowed_by) if allowed_by is not None else Result("ImplicitDeny")
