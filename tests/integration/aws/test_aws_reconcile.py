"""Reconcile: instances tagged for migration whose tag event was lost are sent to intake again."""

from __future__ import annotations

import dataclasses
import os
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from types import ModuleType

import pytest

from aws_lambda.bootstrap import build_reconcile
from aws_lambda.logic.reconcile import ReconcileDependencies, reconcile
from aws_lambda.settings import ReconcileSettings
from devstack.aws_local import InProcessIntakeInvoker
from migration.events import CancelRequested, MigrationRequested
from migration.identity import InstanceRef
from migration.lifecycle import Phase
from migration.tags import CUTOVER_AT, MIGRATE, REASON, STATUS
from tests.integration.aws.aws_test_support import AMI_UBUNTU, SCHEDULED_SAMPLE, LocalAws, reference_event
from tests.integration.aws.test_aws_status_sync import StatusApi

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
    assert missed["missed"] not in outcome["skipped"]


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


@pytest.fixture(scope="module")
def status_api() -> Iterator[StatusApi]:
    api = StatusApi()
    thread = threading.Thread(target=api.server.serve_forever, daemon=True)
    thread.start()
    yield api
    api.server.shutdown()
    api.server.server_close()


def reconcile_with_api(
    intake: ModuleType, status_api: StatusApi
) -> tuple[InProcessIntakeInvoker, ReconcileDependencies]:
    settings = ReconcileSettings.from_environment({**os.environ, "STATUS_API_URL": status_api.url})
    invoker = InProcessIntakeInvoker(intake.lambda_handler)
    return invoker, dataclasses.replace(build_reconcile(settings), invoker=invoker)


def requested(aws: LocalAws, intake: ModuleType, tags: dict[str, str]) -> tuple[str, InstanceRef]:
    group = aws.workload_group("lost", ingress=[])
    instance_id = aws.launch(AMI_UBUNTU, groups=[group], tags=tags)
    assert aws.invoke(intake, aws.tag_change(instance_id, list(tags)))["action"] == "requested"
    return instance_id, InstanceRef(account_id=aws.side.account_id, region=aws.side.region, instance_id=instance_id)


def test_a_lost_removal_of_migrate_is_sent_as_a_cancel(
    local_aws: LocalAws, intake: ModuleType, status_api: StatusApi
) -> None:
    instance_id, ref = requested(local_aws, intake, {MIGRATE: "true"})
    status_api.put(ref, Phase.REPLICATING, progress=30)
    local_aws.set_tags(instance_id, {STATUS: "Replicating"})
    local_aws.ec2.delete_tags(Resources=[instance_id], Tags=[{"Key": MIGRATE}])  # its Tag Change event is lost
    _, deps = reconcile_with_api(intake, status_api)

    outcome = reconcile(deps)
    again = reconcile(deps)

    assert outcome.repaired[instance_id] == "cancel"
    cancels = [e for e in local_aws.queue.events_for(instance_id) if isinstance(e, CancelRequested)]
    assert len(cancels) == 1  # the second run's identical request is one to intake's idempotency
    assert instance_id in again.repaired


def test_a_removed_migrate_is_not_cancelled_once_azure_is_failing_over(
    local_aws: LocalAws, intake: ModuleType, status_api: StatusApi
) -> None:
    instance_id, ref = requested(local_aws, intake, {MIGRATE: "true"})
    status_api.put(ref, Phase.FAILING_OVER)
    local_aws.set_tags(instance_id, {STATUS: "AwaitingCutover"})
    local_aws.ec2.delete_tags(Resources=[instance_id], Tags=[{"Key": MIGRATE}])
    _, deps = reconcile_with_api(intake, status_api)

    assert instance_id not in reconcile(deps).repaired
    assert [e for e in local_aws.queue.events_for(instance_id) if isinstance(e, CancelRequested)] == []


def test_a_lost_cutover_at_change_moves_the_schedule(
    local_aws: LocalAws, intake: ModuleType, status_api: StatusApi
) -> None:
    instance_id, ref = requested(local_aws, intake, {MIGRATE: "true", CUTOVER_AT: "2099-06-01T01:00:00Z"})
    status_api.put(ref, Phase.REPLICATING)
    status_api.records[ref.migration_id] = status_api.records[ref.migration_id].model_copy(
        update={"cutover_at": datetime(2099, 6, 1, 1, 0, tzinfo=UTC)}
    )
    local_aws.set_tags(instance_id, {STATUS: "Replicating", CUTOVER_AT: "2099-07-01T03:00:00Z"})  # event lost
    _, deps = reconcile_with_api(intake, status_api)

    outcome = reconcile(deps)

    assert outcome.repaired[instance_id] == "cutover-at"
    schedule = local_aws.scheduler().get_schedule(Name=f"aws2azure-cutover-{instance_id}", GroupName="aws2azure")
    assert schedule["ScheduleExpression"] == "at(2099-07-01T03:00:00)"
    # Once the schedule fires at the new time, nothing is left to repair.
    assert instance_id not in reconcile(deps).repaired
