"""Reconcile: instances tagged for migration whose tag event was lost are sent to intake again."""

from __future__ import annotations

import dataclasses
import os
from types import ModuleType

import pytest

from aws_lambda.bootstrap import build_reconcile
from aws_lambda.logic.reconcile import reconcile
from aws_lambda.settings import ReconcileSettings
from devstack.aws_local import InProcessIntakeInvoker
from migration.events import MigrationRequested
from migration.tags import MIGRATE, REASON, STATUS
from tests.aws.aws_test_support import AMI_UBUNTU, SCHEDULED_SAMPLE, LocalAws, reference_event

pytestmark = pytest.mark.integration

OPEN = [{"IpProtocol": "tcp", "FromPort": 443, "ToPort": 9443, "IpRanges": [{"CidrIp": "10.0.200.0/24"}]}]


@pytest.fixture(scope="module")
def intake(local_aws: LocalAws) -> ModuleType:
    return local_aws.handler("intake")


@pytest.fixture(scope="module")
def reconcile_handler(local_aws: LocalAws) -> ModuleType:
    return local_aws.handler("reconcile")


@pytest.fixture(scope="module")
def missed(local_aws: LocalAws) -> dict[str, str]:
    """Instances as the tag events left them, had EventBridge dropped them."""
    group = local_aws.workload_group("reconcile", ingress=OPEN)
    return {
        "missed": local_aws.launch(AMI_UBUNTU, groups=[group], tags={MIGRATE: "true"}),
        "garbled": local_aws.launch(AMI_UBUNTU, groups=[group], tags={MIGRATE: "si"}),
        "declined": local_aws.launch(AMI_UBUNTU, groups=[group], tags={MIGRATE: "false"}),
        "seen": local_aws.launch(AMI_UBUNTU, groups=[group], tags={MIGRATE: "true", STATUS: "Replicating"}),
    }


def test_the_handler_invokes_the_intake_function_for_each_missed_instance(
    local_aws: LocalAws, reconcile_handler: ModuleType, missed: dict[str, str]
) -> None:
    outcome = local_aws.invoke(reconcile_handler, reference_event(SCHEDULED_SAMPLE))

    assert set(outcome["rerun"]) >= {missed["missed"], missed["garbled"]}
    assert missed["declined"] not in outcome["rerun"]
    assert missed["seen"] not in outcome["rerun"]
    assert outcome["skipped"] == {}


def test_re_run_intake_requests_the_migration_and_a_second_run_finds_nothing(
    local_aws: LocalAws, intake: ModuleType, missed: dict[str, str]
) -> None:
    # The same logic, wired to run intake in this process (the local stack's Lambda runtime).
    invoker = InProcessIntakeInvoker(intake.lambda_handler)
    deps = dataclasses.replace(build_reconcile(ReconcileSettings.from_environment()), invoker=invoker)

    first = reconcile(deps)
    second = reconcile(deps)

    assert missed["missed"] in first.rerun
    assert second.rerun == []
    assert local_aws.tags_of(missed["missed"])[STATUS] == "Requested"
    [event] = local_aws.queue.events_for(missed["missed"])
    assert isinstance(event, MigrationRequested)
    garbled = local_aws.tags_of(missed["garbled"])
    assert garbled[STATUS] == "NotReady"
    assert "is not a boolean" in garbled[REASON]


def test_at_most_max_per_run_are_sent_and_the_rest_wait(local_aws: LocalAws, intake: ModuleType) -> None:
    group = local_aws.workload_group("backlog", ingress=OPEN)
    for _ in range(3):
        local_aws.launch(AMI_UBUNTU, groups=[group], tags={MIGRATE: "true"})
    invoker = InProcessIntakeInvoker(intake.lambda_handler)
    settings = ReconcileSettings.from_environment({**os.environ, "RECONCILE_MAX_PER_RUN": "2"})
    deps = dataclasses.replace(build_reconcile(settings), invoker=invoker)

    outcome = reconcile(deps)

    assert len(outcome.rerun) == 2
    assert outcome.left_for_next_run >= 1
