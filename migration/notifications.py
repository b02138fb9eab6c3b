"""Notifications: a CloudEvent for every phase change, through an outbox, delivered at least once, in order.

- ``PhaseChanged`` (``io.aws2azure.migration.PhaseChanged.v1``): the CloudEvents 1.0 envelope of
  ``migration.events`` around ``PhaseChangedData``. Its id is ``<migration id>:<sequence>``, so a receiver that
  gets one twice (at-least-once) can tell.
- The outbox: one ``Notification`` per phase change, keyed by migration id and the record's change number
  (``MigrationRecord.last_change``). The step that moves the phase writes it right after the record; a rerun of
  that step (activities are at-least-once) writes it again, which is a no-op, so a crash between the two writes
  loses nothing.
- ``NotificationDelivery``: sends each migration's pending notifications in sequence order to every configured
  sink (a webhook, an Event Grid topic), backs off on failure without letting a later one overtake an earlier
  one, and dead-letters one that could not be delivered within the budget. Every delivery, first failure and
  dead letter is in the migration's audit log.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Annotated, Final, Literal, Protocol

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from migration.errors import MigrationError, NotFound, PreconditionFailed
from migration.events import CloudEventEnvelope, event_source
from migration.identity import InstanceRef
from migration.lifecycle import Phase
from migration.ports import Clock, MigrationStore
from migration.records import MigrationEvent, MigrationRecord, PhaseChange

logger = logging.getLogger("aws2azure.notifications")

PHASE_CHANGED: Final = "io.aws2azure.migration.PhaseChanged.v1"
COMPONENT: Final = "notifications"
DeliveryStatus = Literal["pending", "delivered", "dead"]
_MAX_ERROR_CHARS = 1000
LEASE = timedelta(minutes=2)


class PhaseChangedData(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    instance: InstanceRef
    migration_id: str
    # 1 for the recorded request, then one more for every phase change: gapless per migration.
    sequence: Annotated[int, Field(ge=1)]
    previous_phase: Phase | None = None  # None for the first (the request recorded)
    phase: Phase
    reason: str = ""
    wave: str | None = None
    changed_at: AwareDatetime


class PhaseChanged(CloudEventEnvelope):
    type: Literal["io.aws2azure.migration.PhaseChanged.v1"] = PHASE_CHANGED
    data: PhaseChangedData


def event_id(migration_id: str, sequence: int) -> str:
    return f"{migration_id}:{sequence}"


def phase_changed_event(record: MigrationRecord, change: PhaseChange) -> PhaseChanged:
    """The CloudEvent for one phase change: the same change always makes the same event (id included)."""
    instance = record.instance
    data = PhaseChangedData(
        instance=instance, migration_id=record.migration_id, sequence=change.sequence,
        previous_phase=change.previous, phase=change.phase, reason=change.reason, wave=record.wave,
        changed_at=change.at,
    )  # fmt: skip
    return PhaseChanged.model_validate({
        "specversion": "1.0", "id": event_id(record.migration_id, change.sequence),
        "source": event_source(instance, COMPONENT), "time": change.at, "subject": instance.instance_id,
        "data": data,
    })  # fmt: skip


class Notification(BaseModel):
    """One outbox entry: one phase change's event and how its delivery stands."""

    model_config = ConfigDict(extra="forbid")

    migration_id: str
    sequence: Annotated[int, Field(ge=1)]
    event_id: str
    event_type: str = PHASE_CHANGED
    phase: Phase
    created_at: AwareDatetime
    event: str  # the CloudEvent, JSON, exactly as sent
    status: DeliveryStatus = "pending"
    attempts: int = 0
    next_attempt_at: AwareDatetime | None = None
    last_error: str = ""
    delivered_to: list[str] = Field(default_factory=list)
    finished_at: AwareDatetime | None = None
    etag: str | None = Field(default=None, exclude=True)

    @classmethod
    def of(cls, record: MigrationRecord, change: PhaseChange) -> Notification:
        event = phase_changed_event(record, change)
        return cls(migration_id=record.migration_id, sequence=change.sequence, event_id=event.id,
                   phase=change.phase, created_at=change.at, event=event.to_json())  # fmt: skip


class NotificationOutbox(Protocol):
    """Where notifications wait for delivery (Table Storage, functions/adapters/notification_store.py)."""

    def add(self, notification: Notification) -> None:
        """Insert it, and mark its migration as having pending notifications; the same one again is a no-op."""
        ...

    def migrations_pending(self) -> list[tuple[str, str]]:
        """(migration id, mark) of every migration with notifications to deliver; one partition query."""
        ...

    def pending(self, migration_id: str) -> list[Notification]:
        """The migration's pending notifications, oldest (lowest sequence) first."""
        ...

    def save(self, notification: Notification) -> Notification:
        """Replace it if its etag is current (PreconditionFailed otherwise)."""
        ...

    def lease(self, migration_id: str, mark: str, until: datetime) -> str | None:
        """Take the migration for one sweep until ``until``; the new mark, or None if another sweep holds it."""
        ...

    def release(self, migration_id: str, mark: str) -> None:
        """Give the lease back (If-Match ``mark``; a changed mark is left as it is)."""
        ...

    def clear_pending(self, migration_id: str, mark: str) -> bool:
        """Unmark the migration, only if nothing was added since ``mark`` was read."""
        ...

    def recent(self, migration_id: str | None = None, *, limit: int = 20) -> list[Notification]:
        """The latest ones (newest first): of one migration, or the latest delivered or dead-lettered of all."""
        ...


class NotificationSink(Protocol):
    """A destination: a webhook or an Event Grid topic (functions/adapters/notify_sinks.py)."""

    @property
    def name(self) -> str: ...

    def send(self, event_json: str) -> None:
        """Deliver one CloudEvent (structured JSON); raise a MigrationError if it was not accepted."""
        ...


@dataclass(frozen=True, slots=True)
class DeliveryPolicy:
    first_backoff: timedelta = timedelta(seconds=30)
    longest_backoff: timedelta = timedelta(minutes=10)
    # A notification not delivered this long after its phase change is dead-lettered (NOTIFY_DEAD_LETTER_AFTER).
    dead_letter_after: timedelta = timedelta(hours=24)

    def backoff(self, attempts: int) -> timedelta:
        doubled: timedelta = self.first_backoff * (2 ** min(max(attempts - 1, 0), 16))
        return min(doubled, self.longest_backoff)


@dataclass(slots=True)
class DeliveryReport:
    delivered: int = 0
    failed_attempts: int = 0
    dead_lettered: int = 0
    waiting: int = 0
    migrations: int = 0
    errors: list[str] = field(default_factory=list)


def queue_phase_change(outbox: NotificationOutbox | None, record: MigrationRecord, phase: Phase) -> None:
    """After a record update that moved (or had already moved) to ``phase``: put that change in the outbox.

    Idempotent: called again for the same change (a rerun of the step), it adds nothing."""
    change = record.last_change
    if outbox is None or change is None or change.phase is not phase:
        return
    outbox.add(Notification.of(record, change))


class NotificationDelivery:
    """One delivery sweep (the timer trigger runs it every minute)."""

    def __init__(self, outbox: NotificationOutbox, sinks: list[NotificationSink], store: MigrationStore,
                 clock: Clock, policy: DeliveryPolicy | None = None) -> None:  # fmt: skip
        self.outbox, self.sinks, self.store, self.clock = outbox, sinks, store, clock
        self.policy = policy or DeliveryPolicy()

    def run(self) -> DeliveryReport:
        report = DeliveryReport()
        for migration_id, mark in self.outbox.migrations_pending():
            report.migrations += 1
            try:
                self._deliver(migration_id, mark, report)
            except MigrationError as exc:  # the store itself failed: the next sweep tries again
                report.errors.append(f"{migration_id}: {exc}")
                logger.warning("notification sweep of %s failed: %s", migration_id, exc)
        return report

    def _deliver(self, migration_id: str, mark: str, report: DeliveryReport) -> None:
        # One sweep at a time per migration, so two sweeps (a slow one and the next minute's) do not send twice.
        leased = self.outbox.lease(migration_id, mark, self.clock.now() + LEASE)
        if leased is None:
            return
        pending = self.outbox.pending(migration_id)
        if not pending:
            self.outbox.clear_pending(migration_id, leased)
            return
        try:
            for notification in pending:
                now = self.clock.now()
                if notification.next_attempt_at is not None and notification.next_attempt_at > now:
                    report.waiting += 1
                    return  # a later one never overtakes an earlier one
                if not self._attempt(notification, now, report):
                    return
        finally:
            self.outbox.release(migration_id, leased)

    def _attempt(self, notification: Notification, now: datetime, report: DeliveryReport) -> bool:
        """Send to every sink it has not reached yet; True when the next one may go (delivered or dead)."""
        errors: list[str] = []
        for sink in self.sinks:
            if sink.name in notification.delivered_to:
                continue
            try:
                sink.send(notification.event)
            except MigrationError as exc:
                errors.append(f"{sink.name}: {exc}")
            else:
                notification.delivered_to.append(sink.name)
        notification.attempts += 1
        if not errors:
            notification.status, notification.finished_at, notification.last_error = "delivered", now, ""
            notification.next_attempt_at = None
            self._save(notification)
            report.delivered += 1
            what = f"PhaseChanged #{notification.sequence} ({notification.phase.value})"
            self._audit(
                notification, "NotificationDelivered", f"{what} delivered to {', '.join(notification.delivered_to)}"
            )
            return True
        notification.last_error = "; ".join(errors)[:_MAX_ERROR_CHARS]
        if now - notification.created_at >= self.policy.dead_letter_after:
            notification.status, notification.finished_at, notification.next_attempt_at = "dead", now, None
            self._save(notification)
            report.dead_lettered += 1
            self._audit(notification, "NotificationDeadLettered",
                        f"notification #{notification.sequence} ({notification.phase.value}) not delivered within "
                        f"{self.policy.dead_letter_after} after {notification.attempts} attempts: "
                        f"{notification.last_error}")  # fmt: skip
            return True
        notification.next_attempt_at = now + self.policy.backoff(notification.attempts)
        self._save(notification)
        report.failed_attempts += 1
        if notification.attempts == 1:
            self._audit(notification, "NotificationDeliveryFailed",
                        f"notification #{notification.sequence} ({notification.phase.value}) not delivered, "
                        f"retrying until {notification.created_at + self.policy.dead_letter_after}: "
                        f"{notification.last_error}")  # fmt: skip
        return False

    def _save(self, notification: Notification) -> None:
        try:
            saved = self.outbox.save(notification)
        except PreconditionFailed:
            return  # another sweep saved it first; what it sent stands (at least once)
        notification.etag = saved.etag

    def _audit(self, notification: Notification, kind: str, message: str) -> None:
        try:
            phase = self.store.get(notification.migration_id).phase
        except NotFound:
            phase = notification.phase
        self.store.append_event(MigrationEvent(
            migration_id=notification.migration_id, at=self.clock.now(), kind=kind, phase=phase, message=message,
            details={"sequence": notification.sequence, "event_id": notification.event_id,
                     "attempts": notification.attempts, "sinks": list(notification.delivered_to),
                     "error": notification.last_error},
        ))  # fmt: skip
