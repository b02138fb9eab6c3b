"""Issue 15, end to end: the Mobility install succeeds but the appliance never discovers the machine (the SSM
stand-in's never-discovered fault), so the Azure side waits with back-off until its discovery bound and fails the
migration with a reason that says so; the AWS side reports it on the instance's tags.

Slow in virtual time only: the bound (DISCOVERY_TIMEOUT_SECONDS, an hour by default) passes as the local host jumps
the shared clock to each durable timer. The wait below follows the record's progress, with a generous real deadline.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import sys
import time
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import boto3
import pytest

from aws2azure.api_client import ApiError, ApiTarget, MigrationApi
from devstack.asr_sim.control import SimulatorControl
from devstack.aws_local import LocalLambdaContext, provision
from devstack.clock import clock_environment
from devstack.launcher import Stack
from devstack.settings import StackSettings
from devstack.ssm_sim.contract import FaultPlan, ManagedNode
from devstack.ssm_sim.control import SsmSimControl
from migration.tags import MIGRATE, REASON, STATUS
from tests.integration.aws.aws_test_support import AMI_UBUNTU

pytestmark = [pytest.mark.integration, pytest.mark.e2e]
SYNC_EVENT = {"source": "aws.events", "detail-type": "Scheduled Event"}


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StackSettings]:
    running = Stack(tmp_path_factory.mktemp("never-discovered"))
    try:
        yield running.up(quiet=True)
    finally:
        running.down(quiet=True)


def _handler(name: str) -> ModuleType:
    importlib.reload(importlib.import_module("aws_lambda.observability"))
    module_name = f"aws_lambda.handlers.{name}"
    if module_name in sys.modules:
        return importlib.reload(sys.modules[module_name])
    return importlib.import_module(module_name)


def _invoke(module: ModuleType, event: dict[str, Any]) -> dict[str, Any]:
    with contextlib.redirect_stdout(io.StringIO()):
        result: dict[str, Any] = module.lambda_handler(event, LocalLambdaContext("aws2azure-test"))
    return result


def test_a_machine_never_discovered_fails_at_the_bound_with_a_clear_reason(
    stack: StackSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert stack.moto is not None
    assert stack.asr is not None
    assert stack.ssm is not None
    assert stack.host is not None
    side = provision(stack, status_api_key=stack.host.master_key)
    for key, value in (side.lambda_environment(status_api_url=stack.host.base_url)
                       | clock_environment(stack.clock_file)).items():  # fmt: skip
        monkeypatch.setenv(key, value)
    intake, status_sync = _handler("intake"), _handler("status_sync")
    session = boto3.session.Session(aws_access_key_id="testing", aws_secret_access_key="testing",
                                    region_name=side.region)  # fmt: skip
    ec2 = session.client("ec2", endpoint_url=stack.moto.url)
    raw = ec2.run_instances(ImageId=AMI_UBUNTU, MinCount=1, MaxCount=1, InstanceType="m5.large")["Instances"][0]
    instance_id, ip = raw["InstanceId"], raw["PrivateIpAddress"]
    with SsmSimControl(stack.ssm.url) as ssm, SimulatorControl.from_endpoint(stack.asr) as asr:
        asr.seed_machine(ip, "Linux", "Ubuntu 22.04 LTS", [64], friendly_name=instance_id, agent_registered=False)
        ssm.add_node(ManagedNode(instance_id=instance_id, platform_type="Linux", platform_name="Ubuntu",
                                 ip_address=ip, computer_name="ip-never"))  # fmt: skip
        ssm.set_faults(FaultPlan(instances={instance_id: "never-discovered"}))
        ec2.create_tags(Resources=[instance_id], Tags=[{"Key": MIGRATE, "Value": "true"}])
        event = {
            "version": "0", "id": f"never-{instance_id}", "detail-type": "Tag Change on Resource",
            "source": "aws.tag", "account": side.account_id, "time": "2026-01-01T00:00:00Z", "region": side.region,
            "resources": [f"arn:aws:ec2:{side.region}:{side.account_id}:instance/{instance_id}"],
            "detail": {"changed-tag-keys": [MIGRATE], "service": "ec2", "resource-type": "instance", "version": 1,
                       "tags": {MIGRATE: "true"}},
        }  # fmt: skip
        assert _invoke(intake, event)["action"] == "requested"

        api = MigrationApi(ApiTarget(stack.host.base_url, stack.host.master_key))
        record: dict[str, Any] = {}
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            _invoke(status_sync, SYNC_EVENT)
            with contextlib.suppress(ApiError):  # 404 until the queue trigger has picked the request up
                answer = api.get(side_migration_id(side.account_id, side.region, instance_id))
                record = answer.get("migration", answer)  # the record, beside its audit events
            if record.get("phase") == "Failed":
                break
            time.sleep(0.5)
        assert record.get("phase") == "Failed", record
        assert "discover" in record["reason"], record["reason"]
        assert [i.status for i in ssm.invocations() if i.instance_id == instance_id] == ["Success"]
        assert not any(m.friendly_name == instance_id and m.discovered for m in asr.machines())
    _invoke(status_sync, SYNC_EVENT)
    tags = {t["Key"]: t["Value"] for t in ec2.describe_tags(
        Filters=[{"Name": "resource-id", "Values": [instance_id]}])["Tags"]}  # fmt: skip
    assert tags[STATUS] == "Failed"
    assert "discover" in tags[REASON]


def side_migration_id(account: str, region: str, instance_id: str) -> str:
    from migration.identity import InstanceRef

    return InstanceRef(account_id=account, region=region, instance_id=instance_id).migration_id
