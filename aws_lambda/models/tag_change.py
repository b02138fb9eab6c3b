"""The EventBridge "Tag Change on Resource" event (source ``aws.tag``), as a Powertools Parser model.

Powertools ships no model for it. The shape follows the AWS sample in
``shared/reference/aws-events/aws-auto-alarm_README_tag-change-on-resource-ec2.json``: ``detail`` carries
the keys that changed and the resource's whole tag set after the change (deleted keys are absent from it).
"""

from __future__ import annotations

import re
from typing import Literal

from aws_lambda_powertools.utilities.parser.models import EventBridgeModel
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from migration.identity import InstanceRef

TAG_CHANGE_DETAIL_TYPE = "Tag Change on Resource"
TAG_CHANGE_SOURCE = "aws.tag"

_INSTANCE_ARN = re.compile(
    r"^arn:(?P<partition>aws[a-z-]*):ec2:(?P<region>[a-z0-9-]+):(?P<account>\d{12}):instance/(?P<instance>i-[0-9a-f]+)$"
)


class TagChangeDetail(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    changed_tag_keys: list[str] = Field(alias="changed-tag-keys")
    service: str
    resource_type: str = Field(alias="resource-type")
    # The resource's tag-set version: it grows with every change, so it orders events for one resource.
    # Optional: not every delivery carries it, and intake never needs it (it reads the tags EC2 has now).
    version: int | None = None
    tags: dict[str, str] = Field(default_factory=dict)


class TagChangeEvent(EventBridgeModel):
    detail_type: Literal["Tag Change on Resource"] = Field(alias="detail-type")
    source: Literal["aws.tag"]
    detail: TagChangeDetail
    resources: list[str] = Field(min_length=1)

    @property
    def is_ec2_instance(self) -> bool:
        return self.detail.service == "ec2" and self.detail.resource_type == "instance"

    def instance_ref(self) -> InstanceRef | None:
        """The instance the event is about, or None when it is about any other kind of resource."""
        if not self.is_ec2_instance:
            return None
        match = _INSTANCE_ARN.fullmatch(self.resources[0])
        if match is None:
            return None
        try:
            return InstanceRef(account_id=match["account"], region=match["region"], instance_id=match["instance"])
        except ValidationError:
            return None

    def describe_resource(self) -> str:
        return f"{self.detail.service}/{self.detail.resource_type} {self.resources[0]}"


def tag_change_event(
    *,
    event_id: str,
    instance: InstanceRef,
    tags: dict[str, str],
    changed_tag_keys: list[str],
    version: int,
    time: str,
    partition: str = "aws",
) -> dict[str, object]:
    """A Tag Change event as EventBridge delivers it (used to re-run intake for a missed event)."""
    return {
        "version": "0",
        "id": event_id,
        "detail-type": TAG_CHANGE_DETAIL_TYPE,
        "source": TAG_CHANGE_SOURCE,
        "account": instance.account_id,
        "time": time,
        "region": instance.region,
        "resources": [f"arn:{partition}:ec2:{instance.region}:{instance.account_id}:instance/{instance.instance_id}"],
        "detail": {
            "changed-tag-keys": changed_tag_keys,
            "service": "ec2",
            "resource-type": "instance",
            "version": version,
            "tags": tags,
        },
    }
