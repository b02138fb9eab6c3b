"""EC2 through boto3: describe an instance for readiness, list tagged instances, tag, stop."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from aws_lambda.adapters.aws_errors import translate
from aws_lambda.models.inventory import TaggedInstance
from aws_lambda.ports import OTHER_REGION
from migration.errors import MigrationError, NotFound
from migration.identity import InstanceRef
from migration.readiness import InstanceDescription, NetworkAclEntry, SecurityRule

if TYPE_CHECKING:
    from mypy_boto3_ec2 import EC2Client
    from mypy_boto3_ec2.type_defs import (
        FilterTypeDef,
        InstanceTypeDef,
        IpPermissionOutputTypeDef,
    )

# EC2 accepts up to 1000 resources per CreateTags call and recommends smaller batches.
CREATE_TAGS_BATCH = 100
# botocore's ec2 model gives StopInstances' InstanceIds no maximum; a batch this size is one call per
# hundred sources, and a refused batch is retried one by one to tell which instance EC2 refuses.
STOP_BATCH = 100
LIVE_STATES = ("pending", "running", "stopping", "stopped", "shutting-down")


def _tags(raw: Sequence[Mapping[str, Any]] | None) -> dict[str, str]:
    return {str(tag["Key"]): str(tag.get("Value", "")) for tag in raw or ()}


def _rules(group_id: str, direction: str, permissions: Sequence[IpPermissionOutputTypeDef]) -> list[SecurityRule]:
    rules = []
    for permission in permissions:
        cidrs = [r["CidrIp"] for r in permission.get("IpRanges", []) if "CidrIp" in r]
        cidrs += [r["CidrIpv6"] for r in permission.get("Ipv6Ranges", []) if "CidrIpv6" in r]
        peers = [p["GroupId"] for p in permission.get("UserIdGroupPairs", []) if "GroupId" in p]
        rules.append(
            SecurityRule(
                group_id=group_id,
                direction="ingress" if direction == "ingress" else "egress",
                protocol=str(permission.get("IpProtocol", "-1")),
                from_port=permission.get("FromPort"),
                to_port=permission.get("ToPort"),
                cidrs=tuple(cidrs),
                group_ids=tuple(peers),
            )
        )
    return rules


class Ec2Gateway:
    """Implements InstanceInventory, TagWriter and SourceMachines over one EC2 client."""

    def __init__(
        self,
        client: EC2Client,
        *,
        tag_calls_per_second: float = 5.0,
        sleep: Callable[[float], None] = time.sleep,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client = client
        self._region = client.meta.region_name
        self._min_interval = 1.0 / tag_calls_per_second
        self._sleep = sleep
        self._monotonic = monotonic
        self._last_tag_call: float | None = None

    # InstanceInventory

    def describe(self, instance: InstanceRef) -> InstanceDescription:
        if instance.region != self._region:
            # EventBridge rules are regional, so this is a misrouted event, not a missing instance.
            raise NotFound(
                f"instance {instance.instance_id} is in {instance.region}; this function works in {self._region}",
                code=OTHER_REGION,
            )
        raw = self._describe_instance(instance.instance_id)
        image = self._describe_image(str(raw.get("ImageId", "")))
        group_ids = self._group_ids(raw)
        return InstanceDescription(
            instance=instance,
            state=raw.get("State", {}).get("Name", "unknown"),
            architecture=str(raw.get("Architecture", "unknown")),
            virtualization_type=str(raw.get("VirtualizationType", "unknown")),
            private_ip=raw.get("PrivateIpAddress") or None,
            platform_details=self._platform_details(raw, image),
            image_id=str(raw.get("ImageId", "")),
            image_name=str(image.get("Name", "")),
            image_description=str(image.get("Description", "")),
            security_group_ids=group_ids,
            security_rules=tuple(self._security_rules(group_ids)),
            subnet_id=raw.get("SubnetId") or None,
            **self._network_acl(raw),
            disks_gib=self._disk_sizes(raw),
            tags=_tags(raw.get("Tags")),
        )

    def list_tagged(self, tag_key: str) -> list[TaggedInstance]:
        filters: list[FilterTypeDef] = [
            {"Name": "tag-key", "Values": [tag_key]},
            {"Name": "instance-state-name", "Values": list(LIVE_STATES)},
        ]
        found = []
        try:
            for page in self._client.get_paginator("describe_instances").paginate(Filters=filters):
                for reservation in page.get("Reservations", []):
                    owner = reservation.get("OwnerId", "")
                    for raw in reservation.get("Instances", []):
                        found.append(
                            TaggedInstance(
                                instance=InstanceRef(
                                    account_id=owner, region=self._region, instance_id=raw["InstanceId"]
                                ),
                                state=raw.get("State", {}).get("Name", "unknown"),
                                tags=_tags(raw.get("Tags")),
                            )
                        )
        except (ClientError, BotoCoreError) as exc:
            raise translate(exc, f"list instances tagged {tag_key}") from exc
        return found

    # TagWriter

    def write_tags(self, updates: Mapping[str, Mapping[str, str]]) -> None:
        # Instances that get the same tags share one call: a wave's status sync is a handful of calls.
        by_tags: dict[tuple[tuple[str, str], ...], list[str]] = {}
        self._last_tag_call = None  # paced within one write; one call per invocation needs no pacing
        for instance_id, tags in updates.items():
            by_tags.setdefault(tuple(sorted(tags.items())), []).append(instance_id)
        for tags_key, instance_ids in by_tags.items():
            for batch in _chunks(instance_ids, CREATE_TAGS_BATCH):
                self._pace()
                try:
                    self._client.create_tags(
                        Resources=batch, Tags=[{"Key": key, "Value": value} for key, value in tags_key]
                    )
                except (ClientError, BotoCoreError) as exc:
                    raise translate(exc, f"tag {', '.join(batch)}") from exc

    # SourceMachines

    def stop(self, instance_id: str) -> None:
        try:
            self._client.stop_instances(InstanceIds=[instance_id])
        except (ClientError, BotoCoreError) as exc:
            raise translate(exc, f"stop {instance_id}") from exc

    def stop_many(self, instance_ids: Sequence[str]) -> dict[str, MigrationError]:
        """StopInstances in batches, returning without waiting; the instances EC2 refused, with why."""
        return self._in_batches(self._client.stop_instances, "stop", instance_ids)

    def start_many(self, instance_ids: Sequence[str]) -> dict[str, MigrationError]:
        """StartInstances in batches, returning without waiting; the instances EC2 refused, with why."""
        return self._in_batches(self._client.start_instances, "start", instance_ids)

    @staticmethod
    def _in_batches(call: Callable[..., object], verb: str, instance_ids: Sequence[str]) -> dict[str, MigrationError]:
        refused: dict[str, MigrationError] = {}
        for batch in _chunks(list(instance_ids), STOP_BATCH):
            try:
                call(InstanceIds=batch)
                continue
            except (ClientError, BotoCoreError) as exc:
                if len(batch) == 1:
                    refused[batch[0]] = translate(exc, f"{verb} {batch[0]}")
                    continue
            for instance_id in batch:  # one refused instance fails the whole call: find it
                try:
                    call(InstanceIds=[instance_id])
                except (ClientError, BotoCoreError) as exc:
                    refused[instance_id] = translate(exc, f"{verb} {instance_id}")
        return refused

    def state(self, instance_id: str) -> str:
        return str(self._describe_instance(instance_id).get("State", {}).get("Name", "unknown"))

    def wait_until_stopped(self, instance_id: str, *, timeout_seconds: float, poll_seconds: float) -> str:
        deadline = self._monotonic() + timeout_seconds
        while True:
            state = str(self._describe_instance(instance_id).get("State", {}).get("Name", "unknown"))
            if state == "stopped" or self._monotonic() >= deadline:
                return state
            self._sleep(min(poll_seconds, max(0.0, deadline - self._monotonic())))

    # helpers

    def _pace(self) -> None:
        """Keep CreateTags under the account's mutating-call rate; adaptive retries handle the rest."""
        now = self._monotonic()
        if self._last_tag_call is not None:
            wait = self._last_tag_call + self._min_interval - now
            if wait > 0:
                self._sleep(wait)
                now += wait
        self._last_tag_call = now

    def _describe_instance(self, instance_id: str) -> InstanceTypeDef:
        try:
            response = self._client.describe_instances(InstanceIds=[instance_id])
        except (ClientError, BotoCoreError) as exc:
            raise translate(exc, f"describe {instance_id}") from exc
        for reservation in response.get("Reservations", []):
            for raw in reservation.get("Instances", []):
                if raw.get("InstanceId") == instance_id:
                    return raw
        raise NotFound(f"instance {instance_id} does not exist in {self._region}", code="InstanceNotFound")

    def _describe_image(self, image_id: str) -> Mapping[str, Any]:
        if not image_id:
            return {}
        try:
            images = self._client.describe_images(ImageIds=[image_id]).get("Images", [])
        except (ClientError, BotoCoreError) as exc:
            error = translate(exc, f"describe image {image_id}")
            if isinstance(error, NotFound):
                return {}  # deregistered or not shared with us: judged by the instance's own fields
            raise error from exc
        return images[0] if images else {}

    @staticmethod
    def _platform_details(raw: Mapping[str, Any], image: Mapping[str, Any]) -> str:
        details = raw.get("PlatformDetails") or image.get("PlatformDetails")
        if details:
            return str(details)
        # Older API responses (and moto) omit PlatformDetails; Platform is "windows" or absent for Linux/UNIX.
        return "Windows" if str(raw.get("Platform", "")).lower() == "windows" else "Linux/UNIX"

    @staticmethod
    def _group_ids(raw: InstanceTypeDef) -> tuple[str, ...]:
        ids = [g["GroupId"] for g in raw.get("SecurityGroups", []) if "GroupId" in g]
        for nic in raw.get("NetworkInterfaces", []):
            ids += [g["GroupId"] for g in nic.get("Groups", []) if "GroupId" in g]
        return tuple(dict.fromkeys(ids))

    def _security_rules(self, group_ids: Sequence[str]) -> Iterator[SecurityRule]:
        if not group_ids:
            return
        try:
            groups = self._client.describe_security_groups(GroupIds=list(group_ids))["SecurityGroups"]
        except (ClientError, BotoCoreError) as exc:
            raise translate(exc, f"describe security groups {', '.join(group_ids)}") from exc
        for group in groups:
            yield from _rules(group["GroupId"], "ingress", group.get("IpPermissions", []))
            yield from _rules(group["GroupId"], "egress", group.get("IpPermissionsEgress", []))

    def _network_acl(self, raw: InstanceTypeDef) -> dict[str, Any]:
        """The network ACL of the instance's subnet: its own association, else the VPC's default ACL."""
        subnet_id, vpc_id = raw.get("SubnetId"), raw.get("VpcId")
        if not subnet_id:
            return {}
        try:
            acls = self._client.describe_network_acls(
                Filters=[{"Name": "association.subnet-id", "Values": [subnet_id]}]
            )["NetworkAcls"]
            if not acls and vpc_id:
                acls = self._client.describe_network_acls(
                    Filters=[{"Name": "vpc-id", "Values": [vpc_id]}, {"Name": "default", "Values": ["true"]}]
                )["NetworkAcls"]
        except (ClientError, BotoCoreError) as exc:
            raise translate(exc, f"describe the network ACL of {subnet_id}") from exc
        if not acls:
            return {}
        entries = []
        for entry in acls[0].get("Entries", []):
            ports = entry.get("PortRange") or {}
            entries.append(
                NetworkAclEntry(
                    rule_number=int(entry.get("RuleNumber", 32767)),
                    egress=bool(entry.get("Egress", False)),
                    protocol=str(entry.get("Protocol", "-1")),
                    action="allow" if entry.get("RuleAction") == "allow" else "deny",
                    cidr=str(entry.get("CidrBlock") or entry.get("Ipv6CidrBlock") or ""),
                    from_port=ports.get("From"),
                    to_port=ports.get("To"),
                )
            )
        return {"network_acl_id": acls[0].get("NetworkAclId"), "network_acl_entries": tuple(entries)}

    def _disk_sizes(self, raw: InstanceTypeDef) -> tuple[int, ...]:
        volume_ids = [m["Ebs"]["VolumeId"] for m in raw.get("BlockDeviceMappings", []) if "Ebs" in m]
        if not volume_ids:
            return ()
        try:
            volumes = self._client.describe_volumes(VolumeIds=volume_ids)["Volumes"]
        except (ClientError, BotoCoreError) as exc:
            raise translate(exc, f"describe volumes of {raw.get('InstanceId')}") from exc
        sizes = {v["VolumeId"]: int(v["Size"]) for v in volumes}
        return tuple(sizes[v] for v in volume_ids if v in sizes)


def _chunks(items: list[str], size: int) -> Iterator[list[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
