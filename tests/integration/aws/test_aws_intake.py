"""Intake, through its Lambda handler, against moto's server and Azurite, with the AWS sample event."""

from __future__ import annotations

import copy
import json
from types import ModuleType
from typing import Any

import pytest

from migration.events import CancelRequested, MigrationRequested
from migration.readiness import (
    RULE_AMAZON_LINUX,
    RULE_ARCHITECTURE,
    RULE_INSTANCE_TO_APPLIANCE,
    RULE_NACL_OUTBOUND,
    RULE_PLATFORM,
    RULE_RUNNING,
    RULE_VIRTUALIZATION,
)
from migration.tags import CUTOVER_AT, MIGRATE, REASON, STATUS, TARGET_SIZE, WAVE
from tests.integration.aws.aws_test_support import (
    AMI_AMAZON_LINUX_2,
    AMI_FREEBSD,
    AMI_RHEL,
    AMI_SUSE_PV,
    AMI_UBUNTU,
    AMI_UBUNTU_ARM64,
    AMI_WINDOWS,
    TAG_CHANGE_SAMPLE,
    LocalAws,
    reference_event,
)

pytestmark = pytest.mark.integration

APPLIANCE = "10.0.200.0/28"
BOTH_PORTS = [
    {"IpProtocol": "tcp", "FromPort": 443, "ToPort": 443, "IpRanges": [{"CidrIp": "10.0.0.0/16"}]},
    {"IpProtocol": "tcp", "FromPort": 9443, "ToPort": 9443, "IpRanges": [{"CidrIp": APPLIANCE}]},
]
FAR_FUTURE = "2099-12-01T22:00:00Z"


@pytest.fixture(scope="module")
def intake(local_aws: LocalAws) -> ModuleType:
    return local_aws.handler("intake")


@pytest.fixture(scope="module")
def open_group(local_aws: LocalAws) -> str:
    """Inbound 443 and 9443 from the appliance's range; the default allow-all egress."""
    return local_aws.workload_group("workload", ingress=BOTH_PORTS)


def request(aws: LocalAws, intake: ModuleType, instance_id: str, **tags: str) -> dict[str, Any]:
    aws.set_tags(instance_id, {MIGRATE: "true", **tags})
    return aws.invoke(intake, aws.tag_change(instance_id, [MIGRATE, *tags]))


# Readiness, one rule at a time: each instance fails exactly the rule it is built to fail.


def test_ready_linux_instance_is_requested_and_its_event_reaches_the_azure_queue(
    local_aws: LocalAws, intake: ModuleType, open_group: str
) -> None:
    instance_id = local_aws.launch(AMI_UBUNTU, groups=[open_group])
    local_aws.set_tags(instance_id, {WAVE: "wave-1", TARGET_SIZE: "Standard_D4s_v5"})

    outcome = request(local_aws, intake, instance_id)

    assert outcome["action"] == "requested", outcome
    tags = local_aws.tags_of(instance_id)
    assert tags[STATUS] == "Requested"
    [event] = local_aws.queue.events_for(instance_id)
    assert isinstance(event, MigrationRequested)
    assert event.id == outcome["event_id"]
    assert event.data.os_family == "linux"
    assert event.data.wave == "wave-1"
    assert event.data.target_size == "Standard_D4s_v5"
    assert event.data.instance.account_id == local_aws.side.account_id
    assert event.data.instance.region == local_aws.side.region
    assert (
        str(event.data.private_ip)
        == local_aws.ec2.describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"][0][
            "PrivateIpAddress"
        ]
    )
    assert event.data.disks_gib
    assert all(size > 0 for size in event.data.disks_gib)
    assert event.data.request_id == outcome["request_id"]


@pytest.mark.parametrize(("image", "family"), [(AMI_WINDOWS, "windows"), (AMI_RHEL, "linux")])
def test_windows_and_rhel_pass_the_platform_rule(
    local_aws: LocalAws, intake: ModuleType, open_group: str, image: str, family: str
) -> None:
    instance_id = local_aws.launch(image, groups=[open_group])

    outcome = request(local_aws, intake, instance_id)

    assert outcome["action"] == "requested", outcome
    [event] = local_aws.queue.events_for(instance_id)
    assert isinstance(event, MigrationRequested)
    assert event.data.os_family == family


@pytest.mark.parametrize(
    "case",
    [
        (AMI_UBUNTU_ARM64, RULE_ARCHITECTURE, "arm64"),
        (AMI_SUSE_PV, RULE_VIRTUALIZATION, "paravirtual"),
        (AMI_FREEBSD, RULE_PLATFORM, "FreeBSD"),
        (AMI_AMAZON_LINUX_2, RULE_AMAZON_LINUX, "Amazon Linux"),
    ],
    ids=["arm64", "paravirtual", "freebsd", "amazon-linux"],
)
def test_image_rules_fail_with_an_actionable_reason_and_a_not_ready_tag(
    local_aws: LocalAws, intake: ModuleType, open_group: str, case: tuple[str, str, str]
) -> None:
    image, rule, words = case
    instance_id = local_aws.launch(image, groups=[open_group])

    outcome = request(local_aws, intake, instance_id)

    assert outcome["action"] == "not-ready"
    assert outcome["failed_rules"] == [rule]
    tags = local_aws.tags_of(instance_id)
    assert tags[STATUS] == "NotReady"
    assert words in tags[REASON]
    assert local_aws.queue.events_for(instance_id) == []


def test_a_stopped_instance_fails_the_running_rule(local_aws: LocalAws, intake: ModuleType, open_group: str) -> None:
    instance_id = local_aws.launch(AMI_UBUNTU, groups=[open_group])
    local_aws.ec2.stop_instances(InstanceIds=[instance_id])

    outcome = request(local_aws, intake, instance_id)

    assert outcome["failed_rules"] == [RULE_RUNNING]
    assert "stopped, not running" in local_aws.tags_of(instance_id)[REASON]


def test_no_inbound_rule_is_needed_the_instance_connects_to_the_appliance(
    local_aws: LocalAws, intake: ModuleType
) -> None:
    no_ingress = local_aws.workload_group("no-ingress", ingress=[])
    instance_id = local_aws.launch(AMI_UBUNTU, groups=[no_ingress])

    assert request(local_aws, intake, instance_id)["action"] == "requested"


def test_the_subnet_network_acl_must_let_9443_out(local_aws: LocalAws, intake: ModuleType) -> None:
    ec2 = local_aws.ec2
    subnet = ec2.create_subnet(VpcId=local_aws.side.vpc_id, CidrBlock="172.31.200.0/24")["Subnet"]["SubnetId"]
    acl = ec2.create_network_acl(VpcId=local_aws.side.vpc_id)["NetworkAcl"]["NetworkAclId"]
    default_assoc = ec2.describe_network_acls(Filters=[{"Name": "association.subnet-id", "Values": [subnet]}])
    association = default_assoc["NetworkAcls"][0]["Associations"]
    assoc_id = next(a["NetworkAclAssociationId"] for a in association if a["SubnetId"] == subnet)
    ec2.replace_network_acl_association(AssociationId=assoc_id, NetworkAclId=acl)
    ec2.create_network_acl_entry(
        NetworkAclId=acl, RuleNumber=100, Protocol="6", RuleAction="allow", Egress=True,
        CidrBlock="0.0.0.0/0", PortRange={"From": 443, "To": 443},
    )  # fmt: skip
    group = local_aws.workload_group("acl", ingress=[])
    instance_id = ec2.run_instances(
        ImageId=AMI_UBUNTU, MinCount=1, MaxCount=1, InstanceType="m5.large", SubnetId=subnet, SecurityGroupIds=[group]
    )["Instances"][0]["InstanceId"]

    outcome = request(local_aws, intake, instance_id)

    assert outcome["failed_rules"] == [RULE_NACL_OUTBOUND]
    assert f"network ACL {acl} denies outbound TCP 9443" in outcome["reason"]


def test_security_groups_must_let_the_instance_reach_the_appliance(local_aws: LocalAws, intake: ModuleType) -> None:
    web_only = [{"IpProtocol": "tcp", "FromPort": 80, "ToPort": 80, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}]
    closed = local_aws.workload_group("egress-web-only", ingress=BOTH_PORTS, egress=web_only)
    instance_id = local_aws.launch(AMI_UBUNTU, groups=[closed])

    outcome = request(local_aws, intake, instance_id)

    assert outcome["failed_rules"] == [RULE_INSTANCE_TO_APPLIANCE]
    assert "outbound TCP 443 and 9443" in outcome["reason"]


def test_a_rule_naming_the_appliance_security_group_counts(local_aws: LocalAws, intake: ModuleType) -> None:
    appliance_sg = local_aws.side.appliance_security_group_id
    by_group = [
        {
            "IpProtocol": "tcp",
            "FromPort": 443,
            "ToPort": 9443,
            "UserIdGroupPairs": [{"GroupId": appliance_sg}],
        }
    ]
    group = local_aws.workload_group("from-appliance-group", ingress=by_group, egress=by_group)
    instance_id = local_aws.launch(AMI_UBUNTU, groups=[group])

    assert request(local_aws, intake, instance_id)["action"] == "requested"


def test_several_failures_are_all_reported(local_aws: LocalAws, intake: ModuleType) -> None:
    nothing_open = local_aws.workload_group("closed", ingress=[], egress=[])
    instance_id = local_aws.launch(AMI_SUSE_PV, groups=[nothing_open])

    outcome = request(local_aws, intake, instance_id)

    assert outcome["failed_rules"] == [
        RULE_VIRTUALIZATION,
        RULE_INSTANCE_TO_APPLIANCE,
    ]
    assert len(local_aws.tags_of(instance_id)[REASON]) <= 256


# Idempotency


def test_the_same_event_three_times_puts_one_message_on_the_queue(
    local_aws: LocalAws, intake: ModuleType, open_group: str
) -> None:
    instance_id = local_aws.launch(AMI_UBUNTU, groups=[open_group])
    local_aws.set_tags(instance_id, {MIGRATE: "true"})
    event = local_aws.tag_change(instance_id, [MIGRATE])

    outcomes = [local_aws.invoke(intake, copy.deepcopy(event)) for _ in range(3)]

    assert [o["action"] for o in outcomes] == ["requested"] * 3
    assert len({o["event_id"] for o in outcomes}) == 1
    assert len(local_aws.queue.events_for(instance_id)) == 1


def test_a_new_tagging_after_not_ready_is_a_new_request(
    local_aws: LocalAws, intake: ModuleType, open_group: str
) -> None:
    instance_id = local_aws.launch(AMI_UBUNTU, groups=[open_group])
    local_aws.ec2.stop_instances(InstanceIds=[instance_id])
    assert request(local_aws, intake, instance_id)["action"] == "not-ready"

    local_aws.ec2.start_instances(InstanceIds=[instance_id])
    outcome = request(local_aws, intake, instance_id)  # the owner fixed it and tagged it again

    assert outcome["action"] == "requested"
    assert len(local_aws.queue.events_for(instance_id)) == 1


# Cutover schedule


def test_a_future_cutover_time_creates_a_one_time_schedule_for_the_cutover_lambda(
    local_aws: LocalAws, intake: ModuleType, open_group: str
) -> None:
    instance_id = local_aws.launch(AMI_UBUNTU, groups=[open_group])

    outcome = request(local_aws, intake, instance_id, **{CUTOVER_AT: FAR_FUTURE})

    assert outcome["action"] == "requested"
    scheduler = local_aws.scheduler()
    schedule = scheduler.get_schedule(Name=outcome["cutover_schedule"], GroupName="aws2azure")
    assert schedule["ScheduleExpression"] == "at(2099-12-01T22:00:00)"
    assert schedule["ScheduleExpressionTimezone"] == "UTC"
    assert schedule["Target"]["Arn"] == local_aws.side.cutover_function_arn
    # A cutover invocation that still fails after its retries goes to the cutover dead-letter queue.
    assert schedule["Target"]["DeadLetterConfig"] == {"Arn": local_aws.side.scheduler_dead_letter_arn}
    payload = json.loads(schedule["Target"]["Input"])
    assert payload["instance"]["instance_id"] == instance_id
    assert payload["request_id"] == outcome["request_id"]
    [event] = local_aws.queue.events_for(instance_id)
    assert isinstance(event, MigrationRequested)
    assert event.data.cutover_at is not None
    assert event.data.cutover_at.year == 2099


def test_moving_the_cutover_time_of_a_migration_in_flight_moves_the_schedule(
    local_aws: LocalAws, intake: ModuleType, open_group: str
) -> None:
    instance_id = local_aws.launch(AMI_UBUNTU, groups=[open_group])
    first = request(local_aws, intake, instance_id, **{CUTOVER_AT: FAR_FUTURE})
    local_aws.set_tags(instance_id, {STATUS: "Replicating", CUTOVER_AT: "2099-12-02T06:30:00Z"})

    outcome = local_aws.invoke(intake, local_aws.tag_change(instance_id, [CUTOVER_AT]))

    assert outcome["action"] == "rescheduled"
    scheduler = local_aws.scheduler()
    schedule = scheduler.get_schedule(Name=first["cutover_schedule"], GroupName="aws2azure")
    assert schedule["ScheduleExpression"] == "at(2099-12-02T06:30:00)"
    assert len(local_aws.queue.events_for(instance_id)) == 1  # no second MigrationRequested


@pytest.mark.parametrize(
    ("value", "words"), [("2001-01-01T00:00:00Z", "in the past"), ("next tuesday", "not an ISO-8601 time")]
)
def test_a_past_or_invalid_cutover_time_is_not_ready(
    local_aws: LocalAws, intake: ModuleType, open_group: str, value: str, words: str
) -> None:
    instance_id = local_aws.launch(AMI_UBUNTU, groups=[open_group])

    outcome = request(local_aws, intake, instance_id, **{CUTOVER_AT: value})

    assert outcome["action"] == "not-ready"
    assert words in local_aws.tags_of(instance_id)[REASON]
    assert local_aws.queue.events_for(instance_id) == []


# Cancel


def test_removing_the_migrate_tag_emits_cancel_requested_and_drops_the_schedule(
    local_aws: LocalAws, intake: ModuleType, open_group: str
) -> None:
    instance_id = local_aws.launch(AMI_UBUNTU, groups=[open_group])
    first = request(local_aws, intake, instance_id, **{CUTOVER_AT: FAR_FUTURE})
    local_aws.ec2.delete_tags(Resources=[instance_id], Tags=[{"Key": MIGRATE}])

    outcome = local_aws.invoke(intake, local_aws.tag_change(instance_id, [MIGRATE]))

    assert outcome["action"] == "cancel-requested"
    events = local_aws.queue.events_for(instance_id)
    assert [type(e) for e in events] == [MigrationRequested, CancelRequested]
    cancel = events[1]
    assert isinstance(cancel, CancelRequested)
    assert cancel.data.requested_by == "tag-removed"
    scheduler = local_aws.scheduler()
    with pytest.raises(scheduler.exceptions.ResourceNotFoundException):
        scheduler.get_schedule(Name=first["cutover_schedule"], GroupName="aws2azure")


def test_removing_the_tag_after_failover_started_cancels_nothing(
    local_aws: LocalAws, intake: ModuleType, open_group: str
) -> None:
    instance_id = local_aws.launch(AMI_UBUNTU, groups=[open_group])
    request(local_aws, intake, instance_id)
    local_aws.set_tags(instance_id, {STATUS: "FailingOver"})
    local_aws.ec2.delete_tags(Resources=[instance_id], Tags=[{"Key": MIGRATE}])

    outcome = local_aws.invoke(intake, local_aws.tag_change(instance_id, [MIGRATE]))

    assert outcome["action"] == "ignored"
    assert "failover already started" in local_aws.tags_of(instance_id)[REASON]
    assert [type(e) for e in local_aws.queue.events_for(instance_id)] == [MigrationRequested]


# Bad input: a clear reason, a NotReady tag where an instance exists, never an unhandled exception


def test_the_unmodified_aws_sample_is_parsed_and_ignored(local_aws: LocalAws, intake: ModuleType) -> None:
    outcome = local_aws.invoke(intake, reference_event(TAG_CHANGE_SAMPLE))

    assert outcome["action"] == "ignored"
    assert outcome["reason"] == "no aws2azure request tag changed"


@pytest.mark.parametrize(
    "event",
    [
        {"hello": "world"},
        reference_event(TAG_CHANGE_SAMPLE.with_name("event-cloud-trail-ec2-create-tags.json")),
        reference_event(TAG_CHANGE_SAMPLE.with_name("event-instance-state.json")),
        {**reference_event(TAG_CHANGE_SAMPLE), "detail": "not an object"},
        {**reference_event(TAG_CHANGE_SAMPLE), "resources": []},
        [],
        "just a string",
    ],
    ids=[
        "unrelated",
        "cloudtrail-detail-only",
        "state-change",
        "detail-not-object",
        "no-resources",
        "list",
        "str",
    ],
)
def test_a_malformed_event_is_rejected_with_a_reason(local_aws: LocalAws, intake: ModuleType, event: Any) -> None:
    outcome = local_aws.invoke(intake, event)

    assert outcome["action"] == "rejected"
    assert outcome["reason"].startswith("not a valid Tag Change on Resource event")


def test_an_instance_that_no_longer_exists_is_reported(local_aws: LocalAws, intake: ModuleType) -> None:
    event = reference_event(TAG_CHANGE_SAMPLE)
    event["region"] = local_aws.side.region
    event["resources"] = [
        f"arn:aws:ec2:{local_aws.side.region}:{local_aws.side.account_id}:instance/i-0123456789abcdef0"
    ]
    event["detail"]["changed-tag-keys"] = [MIGRATE]

    outcome = local_aws.invoke(intake, event)

    assert outcome["action"] == "ignored"
    assert "no longer exists" in outcome["reason"]


def test_a_terminated_instance_is_not_ready(local_aws: LocalAws, intake: ModuleType, open_group: str) -> None:
    instance_id = local_aws.launch(AMI_UBUNTU, groups=[open_group], tags={MIGRATE: "true"})
    event = local_aws.tag_change(instance_id, [MIGRATE])
    local_aws.ec2.terminate_instances(InstanceIds=[instance_id])

    outcome = local_aws.invoke(intake, event)

    assert outcome["action"] == "not-ready"
    assert outcome["failed_rules"] == [RULE_RUNNING]


def test_a_non_instance_resource_is_ignored_with_a_reason(local_aws: LocalAws, intake: ModuleType) -> None:
    event = reference_event(TAG_CHANGE_SAMPLE)
    event["resources"] = ["arn:aws:ec2:us-east-1:123456789012:volume/vol-0f9e1b2c3d4e5f6a7"]
    event["detail"]["resource-type"] = "volume"
    event["detail"]["changed-tag-keys"] = [MIGRATE]

    outcome = local_aws.invoke(intake, event)

    assert outcome["action"] == "ignored"
    assert outcome["reason"].startswith("not an EC2 instance: ec2/volume")


@pytest.mark.parametrize(
    ("tags", "words"),
    [
        ({MIGRATE: "maybe"}, "is not a boolean"),
        ({MIGRATE: "true", TARGET_SIZE: "huge"}, "is not a valid Azure VM size"),
        ({MIGRATE: "true", WAVE: "wave one!"}, "is not a valid wave name"),
    ],
)
def test_an_unknown_tag_value_is_not_ready_with_the_reason(
    local_aws: LocalAws, intake: ModuleType, open_group: str, tags: dict[str, str], words: str
) -> None:
    instance_id = local_aws.launch(AMI_UBUNTU, groups=[open_group], tags=tags)

    outcome = local_aws.invoke(intake, local_aws.tag_change(instance_id, list(tags)))

    assert outcome["action"] == "not-ready"
    assert outcome["failed_rules"] == ["tags"]
    assert words in local_aws.tags_of(instance_id)[REASON]
    assert local_aws.queue.events_for(instance_id) == []


def test_our_own_status_tags_do_not_trigger_intake(local_aws: LocalAws, intake: ModuleType, open_group: str) -> None:
    instance_id = local_aws.launch(AMI_UBUNTU, groups=[open_group])
    request(local_aws, intake, instance_id)

    outcome = local_aws.invoke(intake, local_aws.tag_change(instance_id, [STATUS, REASON]))

    assert outcome["action"] == "ignored"
    assert len(local_aws.queue.events_for(instance_id)) == 1
