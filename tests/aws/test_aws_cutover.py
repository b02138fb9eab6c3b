"""Cutover, through its Lambda handler, with the payload intake's schedule carries."""

from __future__ import annotations

import json
from types import ModuleType
from typing import Any

import pytest

from migration.events import FailoverRequested, MigrationRequested
from migration.tags import CUTOVER_AT, MIGRATE, REASON, STATUS
from tests.aws.aws_test_support import AMI_UBUNTU, LocalAws

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


def test_the_schedule_payload_stops_the_source_then_requests_failover(
    local_aws: LocalAws, intake: ModuleType, cutover: ModuleType, open_group: str
) -> None:
    instance_id, payload = requested_with_schedule(local_aws, intake, group=open_group)

    outcome = local_aws.invoke(cutover, payload)

    assert outcome["action"] == "failover-requested", outcome
    assert local_aws.state_of(instance_id) == "stopped"
    events = local_aws.queue.events_for(instance_id)
    assert [type(e) for e in events] == [MigrationRequested, FailoverRequested]
    failover = events[1]
    assert isinstance(failover, FailoverRequested)
    assert failover.id == outcome["event_id"]
    assert failover.data.source_stopped is True
    assert failover.data.requested_by == "schedule"
    tags = local_aws.tags_of(instance_id)
    assert tags[STATUS] == "AwaitingCutover"  # the phase stays Azure's to report
    assert "source stopped" in tags[REASON]


def test_an_operator_can_run_cutover_by_hand_on_an_already_stopped_source(
    local_aws: LocalAws, intake: ModuleType, cutover: ModuleType, open_group: str
) -> None:
    instance_id, payload = requested_with_schedule(local_aws, intake, group=open_group)
    local_aws.ec2.stop_instances(InstanceIds=[instance_id])

    outcome = local_aws.invoke(cutover, {**payload, "requested_by": "operator", "request_id": "ops-ticket-42"})

    assert outcome["action"] == "failover-requested"
    failover = local_aws.queue.events_for(instance_id)[-1]
    assert isinstance(failover, FailoverRequested)
    assert failover.data.requested_by == "operator"


def test_a_source_that_will_not_stop_is_reported_not_failed_over(
    local_aws: LocalAws, intake: ModuleType, cutover: ModuleType, open_group: str
) -> None:
    instance_id, payload = requested_with_schedule(local_aws, intake, disable_api_stop=True, group=open_group)

    outcome = local_aws.invoke(cutover, payload)

    assert outcome["action"] == "source-not-stopped"
    assert local_aws.state_of(instance_id) == "running"
    assert [type(e) for e in local_aws.queue.events_for(instance_id)] == [MigrationRequested]
    reason = local_aws.tags_of(instance_id)[REASON]
    assert "did not stop" in reason
    assert "OperationNotPermitted" in reason
    assert "failover NOT requested" in reason


def test_a_cancelled_migration_is_not_cut_over(
    local_aws: LocalAws, intake: ModuleType, cutover: ModuleType, open_group: str
) -> None:
    instance_id, payload = requested_with_schedule(local_aws, intake, group=open_group)
    local_aws.ec2.delete_tags(Resources=[instance_id], Tags=[{"Key": MIGRATE}])

    outcome = local_aws.invoke(cutover, payload)

    assert outcome["action"] == "ignored"
    assert local_aws.state_of(instance_id) == "running"
    assert [type(e) for e in local_aws.queue.events_for(instance_id)] == [MigrationRequested]


def test_a_vanished_instance_is_reported(local_aws: LocalAws, cutover: ModuleType) -> None:
    payload = {
        "instance": {
            "account_id": local_aws.side.account_id,
            "region": local_aws.side.region,
            "instance_id": "i-0fedcba9876543210",
        },
        "request_id": "r-1",
    }

    outcome = local_aws.invoke(cutover, payload)

    assert outcome["action"] == "ignored"
    assert "no longer exists" in outcome["reason"]


@pytest.mark.parametrize(
    "payload",
    [{}, {"instance": {"instance_id": "i-1"}, "request_id": "r"}, [], "cut over now please"],
    ids=["empty", "bad-instance", "list", "str"],
)
def test_a_malformed_payload_is_rejected_with_a_reason(local_aws: LocalAws, cutover: ModuleType, payload: Any) -> None:
    outcome = local_aws.invoke(cutover, payload)

    assert outcome["action"] == "rejected"
    assert outcome["reason"].startswith("not a valid cutover request")
