"""The local stand-in for Lambda's asynchronous Invoke answers real boto3 (and so LambdaIntakeInvoker) as the
service does: an Event invocation by name or ARN is accepted (202, empty body) and queued with its payload; an
unknown function is refused with ResourceNotFoundException (404)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import TYPE_CHECKING

import boto3
import pytest
from botocore.exceptions import ClientError

from aws_lambda.adapters.lambda_invoke import LambdaIntakeInvoker
from aws_lambda.logic.status_sync import CUTOVER_BATCH
from aws_lambda.models.cutover import CutoverRequest
from devstack.lambda_invoke import LambdaInvokeStandIn
from migration.errors import NotFound
from migration.identity import InstanceRef

if TYPE_CHECKING:
    from mypy_boto3_lambda import LambdaClient

pytestmark = pytest.mark.integration
REGION, ACCOUNT = "eu-west-1", "123456789012"
CUTOVER_ARN = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:aws2azure-cutover"


@pytest.fixture
def standin(monkeypatch: pytest.MonkeyPatch) -> Iterator[LambdaInvokeStandIn]:
    with LambdaInvokeStandIn(["aws2azure-cutover", "aws2azure-intake"], region=REGION, account_id=ACCOUNT) as s:
        # As the demo points the Lambdas' clients: only Lambda's endpoint, through botocore's service variable.
        monkeypatch.setenv("AWS_ENDPOINT_URL_LAMBDA", s.url)
        monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:1")  # moto's place: must not be used for Lambda
        yield s


def _client() -> LambdaClient:
    session = boto3.session.Session(aws_access_key_id="testing", aws_secret_access_key="testing", region_name=REGION)
    return session.client("lambda")


def test_an_event_invocation_by_arn_is_accepted_and_queued_with_its_payload(standin: LambdaInvokeStandIn) -> None:
    client = _client()
    event = {"cutovers": [{"instance": {"instance_id": "i-0abc"}, "request_id": "wave-wave-b-x"}]}
    answer = client.invoke(FunctionName=CUTOVER_ARN, InvocationType="Event", Payload=json.dumps(event).encode())
    assert answer["StatusCode"] == 202
    assert answer["Payload"].read() == b""
    client.invoke(FunctionName="aws2azure-intake", InvocationType="Event", Payload=b"{}")
    queued = standin.drain()
    assert [(i.function_name, i.event()) for i in queued] == [("aws2azure-cutover", event), ("aws2azure-intake", {})]
    assert standin.drain() == []
    assert standin.accepted == 2


def test_the_product_invoker_reaches_it_unchanged(standin: LambdaInvokeStandIn) -> None:
    LambdaIntakeInvoker(_client(), CUTOVER_ARN).invoke({"cutovers": []})
    assert [i.event() for i in standin.drain()] == [{"cutovers": []}]


def test_an_unknown_function_is_refused_as_lambda_does(standin: LambdaInvokeStandIn) -> None:
    client = _client()
    for name in ("aws2azure-nope", f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:aws2azure-nope"):
        with pytest.raises(ClientError) as refused:
            client.invoke(FunctionName=name, InvocationType="Event", Payload=b"{}")
        assert refused.value.response["Error"]["Code"] == "ResourceNotFoundException"
        assert refused.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404
        assert "Function not found" in refused.value.response["Error"]["Message"]
    with pytest.raises(NotFound):
        LambdaIntakeInvoker(client, "aws2azure-nope").invoke({})
    assert standin.drain() == []


def test_a_dry_run_and_a_bad_payload_queue_nothing(standin: LambdaInvokeStandIn) -> None:
    client = _client()
    assert client.invoke(FunctionName=CUTOVER_ARN, InvocationType="DryRun")["StatusCode"] == 204
    with pytest.raises(ClientError) as refused:
        client.invoke(FunctionName=CUTOVER_ARN, InvocationType="Event", Payload=b"not json")
    assert refused.value.response["Error"]["Code"] == "InvalidRequestContentException"
    assert standin.drain() == []


def test_the_largest_batch_status_sync_sends_fits_an_async_invoke_and_more_than_1_mb_is_refused(
    standin: LambdaInvokeStandIn,
) -> None:
    wave = "w" * 64  # the longest wave name the tags allow
    request = CutoverRequest(instance=InstanceRef(account_id=ACCOUNT, region="ap-southeast-2",
                                                  instance_id="i-0123456789abcdef0"),
                             request_id=f"wave-{wave}-20261202T151254Z", requested_by="operator")  # fmt: skip
    largest = {"cutovers": [request.model_dump(mode="json")] * CUTOVER_BATCH}
    LambdaIntakeInvoker(_client(), CUTOVER_ARN).invoke(largest)
    assert [len(i.event()["cutovers"]) for i in standin.drain()] == [CUTOVER_BATCH]
    with pytest.raises(ClientError) as refused:
        _client().invoke(FunctionName=CUTOVER_ARN, InvocationType="Event", Payload=b'"' + b"x" * (1 << 20) + b'"')
    assert refused.value.response["Error"]["Code"] == "RequestTooLargeException"
    assert refused.value.response["ResponseMetadata"]["HTTPStatusCode"] == 413
    assert standin.drain() == []
