"""What the AWS-side logic needs from the outside world, as Protocols; ``adapters`` implement them."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Protocol

from aws_lambda.models.cutover import CutoverRequest
from aws_lambda.models.inventory import TaggedInstance
from migration.events import CancelRequested, FailoverRequested, MigrationRequested
from migration.identity import InstanceRef
from migration.ports import Clock
from migration.readiness import InstanceDescription
from migration.records import MigrationRecord

# NotFound.code when an event names an instance of another region than the function's own.
OTHER_REGION = "OtherRegion"

__all__ = [
    "OTHER_REGION",
    "Clock",
    "CutoverScheduler",
    "EventPublisher",
    "InstanceInventory",
    "IntakeInvoker",
    "SourceMachines",
    "StatusApi",
    "TagWriter",
]


class InstanceInventory(Protocol):
    def describe(self, instance: InstanceRef) -> InstanceDescription:
        """Everything readiness needs; raises NotFound when the instance does not exist (here)."""
        ...

    def list_tagged(self, tag_key: str) -> list[TaggedInstance]:
        """Every instance not terminated that has ``tag_key`` (any value)."""
        ...


class TagWriter(Protocol):
    def write_tags(self, updates: Mapping[str, Mapping[str, str]]) -> None:
        """Set tags on many instances (instance id -> tags), in as few CreateTags calls as the rate allows."""
        ...


class SourceMachines(Protocol):
    def stop(self, instance_id: str) -> None:
        """Ask EC2 to stop the instance; raises PreconditionFailed when EC2 refuses (protection, state)."""
        ...

    def wait_until_stopped(self, instance_id: str, *, timeout_seconds: float, poll_seconds: float) -> str:
        """Wait at most ``timeout_seconds``; return the last state seen (``stopped`` on success)."""
        ...


class EventPublisher(Protocol):
    def publish(self, event: MigrationRequested | FailoverRequested | CancelRequested) -> None:
        """Put the event on the durable Azure queue; raises TransientCloudError when it may work later."""
        ...


class CutoverScheduler(Protocol):
    def upsert(self, request: CutoverRequest, at: datetime) -> str:
        """Create or move the instance's one-time cutover schedule; returns its name."""
        ...

    def delete(self, instance: InstanceRef) -> None:
        """Remove the instance's cutover schedule; succeeds when there is none."""
        ...


class StatusApi(Protocol):
    def get_migration(self, migration_id: str) -> MigrationRecord:
        """The Azure side's record; raises NotFound when Azure has none."""
        ...


class IntakeInvoker(Protocol):
    def invoke(self, event: Mapping[str, object]) -> None:
        """Run the intake Lambda on ``event`` without waiting for its result."""
        ...
