"""The adapters on their own: EC2 pacing and the bounded stop wait (botocore's Stubber on the injected
client), the secret cache and the queue publisher against moto's server and Azurite."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import boto3
import pytest
from botocore.stub import Stubber

from aws_lambda.adapters.azure_queue import AzureQueuePublisher
from aws_lambda.adapters.ec2 import Ec2Gateway
from aws_lambda.adapters.secrets import CachedSecret
from devstack.aws_local import queue_sas
from devstack.launcher import pick_port
from migration.errors import NotFound, PermanentCloudError, PreconditionFailed, TransientCloudError
from migration.events import CancelRequested, CancelRequestedData
from migration.identity import InstanceRef
from tests.integration.aws.aws_test_support import AMI_UBUNTU, LocalAws

if TYPE_CHECKING:
    from mypy_boto3_ec2 import EC2Client
    from mypy_boto3_secretsmanager import SecretsManagerClient

INSTANCE = InstanceRef(account_id="123456789012", region="eu-west-1", instance_id="i-0123456789abcdef0")


class FakeTime:
    """Monotonic time that moves only when slept on: the wait loop runs without real waiting."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


@pytest.fixture
def stubbed_ec2() -> Iterator[tuple[EC2Client, Stubber]]:
    client = boto3.client("ec2", region_name="eu-west-1", aws_access_key_id="x", aws_secret_access_key="x")
    with Stubber(client) as stubber:
        yield client, stubber
        stubber.assert_no_pending_responses()


def state(name: str) -> dict[str, object]:
    return {"Reservations": [{"Instances": [{"InstanceId": INSTANCE.instance_id, "State": {"Name": name}}]}]}


def test_the_stop_wait_gives_up_at_its_bound_and_says_where_it_stood(
    stubbed_ec2: tuple[EC2Client, Stubber],
) -> None:
    client, stubber = stubbed_ec2
    clock = FakeTime()
    for _ in range(4):
        stubber.add_response("describe_instances", state("stopping"), {"InstanceIds": [INSTANCE.instance_id]})
    gateway = Ec2Gateway(client, sleep=clock.sleep, monotonic=clock.monotonic)

    last = gateway.wait_until_stopped(INSTANCE.instance_id, timeout_seconds=30, poll_seconds=10)

    assert last == "stopping"
    assert clock.slept == [10, 10, 10]


def test_the_stop_wait_returns_as_soon_as_the_source_is_stopped(stubbed_ec2: tuple[EC2Client, Stubber]) -> None:
    client, stubber = stubbed_ec2
    clock = FakeTime()
    stubber.add_response("describe_instances", state("stopping"))
    stubber.add_response("describe_instances", state("stopped"))
    gateway = Ec2Gateway(client, sleep=clock.sleep, monotonic=clock.monotonic)

    assert gateway.wait_until_stopped(INSTANCE.instance_id, timeout_seconds=300, poll_seconds=5) == "stopped"
    assert clock.slept == [5]


def test_a_refused_stop_is_a_precondition_failure(stubbed_ec2: tuple[EC2Client, Stubber]) -> None:
    client, stubber = stubbed_ec2
    stubber.add_client_error("stop_instances", service_error_code="OperationNotPermitted", http_status_code=400)

    with pytest.raises(PreconditionFailed) as raised:
        Ec2Gateway(client).stop(INSTANCE.instance_id)
    assert raised.value.code == "OperationNotPermitted"


def test_tags_are_batched_by_value_and_paced(stubbed_ec2: tuple[EC2Client, Stubber]) -> None:
    client, stubber = stubbed_ec2
    clock = FakeTime()
    same = {"aws2azure:status": "Replicating", "aws2azure:progress": "50"}
    stubber.add_response(
        "create_tags",
        {},
        {"Resources": ["i-00000001", "i-00000002"], "Tags": [{"Key": k, "Value": v} for k, v in sorted(same.items())]},
    )
    stubber.add_response(
        "create_tags", {}, {"Resources": ["i-00000003"], "Tags": [{"Key": "aws2azure:status", "Value": "Failed"}]}
    )
    gateway = Ec2Gateway(client, tag_calls_per_second=4, sleep=clock.sleep, monotonic=clock.monotonic)

    gateway.write_tags({"i-00000001": same, "i-00000002": same, "i-00000003": {"aws2azure:status": "Failed"}})

    assert clock.slept == [0.25]


def test_throttling_is_transient(stubbed_ec2: tuple[EC2Client, Stubber]) -> None:
    client, stubber = stubbed_ec2
    stubber.add_client_error("describe_instances", service_error_code="RequestLimitExceeded", http_status_code=503)

    with pytest.raises(TransientCloudError):
        Ec2Gateway(client).describe(INSTANCE)


# Against moto's server and Azurite


@pytest.fixture(scope="module")
def secrets(local_aws: LocalAws) -> SecretsManagerClient:
    return local_aws.session.client("secretsmanager", endpoint_url=local_aws.side.aws_environment["AWS_ENDPOINT_URL"])


@pytest.mark.integration
def test_a_secret_is_read_again_only_after_its_ttl(secrets: SecretsManagerClient) -> None:
    arn = secrets.create_secret(Name="ttl-test", SecretString="one")["ARN"]
    clock = FakeTime()
    cached = CachedSecret(secrets, arn, ttl_seconds=300, monotonic=clock.monotonic)
    assert cached.get() == "one"
    secrets.put_secret_value(SecretId=arn, SecretString="two")

    assert cached.get() == "one"
    clock.now += 299
    assert cached.get() == "one"
    clock.now += 1
    assert cached.get() == "two"


@pytest.mark.integration
def test_a_missing_secret_is_not_found(secrets: SecretsManagerClient) -> None:
    with pytest.raises(NotFound):
        CachedSecret(secrets, "no-such-secret", ttl_seconds=60).get()


def cancel_event() -> CancelRequested:
    return CancelRequested(
        specversion="1.0",
        id="c-1",
        source="aws2azure/test",
        time="2026-11-26T00:00:00Z",
        subject=INSTANCE.instance_id,
        data=CancelRequestedData(instance=INSTANCE, requested_by="operator"),
    )


@pytest.mark.integration
def test_a_rotated_sas_is_read_again_when_the_queue_refuses_the_cached_one(
    local_aws: LocalAws, secrets: SecretsManagerClient
) -> None:
    arn = secrets.create_secret(Name="sas-rotation", SecretString="sv=2020-02-10&sig=revoked")["ARN"]
    publisher = AzureQueuePublisher(local_aws.side.queue_url, CachedSecret(secrets, arn, ttl_seconds=3600))
    with pytest.raises(PermanentCloudError):
        publisher.publish(cancel_event())  # refused, re-read, refused again: an operator must act

    secrets.put_secret_value(SecretId=arn, SecretString=queue_sas())
    publisher.publish(cancel_event())

    assert [e.id for e in local_aws.queue.events_for(INSTANCE.instance_id)] == ["c-1"]


@pytest.mark.integration
def test_azure_down_is_transient(secrets: SecretsManagerClient) -> None:
    arn = secrets.create_secret(Name="sas-down", SecretString=queue_sas())["ARN"]
    nobody = f"http://127.0.0.1:{pick_port(47000)}/devstoreaccount1/migration-requests"
    publisher = AzureQueuePublisher(nobody, CachedSecret(secrets, arn, ttl_seconds=60), retry_total=0)

    with pytest.raises(TransientCloudError):
        publisher.publish(cancel_event())


@pytest.mark.integration
def test_an_instance_in_another_region_is_not_found_here(local_aws: LocalAws) -> None:
    group = local_aws.workload_group("region", ingress=[])
    instance_id = local_aws.launch(AMI_UBUNTU, groups=[group])
    elsewhere = InstanceRef(account_id=local_aws.side.account_id, region="us-east-1", instance_id=instance_id)

    with pytest.raises(NotFound):
        Ec2Gateway(local_aws.ec2).describe(elsewhere)
