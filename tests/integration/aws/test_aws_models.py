"""The Lambdas' input models and settings, without any service running."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from aws_lambda_powertools.utilities.parser import ValidationError, parse

from aws_lambda.models.cutover import CutoverRequest
from aws_lambda.models.scheduled import ScheduledTrigger
from aws_lambda.models.tag_change import TagChangeEvent, tag_change_event
from aws_lambda.settings import (
    MIN_IDEMPOTENCY_WINDOW_SECONDS,
    CutoverSettings,
    IntakeSettings,
    SettingsError,
    StatusSyncSettings,
)
from migration.identity import InstanceRef
from tests.integration.aws.aws_test_support import SCHEDULED_SAMPLE, TAG_CHANGE_SAMPLE, reference_event

REPO = Path(__file__).resolve().parents[3]

INTAKE_ENV = {
    "POWERTOOLS_SERVICE_NAME": "aws2azure",
    "POWERTOOLS_METRICS_NAMESPACE": "aws2azure",
    "IDEMPOTENCY_TABLE": "idempotency",
    "AZURE_QUEUE_URL": "https://acct.queue.core.windows.net/migration-requests",
    "AZURE_QUEUE_SAS_SECRET_ARN": "arn:aws:secretsmanager:eu-west-1:123456789012:secret:sas",
    "APPLIANCE_CIDR": "10.0.200.0/28",
    "CUTOVER_FUNCTION_ARN": "arn:aws:lambda:eu-west-1:123456789012:function:cutover",
    "SCHEDULER_GROUP_NAME": "aws2azure",
    "SCHEDULER_ROLE_ARN": "arn:aws:iam::123456789012:role/scheduler",
    "AGENT_INSTALL_DOCUMENT": "aws2azure-InstallMobility",
}


# The Tag Change on Resource model, against the AWS sample


def test_the_aws_sample_parses_into_the_tag_change_model() -> None:
    event = parse(event=reference_event(TAG_CHANGE_SAMPLE), model=TagChangeEvent)

    assert event.detail_type == "Tag Change on Resource"
    assert event.source == "aws.tag"
    assert event.detail.changed_tag_keys == ["a-new-key", "an-updated-key", "a-deleted-key"]
    assert event.detail.version == 3
    assert "a-deleted-key" not in event.detail.tags  # deleted keys are gone from the tag set
    assert event.instance_ref() == InstanceRef(
        account_id="123456789012", region="us-east-1", instance_id="i-0000000aaaaaaaaaa"
    )


def test_the_event_built_for_reconcile_has_the_samples_shape() -> None:
    sample = reference_event(TAG_CHANGE_SAMPLE)
    ref = InstanceRef(account_id="123456789012", region="us-east-1", instance_id="i-0000000aaaaaaaaaa")

    built = tag_change_event(
        event_id=sample["id"],
        instance=ref,
        tags=sample["detail"]["tags"],
        changed_tag_keys=sample["detail"]["changed-tag-keys"],
        version=3,
        time=sample["time"],
    )

    assert built == sample


def test_a_volume_is_not_an_instance() -> None:
    sample = reference_event(TAG_CHANGE_SAMPLE)
    sample["detail"]["resource-type"] = "volume"
    sample["resources"] = ["arn:aws:ec2:us-east-1:123456789012:volume/vol-0f9e1b2c3d4e5f6a7"]

    event = parse(event=sample, model=TagChangeEvent)

    assert event.instance_ref() is None
    assert event.describe_resource() == "ec2/volume arn:aws:ec2:us-east-1:123456789012:volume/vol-0f9e1b2c3d4e5f6a7"


@pytest.mark.parametrize(
    "name", ["event-instance-state.json", "event-scheduled.json", "event-cloud-trail-ec2-create-tags.json"]
)
def test_other_aws_events_are_not_tag_changes(name: str) -> None:
    with pytest.raises(ValidationError):
        parse(event=reference_event(TAG_CHANGE_SAMPLE.with_name(name)), model=TagChangeEvent)


def test_the_scheduled_event_sample_parses_as_a_trigger() -> None:
    trigger = parse(event=reference_event(SCHEDULED_SAMPLE), model=ScheduledTrigger)

    assert trigger.id == "cdc73f9d-aea9-11e3-9d5a-835b769c0d9c"
    assert trigger.detail_type == "Scheduled Event"


def test_a_cutover_request_rejects_unknown_fields_and_bad_instances() -> None:
    instance = {"account_id": "123456789012", "region": "eu-west-1", "instance_id": "i-0123456789abcdef0"}
    good: dict[str, object] = {"instance": instance, "request_id": "r-1"}
    assert CutoverRequest.model_validate(good).requested_by == "schedule"
    with pytest.raises(ValidationError):
        CutoverRequest.model_validate({**good, "force": True})
    with pytest.raises(ValidationError):
        CutoverRequest.model_validate({**good, "instance": {**instance, "instance_id": "db-1"}})


# Settings: one frozen object; a missing setting is named


def test_intake_settings_read_the_sam_names() -> None:
    settings = IntakeSettings.from_environment(INTAKE_ENV)

    assert settings.idempotency_window_seconds >= MIN_IDEMPOTENCY_WINDOW_SECONDS
    assert str(settings.appliance.cidr) == "10.0.200.0/28"
    with pytest.raises(ValidationError):
        settings.idempotency_table = "other"  # type: ignore[misc]


def test_every_missing_setting_is_named() -> None:
    env = {k: v for k, v in INTAKE_ENV.items() if k not in ("IDEMPOTENCY_TABLE", "SCHEDULER_ROLE_ARN")}

    with pytest.raises(SettingsError, match="missing environment variables: IDEMPOTENCY_TABLE, SCHEDULER_ROLE_ARN"):
        IntakeSettings.from_environment(env)


@pytest.mark.parametrize(
    ("changes", "words"),
    [
        ({"APPLIANCE_CIDR": "10.0.0.300/24"}, "APPLIANCE_CIDR"),
        ({"IDEMPOTENCY_WINDOW_SECONDS": "3600"}, "IDEMPOTENCY_WINDOW_SECONDS"),
        ({"AZURE_QUEUE_URL": "migration-requests"}, "AZURE_QUEUE_URL"),
    ],
)
def test_invalid_settings_are_named(changes: dict[str, str], words: str) -> None:
    env = {**INTAKE_ENV, **changes}
    with pytest.raises(SettingsError, match=words):
        IntakeSettings.from_environment(env)


def test_an_empty_optional_setting_is_unset_as_cloudformation_writes_it() -> None:
    settings = IntakeSettings.from_environment({**INTAKE_ENV, "APPLIANCE_SECURITY_GROUP_ID": ""})

    assert settings.appliance_security_group_id is None


def test_the_appliance_must_be_located() -> None:
    env = {k: v for k, v in INTAKE_ENV.items() if k != "APPLIANCE_CIDR"}
    with pytest.raises(SettingsError, match="APPLIANCE_SECURITY_GROUP_ID"):
        IntakeSettings.from_environment(env)
    located = IntakeSettings.from_environment({**env, "APPLIANCE_SECURITY_GROUP_ID": "sg-0123"})
    assert located.appliance.security_group_id == "sg-0123"


def test_the_stop_bound_is_the_follow_up_s_not_a_lambda_wait() -> None:
    # No Lambda waits for the stop, so the bound may exceed Lambda's 900 s; it must leave EC2 time to stop.
    assert CutoverSettings.from_environment({**INTAKE_ENV, "STOP_TIMEOUT_SECONDS": "1800"}).stop_timeout_seconds == 1800
    with pytest.raises(SettingsError, match="STOP_TIMEOUT_SECONDS"):
        CutoverSettings.from_environment({**INTAKE_ENV, "STOP_TIMEOUT_SECONDS": "5"})


def test_ssm_install_needs_the_document_name() -> None:
    env = {k: v for k, v in INTAKE_ENV.items() if k != "AGENT_INSTALL_DOCUMENT"}
    with pytest.raises(SettingsError, match="AGENT_INSTALL_DOCUMENT"):
        IntakeSettings.from_environment(env)
    assert IntakeSettings.from_environment({**env, "AGENT_INSTALL": "push"}).agent_install == "push"


def test_the_tag_change_model_takes_an_event_without_detail_version() -> None:
    event = reference_event(TAG_CHANGE_SAMPLE)
    del event["detail"]["version"]

    assert TagChangeEvent.model_validate(event).detail.version is None


def test_status_sync_needs_the_api_url_and_key() -> None:
    with pytest.raises(SettingsError, match="STATUS_API_URL, STATUS_API_KEY_SECRET_ARN"):
        StatusSyncSettings.from_environment(INTAKE_ENV)


@pytest.mark.parametrize(
    ("module", "missing"),
    [("intake", "IDEMPOTENCY_TABLE"), ("cutover", "AZURE_QUEUE_URL"), ("status_sync", "STATUS_API_URL")],
)
def test_a_cold_start_without_a_setting_fails_naming_it(module: str, missing: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AZURE_", "STATUS_API", "IDEMPOTENCY"))}
    env.update({k: v for k, v in INTAKE_ENV.items() if k != missing})

    result = subprocess.run(
        [sys.executable, "-c", f"import aws_lambda.handlers.{module}"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert result.returncode != 0
    assert "SettingsError" in result.stderr
    assert missing in result.stderr.splitlines()[-1]
