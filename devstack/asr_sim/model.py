"""The simulator's state: discovered machines, replicated items and recovery plans.

Items keep a few orthogonal facts (enabled? test failover stage? failover stage? being removed?) and the
job in flight; everything the API shows (protectionState, allowedOperations, health) is derived from
them and the clock in ``views``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from devstack.asr_sim.replication import ReplicationProgress

TestFailoverStage = Literal["None", "InProgress", "WaitingForCompletion", "Failed", "Cleaning", "CleanedUp"]
FailoverStage = Literal["None", "InProgress", "CommitPending", "Committing", "Committed"]
RemovalStage = Literal["None", "Disabling", "Purging"]


@dataclass
class Machine:
    name: str
    friendly_name: str
    ip: str
    os_type: str
    os_name: str
    os_supported_by_name: bool
    disks_gib: tuple[int, ...]
    disk_ids: tuple[str, ...]
    churn_mb_per_day: float
    upload_mb_per_s: float
    agent_id: str
    protected_item_name: str | None = None
    # The appliance lists a machine in its OffAzure site only once its Mobility agent has registered.
    discovered: bool = True
    discovered_at: datetime | None = None


@dataclass
class ProtectedItem:
    name: str
    machine_name: str
    internal_id: str
    policy_name: str
    created_at: datetime
    settings: dict[str, Any]
    protected_disk_ids: tuple[str, ...]
    enabled: bool = False
    enable_failed: bool = False
    test_failover: TestFailoverStage = "None"
    failover: FailoverStage = "None"
    removal: RemovalStage = "None"
    active_job: str | None = None
    replication: ReplicationProgress | None = None
    last_failover_time: datetime | None = None
    last_test_failover_time: datetime | None = None
    failover_recovery_point_id: str | None = None
    last_error_job: str | None = None
    jobs: list[str] = field(default_factory=list)


@dataclass
class RecoveryPlan:
    name: str
    friendly_name: str
    created_at: datetime
    # (group type, [protected item names]) in the order the API shows them.
    groups: list[tuple[str, list[str]]]
    ready: bool = False
    deleting: bool = False
    active_job: str | None = None
    last_job: str | None = None
    last_unplanned_failover_time: datetime | None = None

    @property
    def members(self) -> list[str]:
        return [name for _, names in self.groups for name in names]
