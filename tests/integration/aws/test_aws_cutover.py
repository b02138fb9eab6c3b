"""Cutover, through its Lambda handler: the schedule's payload stops the source and returns; the EC2
state-change event fails it over; the follow-up reports a source that did not stop."""

from __future__ import annotations

import copy
import json
import uuid
from types import ModuleType
from typing import Any

import pytest
from botocore.stub import Stubber

from aws_lambda.adapters.ec2 import Ec2Gateway
from migration.events import FailoverRequested
from migration.tags import CUTOVER_AT, CUTOVER_STOP, MIGRATE, REASON, STATUS
from tests.integration.aws.aws_test_support import AMI_UBUNTU, REFERENCE, LocalAws, reference_event

STATE_SAMPLE = REFERENCE / "event-instance-state.json"

pytestmark = pytest.mark.integration

OPEN = [
    {"IpProtocol": "tcp", "FromPort": 443, "ToPort": 9443, "IpRanges": [{"CidrIp": "10.0.200.0/28"}]},
]


@pytest.fixture(scope="module")
def intake(local_aws: LocalAws) -> ModuleType:
    return local_aws.handler("intake")


@pytest.fixture(scope="module")
def cutover(local_aws: LocalAws) -> ModuleType:
    return local_aws.handler("cutover")


@pytest.fixture(scope="module")
def open_group(local_aws: LocalAws) -> str:
    return local_aws.workload_group("cutover-workload", ingress=OPEN)


def requested_with_schedule(
    aws: LocalAws, intake: ModuleType, *, disable_api_stop: bool = False, group: str
) -> tuple[str, dict[str, Any]]:
    """An instance intake accepted, and the payload its cutover schedule will invoke cutover with."""
    instance_id = aws.launch(AMI_UBUNTU, groups=[group], disable_api_stop=disable_api_stop)
    aws.set_tags(instance_id, {MIGRATE: "true", CUTOVER_AT: "2099-06-01T01:00:00Z"})
    outcome = aws.invoke(intake, aws.tag_change(instance_id, [MIGRATE, CUTOVER_AT]))
    assert outcome["action"] == "requested", outcome
    schedule = aws.scheduler().get_schedule(Name=outcome["cutover_schedule"], GroupName="aws2azure")
    aws.set_tags(instance_id, {STATUS: "AwaitingCutover"})  # what status sync reports by then
    payload: dict[str, Any] = json.loads(schedule["Target"]["Input"])
    return instance_id, payload


def state_change(aws: LocalAws, instance_id: str, state: str = "stopped") -> dict[str, Any]:
    """The real EventBridge sample, re-aimed at one of our instances."""
    event = copy.deepcopy(reference_event(STATE_SAMPLE))
    event.update(id=str(uuid.uuid4()), account=aws.side.account_id, region=aws.side.region)
    event["resources"] = [f"arn:aws:ec2:{aws.side.region}:{aws.side.account_id}:instance/{instance_id}"]
    event["detail"] = {"instance-id": instance_id, "state": state}
    return event


def failovers(aws: LocalAws, instance_id: str) -> list[FailoverRequested]:
    return [e for e in aws.queue.events_for(instance_id) if isinstance(e, FailoverRequested)]


def test_the_cutover_lambda_stops_the_source_and_returns_without_waiting(
    local_aws: LocalAws, intake: ModuleType, cutover: ModuleType, open_group: str
) -> None:
    instance_id, payload = requested_with_schedule(local_aws, intake, group=open_group)

    outcome = local_aws.invoke(cutover, payload)

    assert outcome["action"] == "stop-requested"
    assert local_aws.state_of(instance_id) in ("stopping", "stopped")
    assert failovers(local_aws, instance_id) == []  # not before EC2 says it stopped
    assert local_aws.tags_of(instance_id)[CUTOVER_STOP].startswith("stopping:")
    names = [s["Name"] for s in local_aws.scheduler().list_schedules(GroupName="aws2azure")["Schedules"]]
    assert any(n.startswith("aws2azure-stop-check-") for n in names)


def test_the_state_change_event_sends_failover_requested_once(
    local_aws: LocalAws, intake: ModuleType, cutover: ModuleType, open_group: str
) -> None:
    instance_id, payload = requested_with_schedule(local_aws, intake, group=open_group)
    local_aws.invoke(cutover, payload)

    first = local_aws.invoke(cutover, state_change(local_aws, instance_id))
    again = local_aws.invoke(cutover, state_change(local_aws, instance_id))

    assert first["action"] == "failover-requested"
    assert again["action"] == "ignored"
    [event] = failovers(local_aws, instance_id)
    assert event.data.source_stopped is True
    assert event.data.requested_by == "schedule"
    assert local_aws.tags_of(instance_id)[CUTOVER_STOP].startswith("sent:")


def test_a_source_stopped_by_someone_else_is_never_failed_over(
    local_aws: LocalAws, intake: ModuleType, cutover: ModuleType, open_group: str
) -> None:
    instance_id, _ = requested_with_schedule(local_aws, intake, group=open_group)
    local_aws.ec2.stop_instances(InstanceIds=[instance_id])

    outcome = local_aws.invoke(cutover, state_change(local_aws, instance_id))

    assert outcome["action"] == "ignored"
    assert failovers(local_aws, instance_id) == []


def test_the_follow_up_reports_a_source_that_did_not_stop(
    local_aws: LocalAws, intake: ModuleType, cutover: ModuleType, open_group: str
) -> None:
    instance_id, payload = requested_with_schedule(local_aws, intake, group=open_group)
    local_aws.invoke(cutover, payload)
    local_aws.ec2.start_instances(InstanceIds=[instance_id])  # as if the stop never completed
    [check] = [
        s for s in local_aws.scheduler().list_schedules(GroupName="aws2azure")["Schedules"]
        if s["Name"].startswith("aws2azure-stop-check-")
        and instance_id in local_aws.scheduler().get_schedule(Name=s["Name"], GroupName="aws2azure")["Target"]["Input"]
    ]  # fmt: skip
    follow_up = json.loads(
        local_aws.scheduler().get_schedule(Name=check["Name"], GroupName="aws2azure")["Target"]["Input"]
    )

    outcome = local_aws.invoke(cutover, follow_up)

    assert [o["action"] for o in outcome["outcomes"]] == ["source-not-stopped"]
    tags = local_aws.tags_of(instance_id)
    assert "the source did not stop (still running" in tags[REASON]
    assert "failover NOT requested" in tags[REASON]
    assert tags[CUTOVER_STOP].startswith("not-stopped:")
    assert failovers(local_aws, instance_id) == []


def test_a_protected_source_is_reported_not_failed_over(
    local_aws: LocalAws, intake: ModuleType, cutover: ModuleType, open_group: str
) -> None:
    instance_id, payload = requested_with_schedule(local_aws, intake, group=open_group, disable_api_stop=True)

    outcome = local_aws.invoke(cutover, payload)

    assert outcome["action"] == "source-not-stopped"
    assert "EC2 refused to stop it" in local_aws.tags_of(instance_id)[REASON]
    assert local_aws.state_of(instance_id) == "running"


def test_a_cancelled_migration_is_not_stopped(
    local_aws: LocalAws, intake: ModuleType, cutover: ModuleType, open_group: str
) -> None:
    instance_id, payload = requested_with_schedule(local_aws, intake, group=open_group)
    local_aws.set_tags(instance_id, {MIGRATE: "false"})

    assert local_aws.invoke(cutover, payload)["action"] == "ignored"
    assert local_aws.state_of(instance_id) == "running"


def test_a_stop_refused_by_iam_is_a_refusal_not_an_exception(local_aws: LocalAws) -> None:
    client = local_aws.session.client("ec2", endpoint_url=local_aws.side.aws_environment["AWS_ENDPOINT_URL"])
    with Stubber(client) as stub:
        for _ in range(3):  # the batch, then each instance alone to find the refused one
            stub.add_client_error(
                "stop_instances", service_error_code="UnauthorizedOperation", http_status_code=403,
                service_message="You are not authorized to perform this operation.",
            )  # fmt: skip
        refused = Ec2Gateway(client).stop_many(["i-0123456789abcdef0", "i-0123456789abcdef1"])

    assert sorted(refused) == ["i-0123456789abcdef0", "i-0123456789abcdef1"]
    assert {getattr(e, "code", "") for e in refused.values()} == {"UnauthorizedOperation"}
