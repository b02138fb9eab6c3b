"""The API's request and response bodies (records themselves are ``migration.records`` models)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from migration.lifecycle import Phase
from migration.queries import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE
from migration.records import MigrationEvent, MigrationRecord

Reason = Annotated[str, Field(max_length=512, description="Why, in words kept in the audit log.")]


class _Body(BaseModel):
    # A misspelt field is a client's mistake worth a 400, not something to ignore silently.
    model_config = ConfigDict(extra="forbid", frozen=True)


class CutoverRequest(_Body):
    """Cut over now, instead of waiting for the window."""

    source_stopped: bool = Field(
        default=False,
        description="The operator has stopped the EC2 instance (ASR cannot stop an AWS source itself).",
    )
    reason: Reason = ""


class WaveCutoverRequest(_Body):
    """Cut a whole wave over together: the AWS side stops its sources, and the stopped members fail over in
    ASR recovery plans of at most 100 machines, in parallel."""

    source_stopped: bool = Field(
        default=False,
        description="The operator has already stopped the wave's EC2 instances; without it the AWS side stops "
        "them (status sync reads the request from each member's record).",
    )
    at: AwareDatetime | None = Field(
        default=None,
        description="The wave's cutover window (ISO 8601 with a zone, within 90 days): the wave waits for it on a "
        "durable timer, then stops its sources and fails over. Without it the cutover starts now.",
    )
    reason: Reason = ""


class WaveCutoverStarted(BaseModel):
    """The wave's cutover orchestration was started; its members are claimed into recovery plans at ``at``."""

    wave: str
    orchestration_id: str
    status: str = "started"
    at: datetime | None = None


class ApproveRequest(_Body):
    reason: Reason = ""


class CancelRequest(_Body):
    reason: Reason = ""


class RetryRequest(_Body):
    reason: Reason = ""


class RollbackRequest(_Body):
    """Roll a failover back before its commit: the failed-over VM is deleted, the source started again in AWS."""

    reason: Reason = ""


class ResumeRequest(_Body):
    """Resume the ASR job a migration waits on, which ASR suspended for an operator (replicationJobs resume)."""

    reason: Reason = ""


class JobResumed(BaseModel):
    migration_id: str
    job_id: str
    state: str = Field(description="The job's state as ASR answered the resume.")
    status_url: str


class ListQuery(_Body):
    wave: str | None = None
    phase: str | None = None
    page_size: int = Field(default=DEFAULT_PAGE_SIZE, ge=1, le=MAX_PAGE_SIZE)
    continuation: str | None = None


class NotificationView(BaseModel):
    """How one phase change's notification stands (migration/notifications.py)."""

    sequence: int
    event_id: str
    phase: str
    status: str
    attempts: int
    created_at: datetime
    finished_at: datetime | None = None
    last_error: str = ""
    delivered_to: list[str] = []


class MigrationDetail(BaseModel):
    """One migration: its current record and its audit log, oldest first."""

    migration: MigrationRecord
    events: list[MigrationEvent]
    # Its latest notifications (a CloudEvent per phase change), newest first; empty when none are configured.
    notifications: list[NotificationView] = []


Action = Literal["start", "cutover", "approve", "cancel", "retry", "resume", "rollback"]


class Accepted(BaseModel):
    """The request was handed to the migration's orchestration; watch ``status_url`` for the outcome."""

    migration_id: str
    action: Action
    signal: str = Field(description="The orchestration started, or the external event raised on it.")
    phase: Phase | None = Field(default=None, description="The phase when the request was accepted.")
    status_url: str


class ErrorDetail(BaseModel):
    code: str
    message: str
    problems: list[str] = Field(default_factory=list)
    correlation_id: str | None = Field(
        default=None, description="Set on server errors; the same id is in the Function App's log."
    )


class ErrorBody(BaseModel):
    error: ErrorDetail
