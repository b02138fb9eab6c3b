"""Small in-memory implementations of the core's ports, type-checked against them.

The contract tests run the same assertions against these and against the real adapters.
"""

from __future__ import annotations

import builtins
import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from migration.errors import AwaitingDiscovery, InvalidInput, NotFound, PreconditionFailed
from migration.ports import (
    AsrGateway,
    AsrJob,
    Clock,
    DiscoveredMachine,
    MigrationStore,
    ReplicationPlan,
    ReplicationState,
)
from migration.records import MigrationEvent, MigrationRecord, Page


@dataclass
class ManualClock:
    current: datetime = datetime(2026, 11, 26, 8, tzinfo=UTC)

    def now(self) -> datetime:
        return self.current

    def advance(self, delta: timedelta) -> None:
        self.current += delta


class InMemoryStore:
    def __init__(self) -> None:
        self.records: dict[str, MigrationRecord] = {}
        self.events: list[MigrationEvent] = []
        self._etags = itertools.count(1)

    def get(self, migration_id: str) -> MigrationRecord:
        if migration_id not in self.records:
            raise NotFound(f"no migration {migration_id}")
        return self.records[migration_id].model_copy(deep=True)

    def create(self, record: MigrationRecord) -> MigrationRecord:
        if record.migration_id in self.records:
            raise PreconditionFailed(f"{record.migration_id} exists", code="Exists")
        stored = record.model_copy(update={"etag": str(next(self._etags))})
        self.records[record.migration_id] = stored
        return stored.model_copy(deep=True)

    def update(self, record: MigrationRecord) -> MigrationRecord:
        current = self.records.get(record.migration_id)
        if current is None:
            raise NotFound(f"no migration {record.migration_id}")
        if current.etag != record.etag:
            raise PreconditionFailed("stale etag", code="ConditionNotMet")
        stored = record.model_copy(update={"etag": str(next(self._etags))})
        self.records[record.migration_id] = stored
        return stored.model_copy(deep=True)

    def list(self, *, wave: str | None = None, phase: str | None = None, page_size: int = 100,
             continuation: str | None = None) -> Page:  # fmt: skip
        matching = sorted(
            (
                r
                for r in self.records.values()
                if (wave is None or r.wave == wave) and (phase is None or r.phase == phase)
            ),
            key=lambda r: r.migration_id,
        )
        try:
            start = int(continuation or 0)
        except ValueError:
            raise InvalidInput(f"bad continuation token {continuation!r}") from None
        items = matching[start : start + page_size]
        more = start + page_size < len(matching)
        return Page(items=items, continuation=str(start + page_size) if more else None)

    def list_waves(self) -> builtins.list[str]:
        return sorted({r.wave for r in self.records.values() if r.wave})

    def append_event(self, event: MigrationEvent) -> None:
        self.events.append(event)

    def list_events(self, migration_id: str, *, limit: int = 200) -> builtins.list[MigrationEvent]:
        return [e for e in self.events if e.migration_id == migration_id][:limit]


@dataclass
class FakeAsr:
    """ASR as the steps see it: one discovered machine per IP, items with allowed operations."""

    machines: dict[str, DiscoveredMachine] = field(default_factory=dict)
    items: dict[str, ReplicationState] = field(default_factory=dict)
    jobs: dict[str, AsrJob] = field(default_factory=dict)
    writes: list[tuple[str, str]] = field(default_factory=list)
    last_jobs: dict[tuple[str, str], str] = field(default_factory=dict)
    unsupported_os: set[str] = field(default_factory=set)

    def add_machine(self, ip: str, name: str = "machine-1", os_type: str = "Linux") -> DiscoveredMachine:
        machine = DiscoveredMachine(name=name, fabric_name="fabric", container_name="container",
                                    friendly_name=name, ip_addresses=(ip,), os_type=os_type)  # fmt: skip
        self.machines[ip] = machine
        return machine

    def _job(self, operation: str, item: str) -> str:
        job_id = f"job-{len(self.jobs) + 1}"
        self.jobs[job_id] = AsrJob(job_id=job_id, state="InProgress", display_name=operation)
        self.writes.append((operation, item))
        self.last_jobs[(operation, item)] = job_id
        return job_id

    def _last_job(self, item: str, operation: str) -> str:
        return self.last_jobs[(operation, item)]

    def _set(self, item: str, **changes: object) -> None:
        self.items[item] = self.items[item].model_copy(update=changes)

    def _require(self, item: str, operation: str) -> None:
        if item not in self.items:
            raise NotFound(f"no replicated item {item}")
        if operation not in self.items[item].allowed_operations:
            raise PreconditionFailed(f"{operation} not allowed on {item}", code="OperationNotAllowed")

    def find_machine_by_ip(self, private_ip: str) -> DiscoveredMachine:
        if private_ip not in self.machines:
            raise AwaitingDiscovery(f"no discovered machine with IP {private_ip} yet")
        return self.machines[private_ip]

    def ensure_os_supported(self, machine: DiscoveredMachine) -> None:
        if machine.name in self.unsupported_os:
            raise PreconditionFailed(f"{machine.os_name or machine.os_type} is not supported", code="UnsupportedOs")

    def begin_enable_replication(self, machine: DiscoveredMachine, plan: ReplicationPlan) -> str:
        if machine.name in self.items:
            # As the real adapter: a retried enable finds the item and answers its job, creating nothing.
            return self._last_job(machine.name, "EnableReplication")
        job = self._job("EnableReplication", machine.name)
        self.items[machine.name] = ReplicationState(
            protected_item_name=machine.name, protection_state="EnablingProtection",
            replication_health="Normal", allowed_operations=frozenset({"DisableProtection"}), progress_percent=0,
        )  # fmt: skip
        return job

    def get_replication_state(self, protected_item_name: str) -> ReplicationState:
        if protected_item_name not in self.items:
            raise NotFound(f"no replicated item {protected_item_name}")
        return self.items[protected_item_name]

    def get_job(self, job_id: str) -> AsrJob:
        if job_id not in self.jobs:
            raise NotFound(f"no job {job_id}")
        return self.jobs[job_id]

    def resume_job(self, job_id: str, comments: str = "") -> AsrJob:
        """As ASR's replicationJobs resume: only a Suspended job can be resumed."""
        job = self.get_job(job_id)
        if job.state != "Suspended":
            raise PreconditionFailed(f"job {job_id} is {job.state}, not Suspended", code="JobNotSuspended")
        self.jobs[job_id] = job.model_copy(update={"state": "InProgress", "verdict": "running"})
        self.writes.append(("ResumeJob", job_id))
        return self.jobs[job_id]

    def protect(self, item: str) -> None:
        """Initial replication finished: the item can be failed over."""
        protected = frozenset({"TestFailover", "UnplannedFailover", "DisableProtection"})
        self._set(item, protection_state="Protected", progress_percent=100, allowed_operations=protected)

    def begin_test_failover(self, protected_item_name: str) -> str:
        self._require(protected_item_name, "TestFailover")
        return self._job("TestFailover", protected_item_name)

    def begin_test_failover_cleanup(self, protected_item_name: str) -> str:
        return self._job("TestFailoverCleanup", protected_item_name)

    def begin_unplanned_failover(self, protected_item_name: str) -> str:
        # As the real adapter: never a second failover. A running one answers its job; a finished one is refused.
        state = self.items.get(protected_item_name)
        if state is not None and state.protection_state == "UnplannedFailoverInProgress":
            return self._last_job(protected_item_name, "UnplannedFailover")
        if state is not None and state.protection_state == "UnplannedFailoverCompleted":
            raise PreconditionFailed(f"{protected_item_name} has already failed over", code="AlreadyFailedOver")
        self._require(protected_item_name, "UnplannedFailover")
        self._set(
            protected_item_name,
            allowed_operations=frozenset(),
            protection_state="UnplannedFailoverInProgress",
        )
        return self._job("UnplannedFailover", protected_item_name)

    def failover_done(self, item: str) -> None:
        after_failover = frozenset({"CompleteMigration", "Commit", "DisableProtection", "ChangePit"})
        self._set(item, protection_state="UnplannedFailoverCompleted", allowed_operations=after_failover)

    def begin_commit(self, protected_item_name: str) -> str:
        self._require(protected_item_name, "Commit")
        return self._job("Commit", protected_item_name)

    def begin_complete_migration(self, protected_item_name: str) -> str:
        return self._job("CompleteMigration", protected_item_name)

    def begin_disable_replication(self, protected_item_name: str) -> str:
        self._require(protected_item_name, "DisableProtection")
        return self._job("DisableProtection", protected_item_name)

    def create_recovery_plan(self, plan_name: str, protected_item_names: Sequence[str]) -> str | None:
        self.writes.append(("CreateRecoveryPlan", plan_name))
        return None

    def begin_recovery_plan_failover(self, plan_name: str) -> str:
        return self._job("RecoveryPlanFailover", plan_name)

    def begin_recovery_plan_commit(self, plan_name: str) -> str:
        return self._job("RecoveryPlanCommit", plan_name)


def _conforms(store: InMemoryStore, asr: FakeAsr, clock: ManualClock) -> tuple[MigrationStore, AsrGateway, Clock]:
    # Type-checked proof that the fakes implement the ports (mypy checks this assignment).
    return store, asr, clock
