"""The readiness rules, pure: each rule passes and fails on a typed description of an instance."""

from __future__ import annotations

from typing import Any

import pytest

from migration.identity import InstanceRef
from migration.readiness import (
    RULE_AMAZON_LINUX,
    RULE_APPLIANCE_TO_INSTANCE,
    RULE_ARCHITECTURE,
    RULE_INSTANCE_TO_APPLIANCE,
    RULE_NACL_INBOUND,
    RULE_NACL_OUTBOUND,
    RULE_PLATFORM,
    RULE_PRIVATE_IP,
    RULE_RUNNING,
    RULE_SSM_MANAGED,
    RULE_VIRTUALIZATION,
    ApplianceLocation,
    InstanceDescription,
    NetworkAclEntry,
    SecurityRule,
    check_readiness,
    is_amazon_linux,
    os_family_of,
)

APPLIANCE = ApplianceLocation(cidr="10.0.200.0/28", security_group_id="sg-appliance")
INSTANCE = InstanceRef(account_id="123456789012", region="eu-west-1", instance_id="i-0123456789abcdef0")


def rule(direction: str, **fields: Any) -> SecurityRule:
    return SecurityRule(group_id="sg-workload", direction=direction, **fields)


# A security group as EC2 creates it: no ingress, all egress. The SSM path needs nothing more.
OPEN_RULES = (rule("egress", protocol="-1", cidrs=("0.0.0.0/0",)),)
# Push install of a Linux source: the appliance reaches it on 22.
PUSH_LINUX = (*OPEN_RULES, rule("ingress", protocol="tcp", from_port=22, to_port=22, cidrs=("10.0.200.0/28",)))


def acl(number: int, action: str, *, egress: bool = True, **fields: Any) -> NetworkAclEntry:
    fields.setdefault("protocol", "6")
    fields.setdefault("cidr", "0.0.0.0/0")
    return NetworkAclEntry(rule_number=number, egress=egress, action=action, **fields)


# The default network ACL of a VPC: allow everything (100), then the final deny (*).
DEFAULT_ACL = (
    acl(100, "allow", protocol="-1"),
    acl(32767, "deny", protocol="-1"),
    acl(100, "allow", egress=False, protocol="-1"),
    acl(32767, "deny", egress=False, protocol="-1"),
)


def ready(**changes: Any) -> InstanceDescription:
    fields: dict[str, Any] = {
        "instance": INSTANCE,
        "state": "running",
        "architecture": "x86_64",
        "virtualization_type": "hvm",
        "private_ip": "10.0.1.20",
        "platform_details": "Linux/UNIX",
        "image_id": "ami-785db401",
        "image_name": "ubuntu/images/hvm-ssd/ubuntu-jammy-22.04-amd64-server-20240207",
        "image_description": "Canonical, Ubuntu, 22.04 LTS, amd64 jammy image",
        "security_group_ids": ("sg-workload",),
        "security_rules": OPEN_RULES,
        "subnet_id": "subnet-0a1b2c3d",
        "network_acl_id": "acl-0a1b2c3d",
        "network_acl_entries": DEFAULT_ACL,
        "ssm_ping_status": "Online",
    }
    fields.update(changes)
    return InstanceDescription(**fields)


def test_a_ready_instance_passes_every_rule() -> None:
    result = check_readiness(ready(), APPLIANCE)

    assert result.ready
    assert result.failures == ()
    assert result.os_family == "linux"


@pytest.mark.parametrize(
    ("changes", "failed", "words"),
    [
        ({"state": "stopped"}, RULE_RUNNING, "instance is stopped, not running"),
        ({"state": "pending"}, RULE_RUNNING, "pending"),
        ({"architecture": "arm64"}, RULE_ARCHITECTURE, "x86_64 machines only"),
        ({"architecture": "i386"}, RULE_ARCHITECTURE, "i386"),
        ({"virtualization_type": "paravirtual"}, RULE_VIRTUALIZATION, "PV instances may not boot in Azure"),
        ({"private_ip": None}, RULE_PRIVATE_IP, "no private IPv4 address"),
        ({"platform_details": "macOS"}, RULE_PLATFORM, "platform macOS"),
        ({"image_name": "FreeBSD 14.0-RELEASE-amd64"}, RULE_PLATFORM, "FreeBSD"),
        ({"image_name": "amzn2-ami-hvm-2.0.20180810-x86_64-gp2"}, RULE_AMAZON_LINUX, "Amazon Linux"),
        ({"image_name": "al2023-ami-2023.3.20240131.0-kernel-6.1-x86_64"}, RULE_AMAZON_LINUX, "Amazon Linux"),
    ],
)
def test_each_rule_fails_alone_with_a_reason(changes: dict[str, Any], failed: str, words: str) -> None:
    result = check_readiness(ready(**changes), APPLIANCE)

    assert not result.ready
    assert result.failed_rules == (failed,)
    assert words in result.reason


@pytest.mark.parametrize(
    ("details", "family"),
    [
        ("Windows", "windows"),
        ("Windows with SQL Server Standard", "windows"),
        ("Linux/UNIX", "linux"),
        ("Red Hat Enterprise Linux", "linux"),
        ("Red Hat Enterprise Linux with HA", "linux"),
        ("SUSE Linux", "linux"),
        ("Ubuntu Pro", "linux"),
        ("Linux with SQL Server Standard", "linux"),
        ("Linux with SQL Server Web", "linux"),
        ("Linux with SQL Server Enterprise", "linux"),
        ("Red Hat Enterprise Linux with SQL Server Standard and HA", "linux"),
        ("", None),
        ("macOS", None),
    ],
)
def test_os_family_comes_from_platform_details(details: str, family: str | None) -> None:
    assert os_family_of(details) == family


def test_amazon_linux_is_recognised_by_name_or_description() -> None:
    assert is_amazon_linux("Amazon Linux 2 AMI 2.0.20180810 x86_64 HVM gp2")
    assert is_amazon_linux("amzn-ami-hvm-2017.09.1.20171103-x86_64-gp2")
    assert not is_amazon_linux("RHEL-7.4_HVM_GA-20170808-x86_64-2-Hourly2-GP2")
    assert not is_amazon_linux("")


# Outbound to the appliance: security-group egress


def test_an_instance_reaches_the_appliance_by_default_without_any_inbound_rule() -> None:
    result = check_readiness(ready(security_rules=OPEN_RULES), APPLIANCE)

    assert result.ready


def test_no_egress_fails_the_outbound_rule() -> None:
    result = check_readiness(ready(security_rules=()), APPLIANCE)

    assert result.failed_rules == (RULE_INSTANCE_TO_APPLIANCE,)
    assert "outbound TCP 443 and 9443 to the replication appliance (10.0.200.0/28 / sg-appliance)" in result.reason


def test_inbound_443_and_9443_on_the_instance_do_not_count_for_the_outbound_rule() -> None:
    inbound_only = (
        rule("ingress", protocol="tcp", from_port=443, to_port=9443, cidrs=("10.0.200.0/28",)),
        rule("egress", protocol="udp", from_port=0, to_port=65535, cidrs=("0.0.0.0/0",)),
    )

    result = check_readiness(ready(security_rules=inbound_only), APPLIANCE)

    assert result.failed_rules == (RULE_INSTANCE_TO_APPLIANCE,)


@pytest.mark.parametrize(
    ("candidate", "missing"),
    [
        (rule("egress", protocol="tcp", from_port=443, to_port=9443, cidrs=("10.0.200.0/28",)), None),
        (rule("egress", protocol="-1", cidrs=("10.0.0.0/8",)), None),
        (rule("egress", protocol="6", from_port=0, to_port=65535, cidrs=("0.0.0.0/0",)), None),
        (rule("egress", protocol="tcp", from_port=443, to_port=9443, group_ids=("sg-appliance",)), None),
        (rule("egress", protocol="tcp", from_port=443, to_port=443, cidrs=("10.0.200.0/28",)), "9443"),
        (rule("egress", protocol="tcp", from_port=9443, to_port=9443, cidrs=("10.0.200.0/28",)), "443"),
        # A range that holds only part of the appliance's range does not reach the appliance.
        (rule("egress", protocol="tcp", from_port=443, to_port=9443, cidrs=("10.0.200.0/30",)), "443 and 9443"),
        (rule("egress", protocol="udp", from_port=443, to_port=9443, cidrs=("10.0.0.0/8",)), "443 and 9443"),
        (rule("egress", protocol="tcp", from_port=443, to_port=9443, cidrs=("::/0",)), "443 and 9443"),
        (rule("egress", protocol="tcp", from_port=443, to_port=9443, group_ids=("sg-other",)), "443 and 9443"),
        (rule("egress", protocol="tcp", from_port=443, to_port=9443, cidrs=("not-a-cidr",)), "443 and 9443"),
    ],
)
def test_which_egress_rules_reach_the_appliance(candidate: SecurityRule, missing: str | None) -> None:
    result = check_readiness(ready(security_rules=(candidate,)), APPLIANCE)

    if missing is None:
        assert RULE_INSTANCE_TO_APPLIANCE not in result.failed_rules
    else:
        assert result.failed_rules == (RULE_INSTANCE_TO_APPLIANCE,)
        assert f"outbound TCP {missing} to" in result.reason


def test_an_appliance_known_only_by_its_group_is_matched_by_group() -> None:
    by_group = ApplianceLocation(security_group_id="sg-appliance")
    by_cidr = (rule("egress", protocol="tcp", from_port=443, to_port=9443, cidrs=("10.0.0.0/8",)),)
    by_peer = (rule("egress", protocol="tcp", from_port=443, to_port=9443, group_ids=("sg-appliance",)),)

    # Egress by CIDR cannot be matched to an appliance known only by its group; the ACL is not judged.
    assert check_readiness(ready(security_rules=by_cidr), by_group).failed_rules == (RULE_INSTANCE_TO_APPLIANCE,)
    assert check_readiness(ready(security_rules=by_peer), by_group).ready


# Outbound to the appliance: the subnet's network ACL (stateless, first matching rule number wins)


@pytest.mark.parametrize(
    ("entries", "blocked"),
    [
        # A deny of 9443 to the appliance's range before the allow-all.
        ((acl(50, "deny", from_port=9443, to_port=9443, cidr="10.0.200.0/24"), *DEFAULT_ACL), "9443"),
        # The same deny after the allow-all: never reached.
        ((acl(150, "deny", from_port=9443, to_port=9443, cidr="10.0.200.0/24"), *DEFAULT_ACL), None),
        # A deny that touches only part of the appliance's range still blocks it.
        ((acl(50, "deny", protocol="-1", cidr="10.0.200.8/29"), *DEFAULT_ACL), "443 and 9443"),
        # A deny of another range, or of UDP, does not matter.
        ((acl(50, "deny", protocol="-1", cidr="192.168.0.0/16"), *DEFAULT_ACL), None),
        ((acl(50, "deny", protocol="17", cidr="10.0.200.0/24"), *DEFAULT_ACL), None),
        # Only the final deny: nothing is allowed.
        ((acl(32767, "deny", protocol="-1"),), "443 and 9443"),
        # An allow for 443 only, then the final deny.
        ((acl(10, "allow", from_port=443, to_port=443, cidr="10.0.0.0/8"), acl(32767, "deny", protocol="-1")), "9443"),
        # An allow for part of the range, then a deny of the rest: blocked.
        (
            (
                acl(10, "allow", from_port=443, to_port=9443, cidr="10.0.200.0/29"),
                acl(20, "deny", from_port=443, to_port=9443, cidr="10.0.200.0/24"),
                *DEFAULT_ACL,
            ),
            "443 and 9443",
        ),
        # Rule numbers decide, not the order EC2 lists the entries in.
        (
            (acl(200, "allow", protocol="-1"), acl(100, "deny", from_port=443, to_port=443, cidr="10.0.200.0/28")),
            "443",
        ),
        # Ingress entries do not decide egress.
        ((acl(1, "deny", egress=False, protocol="-1"), *DEFAULT_ACL), None),
    ],
)
def test_network_acl_outbound_entries_are_judged_by_rule_number(
    entries: tuple[NetworkAclEntry, ...], blocked: str | None
) -> None:
    result = check_readiness(ready(network_acl_entries=entries), APPLIANCE)

    if blocked is None:
        assert RULE_NACL_OUTBOUND not in result.failed_rules
    else:
        assert result.failed_rules == (RULE_NACL_OUTBOUND,)
        assert f"network ACL acl-0a1b2c3d denies outbound TCP {blocked} to the replication appliance" in result.reason


# Push install (the operator's choice instead of SSM): the appliance reaches the source


def test_push_install_needs_inbound_22_on_linux() -> None:
    without = check_readiness(ready(), APPLIANCE, agent_install="push")
    with_22 = check_readiness(ready(security_rules=PUSH_LINUX), APPLIANCE, agent_install="push")

    assert without.failed_rules == (RULE_APPLIANCE_TO_INSTANCE,)
    assert "push install: security groups (sg-workload) do not allow inbound TCP 22 from" in without.reason
    assert with_22.ready


def test_push_install_needs_inbound_445_and_135_on_windows() -> None:
    windows = {"platform_details": "Windows", "image_name": "Windows_Server-2022-English-Full-Base"}
    only_445 = (*OPEN_RULES, rule("ingress", protocol="tcp", from_port=445, to_port=445, group_ids=("sg-appliance",)))
    both = (*only_445, rule("ingress", protocol="tcp", from_port=135, to_port=135, cidrs=("10.0.0.0/16",)))

    missing_135 = check_readiness(ready(security_rules=only_445, **windows), APPLIANCE, agent_install="push")

    assert missing_135.failed_rules == (RULE_APPLIANCE_TO_INSTANCE,)
    assert "inbound TCP 135 from" in missing_135.reason
    assert check_readiness(ready(security_rules=both, **windows), APPLIANCE, agent_install="push").ready


def test_push_install_ports_are_judged_on_the_network_acl_inbound_entries() -> None:
    deny_ssh = (acl(10, "deny", egress=False, from_port=22, to_port=22, cidr="10.0.0.0/8"), *DEFAULT_ACL)

    result = check_readiness(
        ready(security_rules=PUSH_LINUX, network_acl_entries=deny_ssh), APPLIANCE, agent_install="push"
    )

    assert result.failed_rules == (RULE_NACL_INBOUND,)
    assert "push install: network ACL acl-0a1b2c3d denies inbound TCP 22 from" in result.reason


def test_push_ports_are_not_required_when_the_agent_comes_through_ssm() -> None:
    deny_ssh = (acl(10, "deny", egress=False, protocol="-1"), *DEFAULT_ACL)

    assert check_readiness(ready(network_acl_entries=deny_ssh), APPLIANCE, agent_install="ssm").ready
    assert check_readiness(ready(network_acl_entries=deny_ssh), APPLIANCE, agent_install="manual").ready


# SSM managed and online


@pytest.mark.parametrize(
    ("ping", "words"),
    [
        (None, "not an SSM managed instance"),
        ("ConnectionLost", "SSM Agent is ConnectionLost, not Online"),
        ("Inactive", "SSM Agent is Inactive, not Online"),
    ],
)
def test_the_ssm_path_needs_a_managed_instance_that_is_online(ping: str | None, words: str) -> None:
    result = check_readiness(ready(ssm_ping_status=ping), APPLIANCE, agent_install="ssm")

    assert result.failed_rules == (RULE_SSM_MANAGED,)
    assert words in result.reason
    # The other ways of installing the agent do not need SSM.
    assert check_readiness(ready(ssm_ping_status=ping), APPLIANCE, agent_install="manual").ready


def test_an_appliance_needs_an_address_or_a_group() -> None:
    with pytest.raises(ValueError, match="CIDR or a security group"):
        ApplianceLocation()


def test_every_failure_is_reported_in_order() -> None:
    broken = ready(
        state="stopped",
        architecture="arm64",
        virtualization_type="paravirtual",
        security_rules=(),
        network_acl_entries=(acl(32767, "deny", protocol="-1"),),
        ssm_ping_status=None,
    )

    result = check_readiness(broken, APPLIANCE)

    assert result.failed_rules == (
        RULE_RUNNING,
        RULE_ARCHITECTURE,
        RULE_VIRTUALIZATION,
        RULE_INSTANCE_TO_APPLIANCE,
        RULE_NACL_OUTBOUND,
        RULE_SSM_MANAGED,
    )
