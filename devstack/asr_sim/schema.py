"""Request bodies checked against the official definitions, as the service checks them.

The definitions are the SDK's own generated models (azure-mgmt-recoveryservicessiterecovery 2.0.0, generated
from azure-rest-api-specs specification/recoveryservicessiterecovery): for every property they carry its REST
name, whether it is optional (``_is_optional``; the swagger's ``required`` list), its type (a model, a list, an
enum of known values or a scalar) and, for polymorphic models, the discriminator (``instanceType``) and the
subclasses it selects (``__mapping__``). What the service would refuse is refused here with 400 in ARM's error
shape, naming the property by its JSON path.
"""

from __future__ import annotations

import enum
import functools
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from azure.mgmt.recoveryservicessiterecovery import models as asr

from devstack.asr_sim.errors import ArmError

# The root input model of every ASR operation that takes a body (the swagger's body parameter schema).
REQUEST_MODELS: dict[str, type[Any]] = {
    "ReplicationProtectedItems_Create": asr.EnableProtectionInput,
    "ReplicationProtectedItems_Update": asr.UpdateReplicationProtectedItemInput,
    "ReplicationProtectedItems_TestFailover": asr.TestFailoverInput,
    "ReplicationProtectedItems_TestFailoverCleanup": asr.TestFailoverCleanupInput,
    "ReplicationProtectedItems_UnplannedFailover": asr.UnplannedFailoverInput,
    "ReplicationProtectedItems_Delete": asr.DisableProtectionInput,
    "ReplicationRecoveryPlans_Create": asr.CreateRecoveryPlanInput,
    "ReplicationRecoveryPlans_UnplannedFailover": asr.RecoveryPlanUnplannedFailoverInput,
}


@dataclass(frozen=True)
class Problem:
    code: str  # MissingRequiredParameter / InvalidParameter
    path: str
    message: str


@dataclass(frozen=True)
class _Kind:
    """What a property holds: 'model' (cls), 'list' (inner), 'dict' (inner), 'enum' (cls) or 'scalar'."""

    kind: str
    target: Any = None


def _kind_of(rf_type: Any) -> _Kind:
    """Read the SDK's deserializer chain (functools.partial objects) back into a type."""
    if rf_type is None:
        return _Kind("scalar")
    if isinstance(rf_type, functools.partial):
        name = rf_type.func.__name__
        args = rf_type.args
        if name == "_deserialize_with_optional":
            return _kind_of(args[0])
        if name == "_deserialize_model":
            return _Kind("model", args[0])
        if name == "_deserialize_sequence":
            return _Kind("list", _kind_of(args[0]))
        if name == "_deserialize_dict":
            return _Kind("dict", _kind_of(args[0]))
        if name == "_deserialize_with_union":
            kinds = [_kind_of(a) for a in args[0]]
            enums = [k for k in kinds if k.kind == "enum"]
            return enums[0] if enums else _Kind("scalar")
        if name == "_deserialize_default":
            target = args[0]
            if isinstance(target, type) and issubclass(target, enum.Enum):
                return _Kind("enum", target)
            return _Kind("scalar", target)
    return _Kind("scalar")


def _fields(cls: type[Any]) -> dict[str, Any]:
    cls()  # the SDK computes _attr_to_rest_field on first construction
    return {rf._rest_name: rf for rf in cls._attr_to_rest_field.values()}


def _resolve(cls: type[Any], value: dict[str, Any], path: str) -> tuple[type[Any], list[Problem]]:
    """A polymorphic model: its instanceType must select a known subclass (or name the base itself)."""
    mapping: dict[str, type[Any]] = getattr(cls, "__mapping__", {}) or {}
    discriminator = next((rf for rf in _fields(cls).values() if getattr(rf, "_is_discriminator", False)), None)
    if discriminator is None:
        return cls, []
    key = discriminator._rest_name
    chosen = value.get(key)
    where = f"{path}.{key}" if path else key
    if chosen is None:
        return cls, [Problem("MissingRequiredParameter", where, f"The parameter '{where}' is required.")]
    if chosen in mapping:
        return mapping[chosen], []
    if chosen == cls.__name__:  # AutoRest: a base definition's own name is its discriminator value
        return cls, []
    known = ", ".join(sorted(mapping)) or cls.__name__
    return cls, [Problem("InvalidParameter", where, f"'{where}' is '{chosen}', which is not one of: {known}.")]


def problems(cls: type[Any], value: Any, path: str = "") -> Iterator[Problem]:
    if not isinstance(value, dict):
        yield Problem("InvalidRequestContent", path or "body", f"'{path or 'body'}' must be a JSON object.")
        return
    concrete, found = _resolve(cls, value, path)
    yield from found
    for rest_name, rf in _fields(concrete).items():
        where = f"{path}.{rest_name}" if path else rest_name
        present = value.get(rest_name)
        if present is None:
            if not rf._is_optional and not getattr(rf, "_is_discriminator", False):
                yield Problem("MissingRequiredParameter", where, f"The parameter '{where}' is required.")
            continue
        yield from _check(_kind_of(rf._type), present, where)


def _check(kind: _Kind, value: Any, where: str) -> Iterator[Problem]:
    if kind.kind == "model":
        yield from problems(kind.target, value, where)
    elif kind.kind == "list":
        if not isinstance(value, list):
            yield Problem("InvalidParameter", where, f"'{where}' must be an array.")
            return
        for index, element in enumerate(value):
            yield from _check(kind.target, element, f"{where}[{index}]")
    elif kind.kind == "dict":
        if not isinstance(value, dict):
            yield Problem("InvalidParameter", where, f"'{where}' must be an object.")
    elif kind.kind == "enum":
        known = {member.value.lower(): member.value for member in kind.target}
        if not isinstance(value, str) or value.lower() not in known:
            allowed = ", ".join(known.values())
            yield Problem("InvalidParameter", where, f"'{where}' is {value!r}, which is not one of: {allowed}.")
    elif kind.target in (str,) and not isinstance(value, str):
        yield Problem("InvalidParameter", where, f"'{where}' must be a string.")
    elif kind.target in (int,) and (isinstance(value, bool) or not isinstance(value, int)):
        yield Problem("InvalidParameter", where, f"'{where}' must be an integer.")
    elif kind.target in (bool,) and not isinstance(value, bool):
        yield Problem("InvalidParameter", where, f"'{where}' must be a boolean.")


def validate(operation: str, body: dict[str, Any]) -> None:
    """Raise ARM's 400 for the first problem (the message lists every one found)."""
    cls = REQUEST_MODELS.get(operation)
    if cls is None:
        return
    found = list(problems(cls, body))
    if not found:
        return
    first = found[0]
    message = " ".join(p.message for p in found)
    details = [{"code": p.code, "target": p.path, "message": p.message} for p in found]
    raise ArmError(400, first.code, message, details=details)
