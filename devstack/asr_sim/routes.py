"""The ARM paths the simulator answers, each named by the SDK's operation id."""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import unquote

VAULT_PREFIX = re.compile(
    r"^/subscriptions/(?P<subscription>[^/]+)/resourceGroups/(?P<resource_group>[^/]+)"
    r"/providers/Microsoft\.RecoveryServices/vaults/(?P<vault>[^/]+)(?P<rest>/.*)?$",
    re.IGNORECASE,
)

_F = r"/replicationFabrics/(?P<fabric>[^/]+)"
_C = _F + r"/replicationProtectionContainers/(?P<container>[^/]+)"
_ITEM = _C + r"/replicationProtectedItems/(?P<item>[^/]+)"
_PLAN = r"/replicationRecoveryPlans/(?P<plan>[^/]+)"
_JOB = r"/replicationJobs/(?P<job>[^/]+)"

ROUTES: tuple[tuple[str, str, str], ...] = (
    ("GET", r"/replicationFabrics", "ReplicationFabrics_List"),
    ("GET", _F, "ReplicationFabrics_Get"),
    ("GET", r"/replicationAppliances", "ReplicationAppliances_List"),
    ("GET", r"/replicationProtectionContainers", "ReplicationProtectionContainers_List"),
    ("GET", _F + r"/replicationProtectionContainers", "ReplicationProtectionContainers_ListByReplicationFabrics"),
    ("GET", _C, "ReplicationProtectionContainers_Get"),
    ("GET", _C + r"/replicationProtectableItems", "ReplicationProtectableItems_ListByReplicationProtectionContainers"),
    ("GET", _C + r"/replicationProtectableItems/(?P<protectable>[^/]+)", "ReplicationProtectableItems_Get"),
    ("GET", r"/replicationProtectionContainerMappings", "ReplicationProtectionContainerMappings_List"),
    ("GET", _C + r"/replicationProtectionContainerMappings",
     "ReplicationProtectionContainerMappings_ListByReplicationProtectionContainers"),
    ("GET", _C + r"/replicationProtectionContainerMappings/(?P<mapping>[^/]+)",
     "ReplicationProtectionContainerMappings_Get"),
    ("GET", r"/replicationPolicies", "ReplicationPolicies_List"),
    ("GET", r"/replicationPolicies/(?P<policy>[^/]+)", "ReplicationPolicies_Get"),
    ("GET", r"/replicationProtectedItems", "ReplicationProtectedItems_List"),
    ("GET", _C + r"/replicationProtectedItems", "ReplicationProtectedItems_ListByReplicationProtectionContainers"),
    ("GET", _ITEM, "ReplicationProtectedItems_Get"),
    ("PUT", _ITEM, "ReplicationProtectedItems_Create"),
    ("PATCH", _ITEM, "ReplicationProtectedItems_Update"),
    ("DELETE", _ITEM, "ReplicationProtectedItems_Purge"),
    ("POST", _ITEM + r"/testFailover", "ReplicationProtectedItems_TestFailover"),
    ("POST", _ITEM + r"/testFailoverCleanup", "ReplicationProtectedItems_TestFailoverCleanup"),
    ("POST", _ITEM + r"/unplannedFailover", "ReplicationProtectedItems_UnplannedFailover"),
    ("POST", _ITEM + r"/failoverCommit", "ReplicationProtectedItems_FailoverCommit"),
    ("POST", _ITEM + r"/remove", "ReplicationProtectedItems_Delete"),
    ("GET", _ITEM + r"/operationResults/(?P<result>[^/]+)", "ReplicationProtectedItems_OperationResults"),
    ("GET", r"/replicationJobs", "ReplicationJobs_List"),
    ("GET", _JOB, "ReplicationJobs_Get"),
    ("POST", _JOB + r"/restart", "ReplicationJobs_Restart"),
    ("POST", _JOB + r"/resume", "ReplicationJobs_Resume"),
    ("POST", _JOB + r"/cancel", "ReplicationJobs_Cancel"),
    ("GET", _JOB + r"/operationResults/(?P<result>[^/]+)", "ReplicationJobs_OperationResults"),
    ("GET", r"/replicationOperationStatus/(?P<result>[^/]+)", "ReplicationOperationStatus_Get"),
    ("GET", r"/replicationRecoveryPlans", "ReplicationRecoveryPlans_List"),
    ("GET", _PLAN, "ReplicationRecoveryPlans_Get"),
    ("PUT", _PLAN, "ReplicationRecoveryPlans_Create"),
    ("DELETE", _PLAN, "ReplicationRecoveryPlans_Delete"),
    ("POST", _PLAN + r"/unplannedFailover", "ReplicationRecoveryPlans_UnplannedFailover"),
    ("POST", _PLAN + r"/failoverCommit", "ReplicationRecoveryPlans_FailoverCommit"),
    ("GET", _PLAN + r"/operationResults/(?P<result>[^/]+)", "ReplicationRecoveryPlans_OperationResults"),
    ("GET", r"/replicationSupportedOperatingSystems", "SupportedOperatingSystems_Get"),
)  # fmt: skip

_COMPILED = tuple((method, re.compile(f"^{pattern}$", re.IGNORECASE), op) for method, pattern, op in ROUTES)


@dataclass(frozen=True)
class Match:
    operation: str
    params: dict[str, str]


def match(method: str, rest: str) -> Match | None:
    """The route for a path below the vault; None if no path matches at all."""
    for route_method, pattern, operation in _COMPILED:
        if route_method != method:
            continue
        found = pattern.match(rest)
        if found:
            return Match(operation, {k: unquote(v) for k, v in found.groupdict().items()})
    return None


def path_exists(rest: str) -> bool:
    return any(pattern.match(rest) for _, pattern, _ in _COMPILED)
