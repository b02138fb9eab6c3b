"""The Lambda bundle, built as docs/DEPLOY.md builds it, run from a clean venv of its own requirements only.

Python 3.12 (the template's runtime), the bundle and that venv on the path, the repository not: a Tag Change
event goes through the packaged intake handler (readiness, status tags in moto, MigrationRequested on the
Azure queue, the cutover schedule), and the schedule's own input through the packaged cutover handler stops
the source. tests/integration/package shows each handler imports; this runs two of them on the local stack.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from azure.storage.queue import QueueClient

from devstack.aws_local import QUEUE_NAME, SCHEDULER_GROUP, provision
from devstack.launcher import Stack
from devstack.settings import StackSettings
from infra.tools.package import LAMBDA_PYTHON, build_lambda, clean_venv, find_python, run_isolated
from migration.tags import CUTOVER_AT, MIGRATE, STATUS
from tests.integration.aws.aws_test_support import AMI_UBUNTU

pytestmark = [pytest.mark.integration, pytest.mark.e2e]
VENVS = Path(__file__).resolve().parents[2] / "build" / "venvs"

# What Lambda does: import the handler, call it with the event and a context; the answer as JSON.
INVOKE = """
import importlib, json, sys
class Context:
    function_name = sys.argv[2]
    memory_limit_in_mb = 512
    invoked_function_arn = "arn:aws:lambda:eu-west-1:123456789012:function:" + sys.argv[2]
    aws_request_id = "req-packaged"
    def get_remaining_time_in_millis(self):
        return 60_000
module = importlib.import_module(sys.argv[1])
event = json.loads(sys.stdin.read())
print(json.dumps(module.lambda_handler(event, Context()), default=str))
"""


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StackSettings]:
    running = Stack(tmp_path_factory.mktemp("packaged-lambdas"))
    try:
        yield running.up(["azurite", "moto"], quiet=True)
    finally:
        running.down(quiet=True)


def _invoke(venv: Path, bundle: Path, env: dict[str, str], handler: str, event: dict[str, Any]) -> dict[str, Any]:
    code = f"import sys; sys.argv = ['lambda', {handler!r}, 'aws2azure-packaged']; sys.stdin = __import__('io')." \
           f"StringIO({json.dumps(json.dumps(event))})\n" + INVOKE  # fmt: skip
    completed = run_isolated(venv, bundle, code, env)
    assert completed.returncode == 0, completed.stderr[-3000:]
    answer: dict[str, Any] = json.loads(completed.stdout.strip().splitlines()[-1])
    return answer


def test_the_packaged_lambdas_take_a_tag_event_to_a_stopped_source(stack: StackSettings, tmp_path: Path) -> None:
    assert stack.moto is not None
    assert stack.azurite is not None
    bundle = build_lambda(tmp_path / "build")
    venv = clean_venv(bundle / "requirements.txt", find_python(LAMBDA_PYTHON), VENVS)
    side = provision(stack, status_api_key="local-status-key")
    env = {key: value for key, value in side.lambda_environment().items() if not key.startswith("AWS2AZURE_CLOCK")}
    env |= {"AGENT_INSTALL": "manual", "AWS_DEFAULT_REGION": side.region}
    session = boto3.session.Session(aws_access_key_id="testing", aws_secret_access_key="testing",
                                    region_name=side.region)  # fmt: skip
    ec2 = session.client("ec2", endpoint_url=stack.moto.url)
    raw = ec2.run_instances(ImageId=AMI_UBUNTU, MinCount=1, MaxCount=1, InstanceType="m5.large")["Instances"][0]
    instance_id = raw["InstanceId"]
    tags = {MIGRATE: "true", CUTOVER_AT: "2026-12-24T22:00:00Z"}
    ec2.create_tags(Resources=[instance_id], Tags=[{"Key": k, "Value": v} for k, v in tags.items()])
    event = {
        "version": "0", "id": f"packaged-{instance_id}", "detail-type": "Tag Change on Resource", "source": "aws.tag",
        "account": side.account_id, "time": "2026-12-01T22:00:00Z", "region": side.region,
        "resources": [f"arn:aws:ec2:{side.region}:{side.account_id}:instance/{instance_id}"],
        "detail": {"changed-tag-keys": sorted(tags), "service": "ec2", "resource-type": "instance", "tags": tags},
    }  # fmt: skip

    answer = _invoke(venv, bundle, env, "aws_lambda.handlers.intake", event)

    assert answer["action"] == "requested", answer
    queue = QueueClient.from_connection_string(stack.azurite.connection_string, QUEUE_NAME)
    [message] = list(queue.receive_messages())
    sent = json.loads(base64.b64decode(message.content))
    assert (sent["type"], sent["subject"]) == ("io.aws2azure.migration.MigrationRequested.v1", instance_id)
    status = {t["Key"]: t["Value"] for t in ec2.describe_tags(
        Filters=[{"Name": "resource-id", "Values": [instance_id]}])["Tags"]}  # fmt: skip
    assert status[STATUS] == "Requested"

    scheduler = session.client("scheduler", endpoint_url=stack.moto.url)
    [summary] = scheduler.list_schedules(GroupName=SCHEDULER_GROUP)["Schedules"]
    schedule = scheduler.get_schedule(Name=summary["Name"], GroupName=SCHEDULER_GROUP)
    cutover = _invoke(venv, bundle, env, "aws_lambda.handlers.cutover", json.loads(schedule["Target"]["Input"]))

    assert cutover, cutover
    state = ec2.describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"][0]["State"]["Name"]
    assert state in ("stopping", "stopped")
