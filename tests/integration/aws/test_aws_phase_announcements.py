"""Intake announces its own phase changes on SNS: moto's server, a topic with an SQS queue subscribed, the
intake handler with PHASE_TOPIC_ARN set; each message read back from the queue is one CloudEvent."""

from __future__ import annotations

import json
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import pytest

from aws_lambda.models.phase_events import INSTANCE_PHASE_CHANGED, InstancePhaseChanged, phase_event_id
from migration.identity import InstanceRef
from migration.lifecycle import Phase
from migration.tags import MIGRATE, STATUS, WAVE
from tests.integration.aws.aws_test_support import AMI_UBUNTU, LocalAws

pytestmark = pytest.mark.integration

BOTH_PORTS = [
    {"IpProtocol": "tcp", "FromPort": 443, "ToPort": 443, "IpRanges": [{"CidrIp": "10.0.0.0/16"}]},
    {"IpProtocol": "tcp", "FromPort": 9443, "ToPort": 9443, "IpRanges": [{"CidrIp": "10.0.200.0/28"}]},
]
TOPIC = "aws2azure-phases"


@dataclass
class Subscriber:
    """An SQS queue subscribed to a topic (the SNS envelope, not raw delivery: its MessageAttributes show)."""

    sqs: Any
    queue_url: str

    def messages(self) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        while True:
            batch = self.sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1)
            if not batch.get("Messages"):
                return found
            for message in batch["Messages"]:
                found.append(json.loads(message["Body"]))
                self.sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"])


@pytest.fixture(scope="module")
def sns(local_aws: LocalAws) -> Any:
    return local_aws.session.client("sns", endpoint_url=local_aws.side.aws_environment["AWS_ENDPOINT_URL"])


def subscribe(local_aws: LocalAws, sns: Any, topic_arn: str, name: str) -> Subscriber:
    sqs = local_aws.session.client("sqs", endpoint_url=local_aws.side.aws_environment["AWS_ENDPOINT_URL"])
    queue_url = sqs.create_queue(QueueName=name)["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=queue_arn)
    return Subscriber(sqs, queue_url)


@pytest.fixture(scope="module")
def topic_arn(local_aws: LocalAws) -> str:
    # The ARN is fixed by name, account and region: the topic itself is created by the tests that need it.
    return f"arn:aws:sns:{local_aws.side.region}:{local_aws.side.account_id}:{TOPIC}"


@pytest.fixture(scope="module")
def intake(local_aws: LocalAws, topic_arn: str) -> ModuleType:
    return local_aws.handler("intake", PHASE_TOPIC_ARN=topic_arn)


@pytest.fixture(scope="module")
def subscriber(local_aws: LocalAws, sns: Any, topic_arn: str, intake: ModuleType) -> Subscriber:
    return subscribe(local_aws, sns, sns.create_topic(Name=TOPIC)["TopicArn"], "phases-subscriber")


def stopped(local_aws: LocalAws, tags: dict[str, str]) -> str:
    """An instance intake refuses (readiness rule running): NotReady."""
    instance_id = local_aws.launch(AMI_UBUNTU, groups=[], tags=tags)
    local_aws.ec2.stop_instances(InstanceIds=[instance_id])
    return instance_id


def ref(local_aws: LocalAws, instance_id: str) -> InstanceRef:
    return InstanceRef(account_id=local_aws.side.account_id, region=local_aws.side.region, instance_id=instance_id)


def cloud_event(envelope: dict[str, Any]) -> InstancePhaseChanged:
    return InstancePhaseChanged.model_validate_json(envelope["Message"])


def attributes(envelope: dict[str, Any]) -> dict[str, str]:
    return {name: value["Value"] for name, value in envelope.get("MessageAttributes", {}).items()}


def test_a_refused_announcement_fails_the_invocation_and_the_retry_sends_the_same_id(
    local_aws: LocalAws, intake: ModuleType, sns: Any, topic_arn: str
) -> None:
    """Before the topic exists SNS answers NotFound: the invocation fails with no tag written (Lambda would
    retry it); the same event delivered again once the topic exists announces the id the first attempt had."""
    instance_id = stopped(local_aws, {MIGRATE: "true"})
    change = local_aws.tag_change(instance_id, [MIGRATE], event_id="retry-1")

    with pytest.raises(Exception, match=r"NotFound|does not exist"):
        local_aws.invoke(intake, change)
    assert STATUS not in local_aws.tags_of(instance_id)

    subscriber = subscribe(local_aws, sns, sns.create_topic(Name=TOPIC)["TopicArn"], "phases-retry")
    outcome = local_aws.invoke(intake, change)

    assert outcome["action"] == "not-ready", outcome
    [envelope] = [m for m in subscriber.messages() if cloud_event(m).subject == instance_id]
    assert cloud_event(envelope).id == phase_event_id(ref(local_aws, instance_id), Phase.NOT_READY, "retry-1")
    # Delivered again after it succeeded: the idempotency record answers, nothing is announced twice.
    assert local_aws.invoke(intake, change)["action"] == "not-ready"
    assert [m for m in subscriber.messages() if cloud_event(m).subject == instance_id] == []


def test_not_ready_and_requested_instances_each_announce_one_cloud_event(
    local_aws: LocalAws, intake: ModuleType, subscriber: Subscriber
) -> None:
    refused = stopped(local_aws, {MIGRATE: "true", WAVE: "wave-n"})
    ready = local_aws.launch(AMI_UBUNTU, groups=[local_aws.workload_group("phases", ingress=BOTH_PORTS)],
                             tags={MIGRATE: "true", WAVE: "wave-r"})  # fmt: skip
    subscriber.messages()  # anything the earlier test left

    not_ready = local_aws.invoke(intake, local_aws.tag_change(refused, [MIGRATE], event_id="nr-1"))
    requested = local_aws.invoke(intake, local_aws.tag_change(ready, [MIGRATE], event_id="rq-1"))

    assert (not_ready["action"], requested["action"]) == ("not-ready", "requested")
    by_instance = {cloud_event(m).subject: m for m in subscriber.messages()}
    assert set(by_instance) == {refused, ready}
    for instance_id, phase, wave, key in ((refused, Phase.NOT_READY, "wave-n", "nr-1"),
                                          (ready, Phase.REQUESTED, "wave-r", "rq-1")):  # fmt: skip
        envelope = by_instance[instance_id]
        event = cloud_event(envelope)
        assert event.type == INSTANCE_PHASE_CHANGED
        assert event.id == phase_event_id(ref(local_aws, instance_id), phase, key)
        assert (event.data.phase, event.data.previous_phase, event.data.wave) == (phase, None, wave)
        assert event.source == f"aws2azure/aws/{local_aws.side.account_id}/{local_aws.side.region}"
        assert attributes(envelope) == {"type": INSTANCE_PHASE_CHANGED, "phase": phase.value, "wave": wave}
        assert local_aws.tags_of(instance_id)[STATUS] == phase.value
