"""The EventBridge "EC2 Instance State-change Notification" event (source ``aws.ec2``), as a Parser model.

Written against the real sample in shared/reference/aws-events/event-instance-state.json (from
cloud-custodian, see SOURCES.md): ``detail.instance-id`` and ``detail.state``, the instance ARN in
``resources``. That sample has no top-level ``version``, which Powertools' ``EventBridgeModel`` requires, so
this model does not extend it and takes only what the cutover needs.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

STATE_CHANGE_DETAIL_TYPE = "EC2 Instance State-change Notification"


class StateChangeDetail(BaseModel):
    model_config = ConfigDict(populate_by_name=True, extra="ignore")

    instance_id: str = Field(alias="instance-id", pattern=r"^i-[0-9a-f]+$")
    state: str


class InstanceStateChange(BaseModel):
    model_config = ConfigDict(populate_by_name=True, extra="ignore")

    id: str
    detail_type: Literal["EC2 Instance State-change Notification"] = Field(alias="detail-type")
    source: Literal["aws.ec2"]
    account: str = Field(pattern=r"^\d{12}$")
    region: str
    time: str
    detail: StateChangeDetail


def state_change_event(
    *, event_id: str, account: str, region: str, instance_id: str, state: str, time: str
) -> dict[str, object]:
    """The event as EventBridge delivers it (the local stack emits it; moto does not)."""
    return {
        "version": "0",
        "id": event_id,
        "detail-type": STATE_CHANGE_DETAIL_TYPE,
        "source": "aws.ec2",
        "account": account,
        "time": time,
        "region": region,
        "resources": [f"arn:aws:ec2:{region}:{account}:instance/{instance_id}"],
        "detail": {"instance-id": instance_id, "state": state},
    }
