"""What each Lambda returns: a small JSON record of what it did and why (also what tests assert on)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

IntakeAction = Literal[
    "requested",  # readiness passed; MigrationRequested is on the queue
    "not-ready",  # a readiness rule or a tag value failed; the instance is tagged NotReady with the reason
    "cancel-requested",  # the migrate tag was removed; CancelRequested is on the queue
    "cancelled",  # the migrate tag was removed before anything reached Azure
    "rescheduled",  # a migration in flight got a new cutover time
    "ignored",  # nothing to do (not an instance, no request tag changed, instance gone, ...)
    "rejected",  # the event itself is malformed
]


class IntakeOutcome(BaseModel):
    model_config = ConfigDict(frozen=True)

    action: IntakeAction
    reason: str = ""
    instance_id: str | None = None
    request_id: str | None = None
    event_id: str | None = None
    failed_rules: list[str] = Field(default_factory=list)
    cutover_schedule: str | None = None


CutoverAction = Literal["stop-requested", "failover-requested", "source-not-stopped", "ignored", "rejected"]


class CutoverOutcome(BaseModel):
    model_config = ConfigDict(frozen=True)

    action: CutoverAction
    reason: str = ""
    instance_id: str | None = None
    event_id: str | None = None


class CutoverRunOutcome(BaseModel):
    """One cutover invocation: what happened to each instance it was given."""

    model_config = ConfigDict(frozen=True)

    outcomes: list[CutoverOutcome] = Field(default_factory=list)

    def actions(self) -> dict[str, str]:
        return {o.instance_id or "": o.action for o in self.outcomes}


class StatusSyncOutcome(BaseModel):
    model_config = ConfigDict(frozen=True)

    checked: int = 0
    updated: list[str] = Field(default_factory=list)
    unchanged: int = 0
    not_in_azure: list[str] = Field(default_factory=list)
    errors: dict[str, str] = Field(default_factory=dict)


class ReconcileOutcome(BaseModel):
    model_config = ConfigDict(frozen=True)

    rerun: list[str] = Field(default_factory=list)
    # Repairs of lost events: instance id -> what was done (cancel-requested, rescheduled).
    repaired: dict[str, str] = Field(default_factory=dict)
    skipped: dict[str, str] = Field(default_factory=dict)
    left_for_next_run: int = 0
