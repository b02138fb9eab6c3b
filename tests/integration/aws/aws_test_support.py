"""Helpers for the AWS side's tests: the local stack as a test sees it, sample events, our AMIs.

Handlers read their settings from the environment at import (their cold start), so each test module
gets the environment of its own stack and its own fresh import of every handler (``LocalAws.handler``).
"""

from __future__ import annotations

import base64
import copy
import importlib
import json
import os
import sys
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

import boto3
from azure.storage.queue import QueueClient

from devstack.aws_local import LocalAwsSide, LocalLambdaContext
from devstack.settings import StackSettings
from migration.events import CancelRequested, FailoverRequested, MigrationRequested, parse_event

if TYPE_CHECKING:
    from mypy_boto3_ec2 import EC2Client
    from mypy_boto3_scheduler import EventBridgeSchedulerClient

# The real AWS samples, read where they are kept (../shared/reference beside the clone), not copied.
REFERENCE = Path(__file__).resolve().parents[4] / "shared" / "reference" / "aws-events"
TAG_CHANGE_SAMPLE = REFERENCE / "aws-auto-alarm_README_tag-change-on-resource-ec2.json"
SCHEDULED_SAMPLE = REFERENCE / "event-scheduled.json"

# AMIs in devstack/data/amis.json (every local stack's moto server loads that list).
AMI_UBUNTU = "ami-785db401"
AMI_WINDOWS = "ami-b7e93bce"
AMI_RHEL = "ami-bb9a6bc2"
AMI_SUSE_PV = "ami-fa7cdd89"
AMI_AMAZON_LINUX_2 = "ami-04681a1dbd79675a5"
AMI_UBUNTU_ARM64 = "ami-0a9d27a9f4f5c0efc"
AMI_FREEBSD = "ami-0f3c8a7e1b2d4c5a6"

HANDLERS = ("intake", "cutover", "status_sync", "reconcile")


def reference_event(path: Path) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(path.read_text())
    return loaded


@dataclass
class QueueReader:
    """Drains the intake queue as the Functions queue trigger would see it (base64 -> CloudEvent)."""

    client: QueueClient
    seen: list[MigrationRequested | FailoverRequested | CancelRequested] = field(default_factory=list)

    def drain(self) -> None:
        while True:
            batch = list(self.client.receive_messages(max_messages=32, visibility_timeout=30))
            if not batch:
                return
            for message in batch:
                self.seen.append(parse_event(base64.b64decode(message.content)))
                self.client.delete_message(message)

    def events_for(self, instance_id: str) -> list[MigrationRequested | FailoverRequested | CancelRequested]:
        self.drain()
        return [event for event in self.seen if event.subject == instance_id]


@dataclass
class LocalAws:
    stack: StackSettings
    side: LocalAwsSide
    ec2: EC2Client
    queue: QueueReader
    session: boto3.session.Session
    _env_before: dict[str, str | None] = field(default_factory=dict)

    # Environment and handlers

    def set_env(self, values: Mapping[str, str]) -> None:
        for key, value in values.items():
            self._env_before.setdefault(key, os.environ.get(key))
            os.environ[key] = value

    def restore_env(self) -> None:
        for key, value in self._env_before.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value

    def handler(self, name: str, **extra_env: str) -> ModuleType:
        """Import the handler module afresh (a cold start) with this stack's environment."""
        self.set_env(extra_env)
        importlib.reload(importlib.import_module("aws_lambda.observability"))
        module_name = f"aws_lambda.handlers.{name}"
        if module_name in sys.modules:
            return importlib.reload(sys.modules[module_name])
        return importlib.import_module(module_name)

    @staticmethod
    def invoke(module: ModuleType, event: Any, function: str = "aws2azure-test") -> dict[str, Any]:
        result: dict[str, Any] = module.lambda_handler(event, LocalLambdaContext(function))
        return result

    # EC2

    def workload_group(
        self, name: str, *, ingress: list[dict[str, Any]], egress: list[dict[str, Any]] | None = None
    ) -> str:
        group_id = self.ec2.create_security_group(
            GroupName=f"{name}-{uuid.uuid4().hex[:6]}", Description=name, VpcId=self.side.vpc_id
        )["GroupId"]
        if ingress:
            self.ec2.authorize_security_group_ingress(GroupId=group_id, IpPermissions=ingress)  # type: ignore[arg-type]
        if egress is not None:
            # Replace the default allow-all egress with exactly these rules.
            self.ec2.revoke_security_group_egress(
                GroupId=group_id,
                IpPermissions=[{"IpProtocol": "-1", "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}],
            )
            if egress:
                self.ec2.authorize_security_group_egress(GroupId=group_id, IpPermissions=egress)  # type: ignore[arg-type]
        return group_id

    def launch(
        self,
        image_id: str = AMI_UBUNTU,
        *,
        groups: list[str],
        tags: dict[str, str] | None = None,
        disable_api_stop: bool = False,
    ) -> str:
        spec: dict[str, Any] = {}
        if tags:
            spec["TagSpecifications"] = [
                {"ResourceType": "instance", "Tags": [{"Key": k, "Value": v} for k, v in tags.items()]}
            ]
        reservation = self.ec2.run_instances(
            ImageId=image_id,
            MinCount=1,
            MaxCount=1,
            InstanceType="m5.large",
            SecurityGroupIds=groups,
            DisableApiStop=disable_api_stop,
            **spec,
        )
        return reservation["Instances"][0]["InstanceId"]

    def scheduler(self) -> EventBridgeSchedulerClient:
        return self.session.client("scheduler", endpoint_url=self.side.aws_environment["AWS_ENDPOINT_URL"])

    def tags_of(self, instance_id: str) -> dict[str, str]:
        raw = self.ec2.describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"][0]
        return {t["Key"]: t["Value"] for t in raw.get("Tags", [])}

    def state_of(self, instance_id: str) -> str:
        raw = self.ec2.describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"][0]
        return raw["State"]["Name"]

    def set_tags(self, instance_id: str, tags: dict[str, str]) -> None:
        self.ec2.create_tags(Resources=[instance_id], Tags=[{"Key": k, "Value": v} for k, v in tags.items()])

    def tag_change(self, instance_id: str, changed: list[str], *, event_id: str | None = None) -> dict[str, Any]:
        """The AWS sample event, re-aimed at one of our instances with its current tags."""
        event = copy.deepcopy(reference_event(TAG_CHANGE_SAMPLE))
        event["id"] = event_id or str(uuid.uuid4())
        event["account"] = self.side.account_id
        event["region"] = self.side.region
        event["resources"] = [f"arn:aws:ec2:{self.side.region}:{self.side.account_id}:instance/{instance_id}"]
        event["detail"]["changed-tag-keys"] = changed
        event["detail"]["tags"] = self.tags_of(instance_id)
        event["detail"]["version"] += 1
        return event
