"""Is an EC2 instance ready to be replicated by Azure Site Recovery? Pure rules, no SDK.

The AWS side describes the instance (``InstanceDescription``) and where the replication appliance is
(``ApplianceLocation``); ``check_readiness`` returns every rule that fails, each with a reason an operator
can act on. The exact OS versions ASR accepts are checked later by the Azure side, which asks the ASR API
(the list changes with ASR releases, so it is not hard-coded here); this only rules out what can never work.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from ipaddress import IPv4Network, IPv6Network, ip_network
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, IPvAnyNetwork, model_validator

from migration.identity import InstanceRef

OsFamily = Literal["windows", "linux"]

# The ports the Mobility service and the replication appliance talk on (control and replication data).
APPLIANCE_PORTS: tuple[int, ...] = (443, 9443)

# Rule names: stable, used as a metric dimension and in the reason text.
RULE_RUNNING = "running"
RULE_ARCHITECTURE = "architecture"
RULE_VIRTUALIZATION = "virtualization"
RULE_PRIVATE_IP = "private-ip"
RULE_PLATFORM = "platform"
RULE_AMAZON_LINUX = "amazon-linux"
RULE_APPLIANCE_TO_INSTANCE = "appliance-to-instance"
RULE_INSTANCE_TO_APPLIANCE = "instance-to-appliance"
RULES = (
    RULE_RUNNING,
    RULE_ARCHITECTURE,
    RULE_VIRTUALIZATION,
    RULE_PRIVATE_IP,
    RULE_PLATFORM,
    RULE_AMAZON_LINUX,
    RULE_APPLIANCE_TO_INSTANCE,
    RULE_INSTANCE_TO_APPLIANCE,
)

# EC2 PlatformDetails values (the billing platform of the AMI) that are Linux distributions.
_LINUX_PLATFORM_DETAILS = ("Linux/UNIX", "Red Hat", "SUSE Linux", "Ubuntu Pro")
# "Linux/UNIX" also covers the BSDs and macOS, which ASR cannot replicate; the AMI's name tells them apart.
_NOT_LINUX_IMAGE = re.compile(r"\b(freebsd|netbsd|openbsd|dragonfly|macos|solaris)\b", re.IGNORECASE)
_AMAZON_LINUX_IMAGE = re.compile(r"(\bamzn\d?-|\bal20\d\d-|amazon[ -]?linux|bottlerocket)", re.IGNORECASE)


class SecurityRule(BaseModel):
    """One security-group rule, as EC2 describes it (ports are None for all-traffic rules)."""

    model_config = ConfigDict(frozen=True)

    group_id: str
    direction: Literal["ingress", "egress"]
    protocol: str  # "tcp", "udp", "icmp", "-1" (all), or an IANA number as a string
    from_port: int | None = None
    to_port: int | None = None
    cidrs: tuple[str, ...] = ()
    group_ids: tuple[str, ...] = ()  # peer security groups the rule names

    def allows_tcp(self, port: int) -> bool:
        if self.protocol in ("-1", "all"):
            return True
        if self.protocol.lower() not in ("tcp", "6"):
            return False
        if self.from_port is None or self.to_port is None or self.from_port == -1:
            return True
        return self.from_port <= port <= self.to_port

    def names_peer(self, appliance: ApplianceLocation) -> bool:
        if appliance.security_group_id is not None and appliance.security_group_id in self.group_ids:
            return True
        if appliance.cidr is None:
            return False
        return any(_contains(cidr, appliance.cidr) for cidr in self.cidrs)


def _contains(rule_cidr: str, appliance: IPv4Network | IPv6Network) -> bool:
    try:
        network = ip_network(rule_cidr, strict=False)
    except ValueError:
        return False
    if network.version != appliance.version:
        return False
    return appliance.subnet_of(network)  # type: ignore[arg-type]


class ApplianceLocation(BaseModel):
    """Where the ASR replication appliance is: its address range, its security group, or both."""

    model_config = ConfigDict(frozen=True)

    cidr: IPvAnyNetwork | None = None
    security_group_id: str | None = None
    ports: tuple[int, ...] = APPLIANCE_PORTS

    @model_validator(mode="after")
    def _located(self) -> ApplianceLocation:
        if self.cidr is None and self.security_group_id is None:
            raise ValueError("the replication appliance needs a CIDR or a security group id")
        return self

    def describe(self) -> str:
        parts = [str(self.cidr)] if self.cidr is not None else []
        if self.security_group_id:
            parts.append(self.security_group_id)
        return " / ".join(parts)


class InstanceDescription(BaseModel):
    """What readiness needs to know about one EC2 instance, gathered by the AWS adapters."""

    model_config = ConfigDict(frozen=True)

    instance: InstanceRef
    state: str  # pending | running | stopping | stopped | shutting-down | terminated
    architecture: str  # x86_64 | arm64 | i386 | x86_64_mac | arm64_mac
    virtualization_type: str  # hvm | paravirtual
    private_ip: str | None
    platform_details: str  # EC2 PlatformDetails: "Linux/UNIX", "Windows", "Red Hat Enterprise Linux", ...
    image_id: str = ""
    # The AMI's name and description; empty when the AMI is no longer visible (deregistered or private).
    image_name: str = ""
    image_description: str = ""
    security_group_ids: tuple[str, ...] = ()
    security_rules: tuple[SecurityRule, ...] = ()
    disks_gib: tuple[int, ...] = ()
    tags: dict[str, str] = Field(default_factory=dict)


class ReadinessFailure(BaseModel):
    model_config = ConfigDict(frozen=True)

    rule: str
    reason: str


class Readiness(BaseModel):
    model_config = ConfigDict(frozen=True)

    os_family: OsFamily | None
    failures: tuple[ReadinessFailure, ...] = ()

    @property
    def ready(self) -> bool:
        return not self.failures and self.os_family is not None

    @property
    def reason(self) -> str:
        return "; ".join(failure.reason for failure in self.failures)

    @property
    def failed_rules(self) -> tuple[str, ...]:
        return tuple(failure.rule for failure in self.failures)


def os_family_of(platform_details: str, image_text: str = "") -> OsFamily | None:
    """Windows or Linux, from EC2's PlatformDetails; None for anything ASR cannot replicate."""
    details = platform_details.strip()
    if details.lower().startswith("windows"):
        return "windows"
    if details.startswith(_LINUX_PLATFORM_DETAILS) and not _NOT_LINUX_IMAGE.search(image_text):
        return "linux"
    return None


def is_amazon_linux(image_text: str) -> bool:
    return bool(_AMAZON_LINUX_IMAGE.search(image_text))


def _missing_ports(rules: Iterable[SecurityRule], direction: str, appliance: ApplianceLocation) -> list[int]:
    relevant = [rule for rule in rules if rule.direction == direction and rule.names_peer(appliance)]
    return [port for port in appliance.ports if not any(rule.allows_tcp(port) for rule in relevant)]


def _ports(ports: Sequence[int]) -> str:
    return " and ".join(str(port) for port in ports)


def check_readiness(description: InstanceDescription, appliance: ApplianceLocation) -> Readiness:
    """Every readiness rule that fails for this instance, in a stable order."""
    failures: list[ReadinessFailure] = []

    def fail(rule: str, reason: str) -> None:
        failures.append(ReadinessFailure(rule=rule, reason=reason))

    if description.state != "running":
        fail(
            RULE_RUNNING,
            f"instance is {description.state}, not running: start it so the appliance can install the "
            "Mobility service, then tag it again",
        )
    if description.architecture != "x86_64":
        fail(
            RULE_ARCHITECTURE,
            f"architecture is {description.architecture}: ASR replicates x86_64 machines only",
        )
    if description.virtualization_type != "hvm":
        fail(
            RULE_VIRTUALIZATION,
            f"virtualization is {description.virtualization_type}, not HVM: PV instances may not boot in "
            "Azure; move it to an HVM instance type first",
        )
    if not description.private_ip:
        fail(RULE_PRIVATE_IP, "instance has no private IPv4 address: the appliance finds machines by it")
    image_text = f"{description.image_name} {description.image_description}".strip()
    family = os_family_of(description.platform_details, image_text)
    if family is None:
        seen = description.platform_details or "unknown"
        if image_text:
            seen += f" ({description.image_name or description.image_description})"
        fail(RULE_PLATFORM, f"platform {seen} is not one ASR replicates (Windows or Linux)")
    if is_amazon_linux(image_text):
        fail(
            RULE_AMAZON_LINUX,
            f"image {description.image_name or description.image_id} is Amazon Linux, which ASR does not "
            "support: rebuild on a supported distribution",
        )
    groups = ", ".join(description.security_group_ids) or "none"
    inbound = _missing_ports(description.security_rules, "ingress", appliance)
    if inbound:
        fail(
            RULE_APPLIANCE_TO_INSTANCE,
            f"security groups ({groups}) do not allow inbound TCP {_ports(inbound)} from the replication "
            f"appliance ({appliance.describe()})",
        )
    outbound = _missing_ports(description.security_rules, "egress", appliance)
    if outbound:
        fail(
            RULE_INSTANCE_TO_APPLIANCE,
            f"security groups ({groups}) do not allow outbound TCP {_ports(outbound)} to the replication "
            f"appliance ({appliance.describe()})",
        )
    return Readiness(os_family=family, failures=tuple(failures))
