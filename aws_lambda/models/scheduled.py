"""What wakes the scheduled Lambdas (status sync, reconcile): an EventBridge rule or a Scheduler schedule.

Nothing in it is needed beyond an id for the logs, so every field is optional: the real "Scheduled Event"
sample in shared/reference/aws-events has no ``version`` (which Powertools' EventBridgeModel requires), and
Scheduler may deliver any payload its schedule was given.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class ScheduledTrigger(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    id: str | None = None
    source: str | None = None
    time: str | None = None
    detail_type: str | None = Field(default=None, alias="detail-type")
