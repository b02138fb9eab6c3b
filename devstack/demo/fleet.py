"""The demo's AWS estate on moto: EC2 instances, their SSM registration, and the source machines behind them.

Each instance's machine is known to the ASR simulator (its disks and churn) but *not discovered*: the appliance's
OffAzure site lists it only once the Mobility service, installed through SSM by intake, registers it (the SSM
stand-in does that when the install command ends). Nothing is added to discovery by hand."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

from devstack.asr_sim.control import SimulatorControl
from devstack.ssm_sim.contract import ManagedNode
from devstack.ssm_sim.control import SsmSimControl

if TYPE_CHECKING:
    from mypy_boto3_ec2 import EC2Client

AMI_WINDOWS_2016 = "ami-b7e93bce"
AMI_UBUNTU_2204 = "ami-0a7d80731ae1b2435"
AMI_RHEL_74 = "ami-bb9a6bc2"
AMI_SLES_12 = "ami-35e92e4c"
AMI_SLES_11_PV = "ami-fa7cdd89"
# Windows and Linux, as a real estate mixes them; each with its OS name as the appliance reports it.
IMAGES: list[tuple[str, Literal["Windows", "Linux"], str]] = [
    (AMI_WINDOWS_2016, "Windows", "Windows Server 2016 Datacenter"),
    (AMI_UBUNTU_2204, "Linux", "Ubuntu 22.04 LTS"),
    (AMI_RHEL_74, "Linux", "Red Hat Enterprise Linux 7.4"),
    (AMI_SLES_12, "Linux", "SUSE Linux Enterprise Server 12 SP3"),
]
SIZES = ["m5.large", "m5.xlarge", "c5.2xlarge", "r5.large", "t3.medium"]
ASR_PORTS = (443, 9443)


@dataclass(frozen=True)
class DemoInstance:
    instance_id: str
    private_ip: str
    os_type: Literal["Windows", "Linux"]
    wave: str
    expected: Literal["Migrated", "NotReady", "RolledBack"]
    why: str = ""


def _group(ec2: EC2Client, vpc_id: str, name: str, appliance_group: str, egress_ports: tuple[int, ...] | None) -> str:
    """A security group; ``egress_ports`` None keeps the default allow-all egress, else egress is only those
    TCP ports to the appliance's group (the source connects to the appliance on 443 and 9443)."""
    group_id = ec2.create_security_group(GroupName=f"{name}-{uuid.uuid4().hex[:6]}", Description=name, VpcId=vpc_id)[
        "GroupId"
    ]
    if egress_ports is not None:
        ec2.revoke_security_group_egress(
            GroupId=group_id, IpPermissions=[{"IpProtocol": "-1", "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}]
        )
        ec2.authorize_security_group_egress(
            GroupId=group_id,
            IpPermissions=[
                {"IpProtocol": "tcp", "FromPort": port, "ToPort": port,
                 "UserIdGroupPairs": [{"GroupId": appliance_group}]}
                for port in egress_ports
            ],
        )  # fmt: skip
    return group_id


def build_fleet(
    ec2: EC2Client,
    sim: SimulatorControl,
    ssm: SsmSimControl,
    *,
    vpc_id: str,
    appliance_group: str,
    count: int,
    waves: tuple[str, str],
) -> list[DemoInstance]:
    """``count`` instances over two waves; three deliberately not ready: one PV, one whose security group lets it
    reach the appliance on 443 only (not 9443), one that is no SSM managed node. With five or more, the first (in
    wave-a) fails over to a VM that does not run (the runner injects it): its gate fails and it is rolled back."""
    ready_group = _group(ec2, vpc_id, "app-servers", appliance_group, None)
    blocked_group = _group(ec2, vpc_id, "legacy-443-only-outbound", appliance_group, (443,))
    fleet: list[DemoInstance] = []
    for index in range(count):
        image, os_type, os_name = IMAGES[index % len(IMAGES)]
        group, expected, why = ready_group, "Migrated", ""
        if index == count - 1:
            image, os_type, os_name, why = AMI_SLES_11_PV, "Linux", "SUSE Linux Enterprise Server 11 SP4", "PV"
            expected = "NotReady"
        elif index == count - 2:
            group, expected, why = blocked_group, "NotReady", "security group blocks outbound 9443"
        elif index == count - 3:
            expected, why = "NotReady", "no SSM agent"
        elif index == 0 and count >= 5:
            expected, why = "RolledBack", "its Azure VM does not run (injected): the gate fails, rolled back"
        wave = waves[index % 2]
        raw = ec2.run_instances(
            ImageId=image, MinCount=1, MaxCount=1, InstanceType=SIZES[index % len(SIZES)],  # type: ignore[arg-type]
            SecurityGroupIds=[group],
            TagSpecifications=[{"ResourceType": "instance",
                                "Tags": [{"Key": "Name", "Value": f"demo-{wave}-{index:02d}"}]}],
        )["Instances"][0]  # fmt: skip
        instance = DemoInstance(raw["InstanceId"], raw["PrivateIpAddress"], os_type, wave, expected, why)  # type: ignore[arg-type]
        # Disks and churn differ per machine so the wave replicates with a realistic spread.
        disks = [64 + 32 * (index % 3)] + ([256 + 128 * (index % 4)] if index % 3 else [])
        sim.seed_machine(instance.private_ip, os_type, os_name, disks, churn_mb_per_day=2048.0 * (1 + index % 5),
                         friendly_name=instance.instance_id, agent_registered=False)  # fmt: skip
        if why != "no SSM agent":
            # Its SSM Agent registered with Systems Manager (the AMI ships it; the instance profile allows it).
            ssm.add_node(ManagedNode(instance_id=instance.instance_id, platform_type=os_type, platform_name=os_name,
                                     ip_address=instance.private_ip,
                                     computer_name=f"ip-{instance.private_ip.replace('.', '-')}"))  # fmt: skip
        fleet.append(instance)
    return fleet


def tag_change_event(*, account: str, region: str, instance_id: str, tags: dict[str, str], changed: list[str],
                     version: int) -> dict[str, Any]:  # fmt: skip
    """EventBridge's "Tag Change on Resource" for an EC2 instance, as AWS sends it (moto sends none)."""
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "Tag Change on Resource",
        "source": "aws.tag",
        "account": account,
        "time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": region,
        "resources": [f"arn:aws:ec2:{region}:{account}:instance/{instance_id}"],
        "detail": {
            "changed-tag-keys": changed,
            "service": "ec2",
            "resource-type": "instance",
            "version": version,
            "tags": tags,
        },
    }
