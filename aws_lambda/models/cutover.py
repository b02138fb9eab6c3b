"""What the cutover Lambda is invoked with: by its one-time schedule, or by hand with the same payload."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from migration.identity import InstanceRef


class CutoverRequest(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    instance: InstanceRef
    # The migration request the schedule was made for (the intake's request id), or an operator's own id.
    request_id: Annotated[str, Field(min_length=1, max_length=128)]
    requested_by: Literal["schedule", "operator"] = "schedule"
    cutover_at: AwareDatetime | None = None


class CutoverBatch(BaseModel):
    """Several cutovers at once (an operator's wave by hand): their sources are stopped in batched calls."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    cutovers: Annotated[list[CutoverRequest], Field(min_length=1, max_length=1000)]


class StopFollowUp(BaseModel):
    """What the one-time follow-up schedule sends back: the sources one cutover invocation stopped."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    follow_up: Literal["source-stop"] = "source-stop"
    batch_id: Annotated[str, Field(min_length=1, max_length=64)]
    instances: Annotated[list[InstanceRef], Field(min_length=1, max_length=1000)]
    stop_requested_at: AwareDatetime
    bound_seconds: int
