"""ASR jobs: what each operation's job is called, how long it takes, and its state at any instant.

A job's whole timeline is fixed when it starts (duration, outcome, where it fails, whether it suspends),
so its state is a function of the clock. Only cancel and resume change the timeline afterwards.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

from devstack.asr_sim.contract import AsrErrorSpec

# JobProperties.state in the SDK's models: "NotStarted, InProgress, Succeeded, Failed, Cancelled, Suspended or
# Other"; stateDescription refines it ("Completed, PartiallySucceeded, CompletedWithInformation or Skipped").
JobStateName = Literal["NotStarted", "InProgress", "Succeeded", "Failed", "Cancelled", "Suspended", "Other"]
Outcome = Literal["Succeeded", "Failed"]
FINISHED = frozenset({"Succeeded", "Failed", "Cancelled", "Other"})
QUEUE_SECONDS = 5.0


@dataclass(frozen=True)
class Scenario:
    name: str
    friendly_name: str
    seconds: float
    tasks: tuple[tuple[str, str], ...]
    cancellable: bool = False


SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in (
        Scenario("EnableDr", "Enable replication", 240, (
            ("PrerequisitesCheckTask", "Prerequisites check for enabling protection"),
            ("IdentifyTargetTask", "Identifying the replication target"),
            ("EnableProtectionTask", "Enable replication"),
            ("StartInitialReplicationTask", "Starting initial replication"),
            ("UpdateDraStateTask", "Updating the provider states"),
        ), cancellable=True),
        Scenario("UpdateVmProperties", "Update the virtual machine", 60, (
            ("UpdateVmPropertiesTask", "Update the virtual machine properties"),
        ), cancellable=True),
        Scenario("TestFailover", "Test failover", 480, (
            ("PrerequisitesCheckTask", "Prerequisites check for test failover"),
            ("CreateTestVmTask", "Create the test virtual machine"),
            ("StartTestVmTask", "Start the test virtual machine"),
        ), cancellable=True),
        Scenario("TestFailoverCleanup", "Cleanup test failover", 240, (
            ("DeleteTestVmTask", "Delete the test virtual machine"),
            ("CompleteTestFailoverTask", "Complete testing"),
        )),
        Scenario("UnplannedFailover", "Failover", 720, (
            ("PrerequisitesCheckTask", "Prerequisites check for failover"),
            ("CreateVmTask", "Create the virtual machine in Azure"),
            ("StartVmTask", "Start the replica virtual machine"),
        )),
        Scenario("Commit", "Commit", 120, (("CommitFailoverTask", "Commit failover"),)),
        Scenario("DisableDr", "Disable replication", 180, (
            ("DisableProtectionTask", "Disable replication"),
            ("UpdateDraStateTask", "Updating the provider states"),
        )),
        Scenario("PurgeProtection", "Delete replicated item", 60, (
            ("PurgeProtectionTask", "Delete replicated item"),
        )),
        Scenario("CreateRecoveryPlan", "Create a recovery plan", 30, (
            ("CreateRecoveryPlanTask", "Create a recovery plan"),
        )),
        Scenario("DeleteRecoveryPlan", "Delete a recovery plan", 30, (
            ("DeleteRecoveryPlanTask", "Delete a recovery plan task"),
        )),
    )
}  # fmt: skip

JobTarget = Literal["ProtectionEntity", "RecoveryPlan"]


@dataclass
class Job:
    name: str
    scenario: Scenario
    created_at: datetime
    seconds: float
    outcome: Outcome
    target_kind: JobTarget
    target_name: str
    target_friendly_name: str
    target_internal_id: str
    # The operation's input, kept so Restart can run it again.
    request: dict[str, Any] = field(default_factory=dict)
    # Which task fails when the outcome is Failed (index into scenario.tasks).
    failing_task: int = -1
    error: AsrErrorSpec | None = None
    suspend_after_seconds: float | None = None
    resumed_at: datetime | None = None
    cancelled_at: datetime | None = None
    settled: bool = False
    restarted_as: str | None = None
    # Recovery plan jobs move several items; their names, for the effects and the tasks.
    members: tuple[str, ...] = ()
    activity_id: str = ""
    # An injected ending (FaultPlan.end_states): the state and stateDescription a successful run shows instead.
    end_state: tuple[str, str] | None = None

    @property
    def took_effect(self) -> bool:
        """Whether the operation's effect applies: a run that succeeded and was not shown as Cancelled."""
        return self.outcome == "Succeeded" and (self.end_state is None or self.end_state[0] != "Cancelled")

    def state_description_at(self, now: datetime) -> str:
        state = self.state_at(now)
        if self.end_state is not None and state == self.end_state[0] and self.outcome == "Succeeded":
            return self.end_state[1]
        return {"Succeeded": "Completed"}.get(state, state)

    @property
    def started_at(self) -> datetime:
        return self.created_at + timedelta(seconds=QUEUE_SECONDS)

    @property
    def run_seconds(self) -> float:
        """How long it runs: a failing job stops at the end of its failing task."""
        if self.outcome == "Failed" and self.failing_task >= 0:
            return self.seconds * (self.failing_task + 1) / len(self.scenario.tasks)
        return self.seconds

    def end_time(self) -> datetime | None:
        """When it finishes(ed); None while it waits, suspended, for Resume."""
        if self.cancelled_at is not None:
            return self.cancelled_at
        if self.suspend_after_seconds is not None and self.suspend_after_seconds < self.run_seconds:
            if self.resumed_at is None:
                return None
            return self.resumed_at + timedelta(seconds=self.run_seconds - self.suspend_after_seconds)
        return self.started_at + timedelta(seconds=self.run_seconds)

    def suspended_at(self) -> datetime | None:
        if self.suspend_after_seconds is None or self.suspend_after_seconds >= self.run_seconds:
            return None
        return self.started_at + timedelta(seconds=self.suspend_after_seconds)

    def state_at(self, now: datetime) -> JobStateName:
        if self.cancelled_at is not None and now >= self.cancelled_at:
            return "Cancelled"
        if now < self.started_at:
            return "NotStarted"
        suspended = self.suspended_at()
        if suspended is not None and self.resumed_at is None and now >= suspended:
            return "Suspended"
        end = self.end_time()
        if end is None or now < end:
            return "InProgress"
        if self.end_state is not None and self.outcome == "Succeeded":
            return self.end_state[0]  # type: ignore[return-value]
        return self.outcome

    def elapsed_run_seconds(self, now: datetime) -> float:
        """Seconds of work done by ``now`` (time spent suspended does not count)."""
        if now <= self.started_at:
            return 0.0
        limit = now if self.cancelled_at is None else min(now, self.cancelled_at)
        suspended = self.suspended_at()
        if suspended is None or limit <= suspended:
            done = (limit - self.started_at).total_seconds()
        elif self.resumed_at is None or limit <= self.resumed_at:
            done = (suspended - self.started_at).total_seconds()
        else:
            done = (suspended - self.started_at).total_seconds() + (limit - self.resumed_at).total_seconds()
        return min(done, self.run_seconds)

    def allowed_actions(self, now: datetime) -> list[str]:
        state = self.state_at(now)
        if state in ("Failed", "Cancelled") and self.restarted_as is None:
            return ["Restart"]
        if state == "Suspended":
            return ["Resume", "Cancel"] if self.scenario.cancellable else ["Resume"]
        if state in ("NotStarted", "InProgress") and self.scenario.cancellable:
            return ["Cancel"]
        return []
