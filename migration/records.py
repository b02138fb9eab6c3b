"""What aws2azure records about a migration: the current record and its audit events.

The same models are the HTTP status API's JSON, so the AWS side reads what Azure writes.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, computed_field, field_validator, model_validator

from migration.events import MigrationRequestedData, VmChecks
from migration.identity import InstanceRef
from migration.lifecycle import Phase, RollbackRequest

ReplicationHealth = Literal["Normal", "Warning", "Critical", "None"]
REQUEST_FIELDS = tuple(MigrationRequestedData.model_fields)


# Entering VALIDATING means the failover job succeeded (a recovery plan's members go straight to COMMITTING, which
# then marks it), and so on.
_PHASE_STAMPS = {
    Phase.FAILING_OVER: "failover_started_at",
    Phase.VALIDATING: "failover_done_at",
    Phase.COMMITTING: "failover_done_at",
    Phase.COMPLETING: "committed_at",
    Phase.MIGRATED: "completed_at",
}


class CutoverTimeline(BaseModel):
    """When each step of one machine's cutover happened; downtime is source stopped -> failover done."""

    model_config = ConfigDict(extra="forbid")

    stop_requested_at: AwareDatetime | None = None  # the wave asked the AWS side to stop the source
    source_stopped_at: AwareDatetime | None = None  # EC2 reported it stopped (FailoverRequested.time)
    failover_started_at: AwareDatetime | None = None  # the failover job (the machine's, or its plan's) started
    failover_done_at: AwareDatetime | None = None  # that job succeeded: the Azure VM runs
    committed_at: AwareDatetime | None = None
    completed_at: AwareDatetime | None = None
    # Rollback before commit: the Azure side has undone the failover and asks the AWS side to start the source again
    # (status sync does it once per request: the aws2azure:rollback-start tag keeps this time).
    restart_requested_at: AwareDatetime | None = None

    def on_phase(self, phase: Phase, at: datetime) -> None:
        """Stamp the step a move into ``phase`` marks (first time only: a rerun keeps the first stamp)."""
        field = _PHASE_STAMPS.get(phase)
        if field is not None and getattr(self, field) is None:
            setattr(self, field, at)

    def downtime_seconds(self) -> float | None:
        if self.source_stopped_at is None or self.failover_done_at is None:
            return None
        return (self.failover_done_at - self.source_stopped_at).total_seconds()


class ValidationResult(BaseModel):
    """The validation gate's latest look at the failed-over VM (migration.ports.VmHealth, as the record keeps it)."""

    model_config = ConfigDict(extra="forbid")

    vm_id: str
    verdict: Literal["passed", "pending", "failed"]
    summary: str
    findings: list[str] = Field(default_factory=list)
    checked_at: AwareDatetime
    # The operator's checks (aws2azure:check-tcp / check-http) run through Run Command: one result line per check
    # of the latest finished run, and while a run is in flight the SDK's continuation token of its long-running
    # operation, so the next look polls that run instead of sending a second one.
    checks: list[str] = Field(default_factory=list)
    run_command: str | None = None
    # Runs in a row that found a check failed (the gate fails at lifecycle.CHECK_FAILED_RUNS).
    failed_runs: int = 0


class PhaseChange(BaseModel):
    """The record's latest phase change, numbered per migration (1 = the request was recorded).

    Written in the same ETag-guarded update as the phase itself, so the number is unique and gapless; the
    notification outbox is keyed by it (migration/notifications.py)."""

    model_config = ConfigDict(extra="forbid")

    sequence: int = Field(ge=1)
    previous: Phase | None = None
    phase: Phase
    at: AwareDatetime
    reason: str = ""


class MigrationRecord(BaseModel):
    """The current state of one instance's migration (one per instance, ever)."""

    model_config = ConfigDict(extra="forbid")

    # The request as it arrived, whole: a retry or a reconcile starts again from exactly this.
    request: MigrationRequestedData
    phase: Phase
    # Why the migration is where it is, in words an operator can act on (set for NotReady/Failed/...).
    reason: str = ""
    progress_percent: int | None = Field(default=None, ge=0, le=100)
    replication_health: ReplicationHealth | None = None
    rpo_seconds: int | None = None
    protected_item_name: str | None = None
    current_job_id: str | None = None
    # Set once, before the failover request is sent: the guard that makes a second one impossible.
    failover_requested_at: AwareDatetime | None = None
    # The ASR recovery plan that cuts this instance over with its wave; while set, the wave owns the
    # failover and commit, and the instance's own orchestration only completes the migration.
    cutover_plan: str | None = None
    timeline: CutoverTimeline = Field(default_factory=CutoverTimeline)
    # The Azure VM the failover created (its ARM id) and the validation gate's latest look at it (docs/VALIDATION.md).
    target_vm_id: str | None = None
    validation: ValidationResult | None = None
    # A rollback asked for (by an operator, or the failed validation gate) and not yet carried out or retried.
    rollback: RollbackRequest | None = None
    # The latest phase change (numbered); None for a record written before notifications existed.
    last_change: PhaseChange | None = None
    created_at: AwareDatetime
    updated_at: AwareDatetime
    # The store's concurrency token; not part of the record's content.
    etag: str | None = Field(default=None, exclude=True)

    @model_validator(mode="before")
    @classmethod
    def _one_request(cls, data: Any) -> Any:
        """The request is kept once. Derived keys (migration_id, instance, wave, which the JSON shows) are
        dropped on the way in; a record built from the request's fields one by one gets them as its request."""
        if not isinstance(data, dict):
            return data
        data = dict(data)
        if isinstance(data.get("request"), str):  # Table Storage keeps the request as its JSON text
            data["request"] = json.loads(data["request"])
        flat = {key: data.pop(key) for key in (*REQUEST_FIELDS, "migration_id") if key in data}
        flat.pop("migration_id", None)
        if "request" not in data and flat:
            data["request"] = flat
        return data

    @computed_field  # type: ignore[prop-decorator]
    @property
    def migration_id(self) -> str:
        return self.request.instance.migration_id

    @computed_field  # type: ignore[prop-decorator]
    @property
    def instance(self) -> InstanceRef:
        return self.request.instance

    @computed_field  # type: ignore[prop-decorator]
    @property
    def wave(self) -> str | None:
        return self.request.wave

    # What the request says, read where the record is at hand.
    @property
    def request_id(self) -> str:
        return self.request.request_id

    @property
    def private_ip(self) -> str:
        return str(self.request.private_ip)

    @property
    def os_family(self) -> Literal["windows", "linux"]:
        return self.request.os_family

    @property
    def cutover_at(self) -> datetime | None:
        return self.request.cutover_at

    @property
    def target_size(self) -> str | None:
        return self.request.target_size

    @property
    def target_subnet(self) -> str | None:
        return self.request.target_subnet

    @property
    def test_failover(self) -> bool:
        return self.request.test_failover

    @property
    def target_disk_type(self) -> str | None:
        return self.request.target_disk_type

    @property
    def hybrid_benefit(self) -> bool | None:
        return self.request.hybrid_benefit

    @property
    def vm_checks(self) -> VmChecks | None:
        checks = self.request.checks
        return None if checks is None or checks.empty else checks

    @field_validator("timeline", mode="before")
    @classmethod
    def _timeline_from_text(cls, value: object) -> object:
        # Table Storage has no nested properties: the store keeps the timeline as its JSON text.
        return CutoverTimeline.model_validate_json(value) if isinstance(value, str) else value

    @field_validator("validation", mode="before")
    @classmethod
    def _validation_from_text(cls, value: object) -> object:
        return ValidationResult.model_validate_json(value) if isinstance(value, str) else value

    @field_validator("rollback", mode="before")
    @classmethod
    def _rollback_from_text(cls, value: object) -> object:
        return RollbackRequest.model_validate_json(value) if isinstance(value, str) else value

    @field_validator("last_change", mode="before")
    @classmethod
    def _last_change_from_text(cls, value: object) -> object:
        return PhaseChange.model_validate_json(value) if isinstance(value, str) else value

    def enter_phase(self, phase: Phase, at: datetime, reason: str = "") -> None:
        """Move to ``phase`` (already allowed by the lifecycle): stamp the timeline and number the change."""
        if phase is self.phase and self.last_change is not None:
            return
        self.timeline.on_phase(phase, at)
        sequence = self.last_change.sequence + 1 if self.last_change is not None else 1
        previous = None if self.last_change is None and phase is self.phase else self.phase
        self.last_change = PhaseChange(sequence=sequence, previous=previous, phase=phase, at=at, reason=reason)
        self.phase = phase


class MigrationEvent(BaseModel):
    """One line of a migration's append-only audit log."""

    model_config = ConfigDict(extra="forbid")

    migration_id: str
    at: AwareDatetime
    kind: str  # e.g. PhaseChanged, AsrJobStarted, AsrJobFinished, EventReceived, Error
    phase: Phase
    message: str
    details: dict[str, Any] = Field(default_factory=dict)


class Page(BaseModel):
    """One page of a listing; pass ``continuation`` back to get the next."""

    items: list[MigrationRecord]
    continuation: str | None = None


class WaveSummary(BaseModel):
    wave: str
    total: int
    by_phase: dict[str, int]
    progress_percent: float
    updated_at: datetime | None = None
