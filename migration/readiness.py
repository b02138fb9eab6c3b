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
# How the Mobility service reaches the instance: an SSM Run Command (no inbound port, no stored password),
# the appliance's push install (needs inbound ports and OS credentials on the appliance), or by hand.
AgentInstall = Literal["ssm", "push", "manual"]

# The source connects to the appliance on these (control and replication data): the appliance's inbound
# ports, so the instance's OUTBOUND ones (docs/AWS.md, "Readiness", for the sources).
APPLIANCE_PORTS: tuple[int, ...] = (443, 9443)
# Push install: the appliance connects to the source, on 22 (Linux) or 445 and 135 (WMI/RPC, Windows).
PUSH_INSTALL_PORTS: dict[OsFamily, tuple[int, ...]] = {"linux": (22,), "windows": (445, 135)}

# Rule names: stable, used as a metric dimension and in the reason text.
RULE_RUNNING = "running"
RULE_ARCHITECTURE = "architecture"
RULE_VIRTUALIZATION = "virtualization"
RULE_PRIVATE_IP = "private-ip"
RULE_PLATFORM = "platform"
RULE_AMAZON_LINUX = "amazon-linux"
RULE_APPLIANCE_TO_INSTANCE = "appliance-to-instance"  # push install only: security-group ingress
RULE_INSTANCE_TO_APPLIANCE = "instance-to-appliance"  # security-group egress to 443/9443
RULE_NACL_OUTBOUND = "network-acl-outbound"  # the subnet's network ACL, egress to 443/9443
RULE_NACL_INBOUND = "network-acl-inbound"  # push install only: the subnet's network ACL, ingress
RULE_SSM_MANAGED = "ssm-managed"  # SSM install only: a managed instance whose agent is Online
RULES = (
    RULE_RUNNING,
    RULE_ARCHITECTURE,
    RULE_VIRTUALIZATION,
    RULE_PRIVATE_IP,
    RULE_PLATFORM,
    RULE_AMAZON_LINUX,
    RULE_APPLIANCE_TO_INSTANCE,
    RULE_INSTANCE_TO_APPLIANCE,
    RULE_NACL_OUTBOUND,
    RULE_NACL_INBOUND,
    RULE_SSM_MANAGED,
)

# EC2 PlatformDetails values (the billing platform of the AMI) that are Linux distributions.
# "Linux with SQL Server Standard|Web|Enterprise" is EC2's billing platform of SQL Server on a Linux AMI.
_LINUX_PLATFORM_DETAILS = ("Linux/UNIX", "Red Hat", "SUSE Linux", "Ubuntu Pro", "Linux with SQL Server")
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


class NetworkAclEntry(BaseModel):
    """One entry of the subnet's network ACL, as EC2 describes it (DescribeNetworkAcls)."""

    model_config = ConfigDict(frozen=True)

    rule_number: int  # evaluated in ascending order; the first entry that matches decides
    egress: bool
    protocol: str  # "-1" (all) or an IANA number as a string ("6" is TCP)
    action: Literal["allow", "deny"]
    cidr: str  # CidrBlock or Ipv6CidrBlock
    from_port: int | None = None  # PortRange; None when the entry covers all ports
    to_port: int | None = None

    def covers_tcp(self, port: int) -> bool:
        if self.protocol not in ("-1", "6", "tcp"):
            return False
        if self.from_port is None or self.to_port is None:
            return True
        return self.from_port <= port <= self.to_port


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
    subnet_id: str | None = None
    network_acl_id: str | None = None
    network_acl_entries: tuple[NetworkAclEntry, ...] = ()
    # SSM's PingStatus for the instance (Online, ConnectionLost, Inactive); None: not a managed instance.
    # Only looked up when the agent is installed through SSM.
    ssm_ping_status: str | None = None
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


def _missing_ports(
    rules: Iterable[SecurityRule], direction: str, appliance: ApplianceLocation, ports: Sequence[int]
) -> list[int]:
    relevant = [rule for rule in rules if rule.direction == direction and rule.names_peer(appliance)]
    return [port for port in ports if not any(rule.allows_tcp(port) for rule in relevant)]


def _overlaps(cidr: str, appliance: IPv4Network | IPv6Network) -> bool:
    try:
        network = ip_network(cidr, strict=False)
    except ValueError:
        return False
    return network.version == appliance.version and network.overlaps(appliance)


def nacl_blocked_ports(
    entries: Iterable[NetworkAclEntry], *, egress: bool, appliance: ApplianceLocation, ports: Sequence[int]
) -> list[int]:
    """The ports a network ACL does not let through to (egress) or from (ingress) the whole appliance range.

    Entries are evaluated in ascending rule number and the first that matches the traffic decides. A deny
    that touches any part of the appliance range blocks it; an allow must hold the whole range. A port no
    entry allows meets the ACL's final ``*`` entry, which denies.
    """
    if appliance.cidr is None:
        return []  # an appliance known only by its security group cannot be placed in an ACL's CIDRs
    ordered = sorted((e for e in entries if e.egress is egress), key=lambda e: e.rule_number)
    blocked = []
    for port in ports:
        verdict = "deny"
        for entry in ordered:
            if not entry.covers_tcp(port) or not _overlaps(entry.cidr, appliance.cidr):
                continue
            if entry.action == "deny":
                break
            if _contains(entry.cidr, appliance.cidr):
                verdict = "allow"
                break
            # An allow for part of the range: the rest of the range goes on to the next entries.
        if verdict != "allow":
            blocked.append(port)
    return blocked


def _ports(ports: Sequence[int]) -> str:
    return " and ".join(str(port) for port in ports)


def check_readiness(
    description: InstanceDescription, appliance: ApplianceLocation, *, agent_install: AgentInstall = "ssm"
) -> Readiness:
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
    acl = description.network_acl_id or "the subnet's network ACL"
    outbound = _missing_ports(description.security_rules, "egress", appliance, appliance.ports)
    if outbound:
        fail(
            RULE_INSTANCE_TO_APPLIANCE,
            f"security groups ({groups}) do not allow outbound TCP {_ports(outbound)} to the replication "
            f"appliance ({appliance.describe()})",
        )
    acl_out = nacl_blocked_ports(
        description.network_acl_entries, egress=True, appliance=appliance, ports=appliance.ports
    )
    if acl_out and description.network_acl_id:
        fail(
            RULE_NACL_OUTBOUND,
            f"network ACL {acl} denies outbound TCP {_ports(acl_out)} to the replication appliance "
            f"({appliance.describe()})",
        )
    if agent_install == "push" and family is not None:
        push_ports = PUSH_INSTALL_PORTS[family]
        inbound = _missing_ports(description.security_rules, "ingress", appliance, push_ports)
        if inbound:
            fail(
                RULE_APPLIANCE_TO_INSTANCE,
                f"push install: security groups ({groups}) do not allow inbound TCP {_ports(inbound)} from "
                f"the replication appliance ({appliance.describe()})",
            )
        acl_in = nacl_blocked_ports(
            description.network_acl_entries, egress=False, appliance=appliance, ports=push_ports
        )
        if acl_in and description.network_acl_id:
            fail(
                RULE_NACL_INBOUND,
                f"push install: network ACL {acl} denies inbound TCP {_ports(acl_in)} from the replication "
                f"appliance ({appliance.describe()})",
            )
    if agent_install == "ssm":
        if description.ssm_ping_status is None:
            fail(
                RULE_SSM_MANAGED,
                "not an SSM managed instance, so the Mobility service cannot be installed through Systems "
                "Manager: run SSM Agent and attach an instance profile with AmazonSSMManagedInstanceCore",
            )
        elif description.ssm_ping_status != "Online":
            fail(
                RULE_SSM_MANAGED,
                f"SSM Agent is {description.ssm_ping_status}, not Online: the install command would not be "
                "delivered; check the agent and its route to the SSM endpoints",
            )
    return Readiness(os_family=family, failures=tuple(failures))
