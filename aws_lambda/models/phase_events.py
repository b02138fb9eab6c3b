"""The AWS side's own phase changes, announced as CloudEvents on SNS (docs/NOTIFICATIONS.md, "From the AWS side").

Azure announces every phase it records (``io.aws2azure.migration.PhaseChanged.v1``, migration/notifications.py).
Some phases are decided here and Azure never sees them, or sees them late: NotReady (readiness refused the
instance, nothing reaches Azure), InstallingAgent, AwaitingDiscovery and Failed from the Mobility service install,
Cancelled before anything reached Azure, and Requested. Those are ``io.aws2azure.instance.PhaseChanged.v1``.
Status sync's copies of Azure's phases onto the tags are never announced from here (Azure announces them).

The id is ``<migration id>:<phase>:<change key>``, where the change key names what caused the change: the
EventBridge event id of the tagging for intake, the SSM command id for an install result. A retry of the same
change therefore announces the same id (``changed_at`` may differ: it is when that attempt decided), so a
subscriber drops the duplicate by id.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Final, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from migration.events import CloudEventEnvelope, event_source
from migration.identity import InstanceRef
from migration.lifecycle import Phase
from migration.tags import WAVE, WAVE_PATTERN

INSTANCE_PHASE_CHANGED: Final = "io.aws2azure.instance.PhaseChanged.v1"
COMPONENT: Final = "aws"
# The phases the AWS side decides itself; any other phase on an instance's tags is a copy of Azure's.
AWS_PHASES: Final = frozenset(
    {Phase.REQUESTED, Phase.NOT_READY, Phase.INSTALLING_AGENT, Phase.AWAITING_DISCOVERY, Phase.FAILED, Phase.CANCELLED}
)
REASON_MAX = 4096
CHANGE_KEY_MAX = 128


class InstancePhaseChangedData(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    instance: InstanceRef
    migration_id: str
    phase: Phase
    previous_phase: Phase | None = None  # the instance's status tag before the change; None when it had none
    reason: Annotated[str, Field(max_length=REASON_MAX)] = ""
    wave: str | None = None
    changed_at: AwareDatetime


class InstancePhaseChanged(CloudEventEnvelope):
    type: Literal["io.aws2azure.instance.PhaseChanged.v1"] = INSTANCE_PHASE_CHANGED
    data: InstancePhaseChangedData


def is_announced_here(phase: Phase) -> bool:
    """True for a phase the AWS side decides; False for one it only mirrors from Azure (Azure announces it)."""
    return phase in AWS_PHASES


def phase_event_id(instance: InstanceRef, phase: Phase, change_key: str) -> str:
    """The same change (instance, phase, what caused it) always has the same id."""
    if not change_key or len(change_key) > CHANGE_KEY_MAX:
        raise ValueError(f"change key must be 1..{CHANGE_KEY_MAX} characters, not {change_key!r}")
    return f"{instance.migration_id}:{phase.value}:{change_key}"


def wave_of(tags: dict[str, str]) -> str | None:
    """The request's wave from the instance's tags, when it is a valid wave name (else unknown)."""
    value = tags.get(WAVE, "").strip()
    return value if value and WAVE_PATTERN.fullmatch(value) else None


def instance_phase_changed(
    instance: InstanceRef,
    phase: Phase,
    *,
    change_key: str,
    changed_at: datetime,
    previous_phase: Phase | None = None,
    reason: str = "",
    wave: str | None = None,
) -> InstancePhaseChanged:
    """The CloudEvent for one AWS-side phase change; refuses a phase that only Azure decides."""
    if not is_announced_here(phase):
        raise ValueError(f"{phase.value} is Azure's phase: Azure announces it, not the AWS side")
    at = changed_at.astimezone(UTC)
    data = InstancePhaseChangedData(
        instance=instance, migration_id=instance.migration_id, phase=phase, previous_phase=previous_phase,
        reason=reason[:REASON_MAX], wave=wave, changed_at=at,
    )  # fmt: skip
    return InstancePhaseChanged.model_validate({
        "specversion": "1.0", "id": phase_event_id(instance, phase, change_key),
        "source": event_source(instance, COMPONENT), "time": at, "subject": instance.instance_id, "data": data,
    })  # fmt: skip
