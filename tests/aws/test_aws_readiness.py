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
    RULE_PLATFORM,
    RULE_PRIVATE_IP,
    RULE_RUNNING,
    RULE_VIRTUALIZATION,
    ApplianceLocation,
    InstanceDescription,
    SecurityRule,
    check_readiness,
    is_amazon_linux,
    os_family_of,
)

APPLIANCE = ApplianceLocation(cidr="10.0.200.0/28", security_group_id="sg-appliance")
INSTANCE = InstanceRef(account_id="123456789012", region="eu-west-1", instance_id="i-0123456789abcdef0")


def rule(direction: str, **fields: Any) -> SecurityRule:
    return SecurityRule(group_id="sg-workload", direction=direction, **fields)


OPEN_RULES = (
    rule("ingress", protocol="tcp", from_port=443, to_port=443, cidrs=("10.0.0.0/16",)),
    rule("ingress", protocol="tcp", from_port=9443, to_port=9443, cidrs=("10.0.200.0/28",)),
    rule("egress", protocol="-1", cidrs=("0.0.0.0/0",)),
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


def test_missing_inbound_ports_are_named() -> None:
    only_443 = (OPEN_RULES[0], OPEN_RULES[2])

    result = check_readiness(ready(security_rules=only_443), APPLIANCE)

    assert result.failed_rules == (RULE_APPLIANCE_TO_INSTANCE,)
    assert "inbound TCP 9443 from the replication appliance (10.0.200.0/28 / sg-appliance)" in result.reason


def test_no_egress_fails_the_outbound_rule() -> None:
    result = check_readiness(ready(security_rules=OPEN_RULES[:2]), APPLIANCE)

    assert result.failed_rules == (RULE_INSTANCE_TO_APPLIANCE,)
    assert "outbound TCP 443 and 9443" in result.reason


@pytest.mark.parametrize(
    ("candidate", "allows"),
    [
        (rule("ingress", protocol="tcp", from_port=443, to_port=9443, cidrs=("10.0.200.0/28",)), True),
        (rule("ingress", protocol="-1", cidrs=("10.0.0.0/8",)), True),
        (rule("ingress", protocol="6", from_port=0, to_port=65535, cidrs=("0.0.0.0/0",)), True),
        (rule("ingress", protocol="tcp", from_port=443, to_port=9443, group_ids=("sg-appliance",)), True),
        # A range that holds only part of the appliance's range does not admit the appliance.
        (rule("ingress", protocol="tcp", from_port=443, to_port=9443, cidrs=("10.0.200.0/30",)), False),
        (rule("ingress", protocol="udp", from_port=443, to_port=9443, cidrs=("10.0.0.0/8",)), False),
        (rule("ingress", protocol="tcp", from_port=443, to_port=9443, cidrs=("::/0",)), False),
        (rule("ingress", protocol="tcp", from_port=443, to_port=9443, group_ids=("sg-other",)), False),
        (rule("ingress", protocol="tcp", from_port=443, to_port=9443, cidrs=("not-a-cidr",)), False),
    ],
)
def test_which_ingress_rules_admit_the_appliance(candidate: SecurityRule, allows: bool) -> None:
    result = check_readiness(ready(security_rules=(candidate, OPEN_RULES[2])), APPLIANCE)

    assert (RULE_APPLIANCE_TO_INSTANCE not in result.failed_rules) is allows


def test_an_appliance_known_only_by_its_group_is_matched_by_group() -> None:
    by_group = ApplianceLocation(security_group_id="sg-appliance")
    rules = (
        rule("ingress", protocol="tcp", from_port=443, to_port=9443, group_ids=("sg-appliance",)),
        rule("egress", protocol="tcp", from_port=443, to_port=9443, cidrs=("10.0.0.0/8",)),
    )

    result = check_readiness(ready(security_rules=rules), by_group)

    # Egress by CIDR cannot be matched to an appliance known only by its group.
    assert result.failed_rules == (RULE_INSTANCE_TO_APPLIANCE,)


def test_an_appliance_needs_an_address_or_a_group() -> None:
    with pytest.raises(ValueError, match="CIDR or a security group"):
        ApplianceLocation()


def test_every_failure_is_reported_in_order() -> None:
    broken = ready(state="stopped", architecture="arm64", virtualization_type="paravirtual", security_rules=())

    result = check_readiness(broken, APPLIANCE)

    assert result.failed_rules == (
        RULE_RUNNING,
        RULE_ARCHITECTURE,
        RULE_VIRTUALIZATION,
        RULE_APPLIANCE_TO_INSTANCE,
        RULE_INSTANCE_TO_APPLIANCE,
    )
