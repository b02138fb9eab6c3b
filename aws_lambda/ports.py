"""What the AWS-side logic needs from the outside world, as Protocols; ``adapters`` implement them."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Protocol

from aws_lambda.models.agent import CommandResult
from aws_lambda.models.cutover import CutoverRequest, StopFollowUp
from aws_lambda.models.inventory import TaggedInstance
from aws_lambda.models.phase_events import InstancePhaseChanged
from migration.errors import MigrationError
from migration.events import AnyEvent
from migration.identity import InstanceRef
from migration.ports import Clock
from migration.readiness import InstanceDescription, OsFamily
from migration.records import MigrationRecord

# NotFound.code when an event names an instance of another region than the function's own.
OTHER_REGION = "OtherRegion"

__all__ = [
    "OTHER_REGION",
    "AgentInstaller",
    "Clock",
    "CutoverScheduler",
    "EventPublisher",
    "InstanceInventory",
    "IntakeInvoker",
    "PhaseAnnouncer",
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
    def stop_many(self, instance_ids: Sequence[str]) -> dict[str, MigrationError]:
        """Ask EC2 to stop the instances, in as few calls as allowed, without waiting; the ones refused."""
        ...

    def state(self, instance_id: str) -> str:
        """The instance's state now (pending | running | stopping | stopped | shutting-down | terminated)."""
        ...


class SourceStarter(Protocol):
    def start_many(self, instance_ids: Sequence[str]) -> dict[str, MigrationError]:
        """Ask EC2 to start the instances (StartInstances), without waiting; the ones refused, with why."""
        ...


class AgentInstaller(Protocol):
    def ping_status(self, instance_id: str) -> str | None:
        """SSM's PingStatus of the instance (Online, ConnectionLost, Inactive), None when it is not managed."""
        ...

    def send_install(self, instance_id: str, *, comment: str) -> str:
        """Run the Mobility service install document on the instance; returns the command id."""
        ...

    def invocation(self, command_id: str, instance_id: str, os_family: OsFamily) -> CommandResult:
        """The install command's result on the instance so far."""
        ...


class StopFollowUps(Protocol):
    def schedule(self, follow_up: StopFollowUp, at: datetime) -> str:
        """A one-time schedule that checks, at ``at``, that the batch's sources stopped; returns its name."""
        ...


class EventPublisher(Protocol):
    def publish(self, event: AnyEvent) -> None:
        """Put the event on the durable Azure queue; raises TransientCloudError when it may work later."""
        ...


class CutoverScheduler(Protocol):
    def upsert(self, request: CutoverRequest, at: datetime) -> str:
        """Create or move the instance's one-time cutover schedule; returns its name."""
        ...

    def delete(self, instance: InstanceRef) -> None:
        """Remove the instance's cutover schedule; succeeds when there is none."""
        ...

    def scheduled_at(self, instance: InstanceRef) -> datetime | None:
        """When the instance's cutover schedule fires, None when it has none."""
        ...


class StatusApi(Protocol):
    def get_migration(self, migration_id: str) -> MigrationRecord:
        """The Azure side's record; raises NotFound when Azure has none."""
        ...


class IntakeInvoker(Protocol):
    def invoke(self, event: Mapping[str, object]) -> None:
        """Run the intake Lambda on ``event`` without waiting for its result."""
        ...


class PhaseAnnouncer(Protocol):
    def announce(self, event: InstancePhaseChanged) -> str:
        """Publish an AWS-side phase change (SNS); returns the message id; raises MigrationError when refused."""
        ...
