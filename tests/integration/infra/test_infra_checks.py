"""The offline IaC checks pass on the real templates and fail on deliberately broken copies.

Each test runs infra/check.sh (the same command `make test` runs) in a subprocess, against the
real templates or a broken copy in tmp_path. They need .venv-infra, which check.sh creates; they
are skipped, with the reason, only when it cannot be created.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from tests.integration.infra.infra_support import AZURE_DIR, SAM_TEMPLATE, ensure_infra_venv, run_check


@pytest.fixture(scope="module", autouse=True)
def infra_venv() -> None:
    reason = ensure_infra_venv()
    if reason:
        pytest.skip(reason)


@pytest.fixture
def azure_copy(tmp_path: Path) -> Path:
    target = tmp_path / "azure"
    shutil.copytree(AZURE_DIR, target)
    return target


@pytest.fixture
def sam_copy(tmp_path: Path) -> Path:
    target = tmp_path / "aws" / "template.yaml"
    target.parent.mkdir()
    shutil.copy(SAM_TEMPLATE, target)
    return target


def replace_once(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert text.count(old) == 1, f"{old!r} should occur once in {path.name}; the test needs updating"
    path.write_text(text.replace(old, new))


def test_every_check_passes_on_the_real_templates() -> None:
    result = run_check()

    assert result.returncode == 0, result.stdout
    assert "[ok] bicep" in result.stdout
    assert "[ok] cfn-lint" in result.stdout
    assert "cfn-lint clean on template.yaml after the SAM transform" in result.stdout
    assert "[ok] sam-refs" in result.stdout
    assert "[ok] iam" in result.stdout
    assert "[ok] checkov" in result.stdout
    assert re.search(r"bicep: \d+ passed, 0 failed, \d+ suppressed, 0 parse errors", result.stdout)
    assert re.search(r"sam: \d+ passed, 0 failed, \d+ suppressed, 0 parse errors", result.stdout)
    assert re.search(r"sam-translated: \d+ passed, 0 failed, \d+ suppressed, 0 parse errors", result.stdout)


# ---------------------------------------------------------------- Bicep syntax


BROKEN_BICEP = ("  sku: {\n    name: skuName\n  }\n", "  sku: {\n    name: skuName\n\n")


def test_bicep_syntax_error_fails_the_parse_step(azure_copy: Path) -> None:
    replace_once(azure_copy / "modules" / "storage.bicep", *BROKEN_BICEP)

    result = run_check("--only", "bicep", "--azure", str(azure_copy))

    assert result.returncode != 0, result.stdout
    assert "storage.bicep: syntax error" in result.stdout


def test_bicep_syntax_error_fails_checkov_although_checkov_exits_zero(azure_copy: Path) -> None:
    replace_once(azure_copy / "modules" / "storage.bicep", *BROKEN_BICEP)

    result = run_check("--only", "checkov", "--cloud", "azure", "--azure", str(azure_copy))

    assert result.returncode != 0, result.stdout
    assert "parsing error" in result.stdout
    assert "storage.bicep" in result.stdout


def test_missing_parameter_description_fails_the_parse_step(azure_copy: Path) -> None:
    replace_once(
        azure_copy / "modules" / "identity.bicep",
        "@description('Name of the user-assigned managed identity.')\n",
        "",
    )

    result = run_check("--only", "bicep", "--azure", str(azure_copy))

    assert result.returncode != 0, result.stdout
    assert "identity.bicep: parameter name has no @description" in result.stdout


def test_module_called_without_a_required_parameter_fails_the_parse_step(azure_copy: Path) -> None:
    replace_once(azure_copy / "main.bicep", "    vaultName: asrVaultName\n", "")

    result = run_check("--only", "bicep", "--azure", str(azure_copy))

    assert result.returncode != 0, result.stdout
    assert "module vaultAccess: does not pass required parameter vaultName" in result.stdout


# ---------------------------------------------------------------- SAM references


def test_bad_ref_inside_a_sam_function_fails_cfn_lint(sam_copy: Path) -> None:
    replace_once(sam_copy, "      Timeout: 900\n", "      Timeout: !Ref CutoverTimeoutSecnds\n")

    result = run_check("--only", "cfn-lint", "--sam", str(sam_copy))

    assert result.returncode != 0, result.stdout
    assert "CutoverTimeoutSecnds" in result.stdout


@pytest.mark.parametrize(
    ("old", "new", "where"),
    [
        pytest.param(
            "Schedule: !Ref StatusSyncSchedule",
            "Schedule: !Ref StatusSyncScheduel",
            "StatusSyncFunction.Properties.Events.Every.Properties.Schedule: !Ref StatusSyncScheduel",
            id="event-property",
        ),
        pytest.param(
            "IDEMPOTENCY_TABLE: !Ref IdempotencyTable",
            "IDEMPOTENCY_TABLE: !Ref IdempotencyTabel",
            "Globals.Function.Environment.Variables.IDEMPOTENCY_TABLE: !Ref IdempotencyTabel",
            id="environment-variable",
        ),
        pytest.param(
            "TargetArn: !GetAtt CutoverDeadLetterQueue.Arn",
            "TargetArn: !GetAtt CutoverDeadLetterQeue.Arn",
            "CutoverFunction.Properties.DeadLetterQueue.TargetArn: !GetAtt CutoverDeadLetterQeue",
            id="dead-letter-target",
        ),
        pytest.param(
            "CUTOVER_FUNCTION_ARN: !Sub arn:${AWS::Partition}",
            "CUTOVER_FUNCTION_ARN: !Sub arn:${AWS::Partiton}",
            "CUTOVER_FUNCTION_ARN: !Sub ${AWS::Partiton}",
            id="sub-variable",
        ),
    ],
)
def test_bad_reference_that_cfn_lint_misses_fails_the_reference_walk(
    sam_copy: Path, old: str, new: str, where: str
) -> None:
    # cfn-lint 1.58 passes each of these (env var names with "_", SAM event properties, DLQ targets).
    replace_once(sam_copy, old, new)

    result = run_check("--only", "sam-refs", "--sam", str(sam_copy))

    assert result.returncode != 0, result.stdout
    assert where in result.stdout


# ---------------------------------------------------------------- IAM and checkov


@pytest.mark.parametrize(
    ("old", "new"),
    [
        pytest.param("Action: ec2:StopInstances", "Action: ec2:*", id="service-wildcard"),
        pytest.param(
            # Status sync's statement (reconcile has the same one, after DescribeInstances).
            '"false"\n              - Sid: ReadStatusApiKey\n                Effect: Allow\n'
            "                Action: secretsmanager:GetSecretValue\n",
            '"false"\n              - Sid: ReadStatusApiKey\n                Effect: Allow\n'
            "                Action: secretsmanager:Get*\n",
            id="prefix-wildcard-in-a-later-statement",
        ),
        pytest.param(
            "Action: lambda:InvokeFunction\n                Resource:\n",
            "NotAction: iam:*\n                Resource:\n",
            id="not-action",
        ),
    ],
)
def test_wildcard_iam_action_fails_checkov(sam_copy: Path, old: str, new: str) -> None:
    replace_once(sam_copy, old, new)

    result = run_check("--only", "checkov", "--cloud", "aws", "--sam", str(sam_copy))

    assert result.returncode != 0, result.stdout
    assert "CKV_A2A_1 failed" in result.stdout


def test_failed_checkov_check_on_bicep_fails(azure_copy: Path) -> None:
    replace_once(
        azure_copy / "modules" / "keyvault.bicep", "enablePurgeProtection: true", "enablePurgeProtection: false"
    )

    result = run_check("--only", "checkov", "--cloud", "azure", "--azure", str(azure_copy))

    assert result.returncode != 0, result.stdout
    assert "CKV_AZURE_110 failed on Microsoft.KeyVault/vaults.vault" in result.stdout


def test_suppression_without_reason_fails(sam_copy: Path) -> None:
    replace_once(
        sam_copy,
        "          - id: CKV_AWS_119\n            comment: Encrypted with the AWS managed key; "
        "the table holds hashes of events and short results that expire, nothing secret.\n",
        "          - id: CKV_AWS_119\n",
    )

    result = run_check("--only", "checkov", "--cloud", "aws", "--sam", str(sam_copy))

    assert result.returncode != 0, result.stdout
    assert "suppression of CKV_AWS_119 on AWS::DynamoDB::Table.IdempotencyTable gives no reason" in result.stdout


def test_stale_suppression_fails(azure_copy: Path) -> None:
    replace_once(
        azure_copy / "modules" / "identity.bicep",
        "  name: name\n",
        "  // checkov:skip=CKV_AZURE_999:no such check applies here\n  name: name\n",
    )

    result = run_check("--only", "checkov", "--cloud", "azure", "--azure", str(azure_copy))

    assert result.returncode != 0, result.stdout
    assert "suppression of CKV_AZURE_999 in identity.bicep matches no check" in result.stdout


# ---------------------------------------------------------------- after the SAM transform

# The scheduler role's policy as it was before issue 14: !GetAtt CutoverFunction.Arn, while every
# function's environment (Globals) carries !GetAtt SchedulerRole.Arn.
CUTOVER_ARN = "arn:${AWS::Partition}:lambda:${AWS::Region}:${AWS::AccountId}:function:${AWS::StackName}-cutover"
CYCLIC_SCHEDULER_POLICY = (
    f"                  - !Sub {CUTOVER_ARN}\n                  - !Sub {CUTOVER_ARN}:*\n",
    "                  - !GetAtt CutoverFunction.Arn\n                  - !Sub ${CutoverFunction.Arn}:*\n",
)


def test_circular_dependency_through_globals_fails_cfn_lint_after_the_transform(sam_copy: Path) -> None:
    replace_once(sam_copy, *CYCLIC_SCHEDULER_POLICY)

    result = run_check("--only", "cfn-lint", "--sam", str(sam_copy))

    assert result.returncode != 0, result.stdout
    # cfn-lint passes the template as written; only the translated one shows the cycle.
    assert "cfn-lint clean on template.yaml as written" in result.stdout
    assert "E3004" in result.stdout
    assert "Circular dependency with [SchedulerRole]" in result.stdout


def test_template_the_transform_refuses_fails_cfn_lint(sam_copy: Path) -> None:
    replace_once(sam_copy, "          Type: EventBridgeRule\n", "          Type: EventBridgeRul\n")

    result = run_check("--only", "cfn-lint", "--sam", str(sam_copy))

    assert result.returncode != 0, result.stdout
    assert "the SAM transform refuses template.yaml" in result.stdout


def test_failed_check_shows_in_checkov_on_the_translated_template(sam_copy: Path) -> None:
    replace_once(sam_copy, "        PointInTimeRecoveryEnabled: true\n", "        PointInTimeRecoveryEnabled: false\n")

    result = run_check("--only", "checkov", "--cloud", "aws", "--sam", str(sam_copy))

    assert result.returncode != 0, result.stdout
    assert "sam-translated: CKV_AWS_28 failed on AWS::DynamoDB::Table.IdempotencyTable" in result.stdout


# ---------------------------------------------------------------- IAM forms


def test_scheduler_trust_on_a_schedule_arn_fails_the_iam_step(sam_copy: Path) -> None:
    # The form before issue 14: Scheduler assumes the role with the group's ARN, so this never matches.
    replace_once(
        sam_copy,
        "              ArnEquals:\n                aws:SourceArn: !GetAtt CutoverScheduleGroup.Arn\n",
        "              ArnLike:\n                aws:SourceArn: !Sub "
        "arn:${AWS::Partition}:scheduler:${AWS::Region}:${AWS::AccountId}:schedule/${CutoverScheduleGroup}/*\n",
    )

    result = run_check("--only", "iam", "--sam", str(sam_copy))

    assert result.returncode != 0, result.stdout
    assert "SchedulerRole trust statement 0: aws:SourceArn" in result.stdout
    assert "is not a schedule group's ARN" in result.stdout


def test_scheduler_trust_without_source_account_fails_the_iam_step(sam_copy: Path) -> None:
    replace_once(
        sam_copy,
        "              StringEquals:\n"
        "                aws:SourceAccount: !Ref AWS::AccountId\n"
        "              ArnEquals:\n",
        "              ArnEquals:\n",
    )

    result = run_check("--only", "iam", "--sam", str(sam_copy))

    assert result.returncode != 0, result.stdout
    assert "scheduler.amazonaws.com without aws:SourceAccount" in result.stdout


def test_lambda_permission_without_source_arn_fails_the_iam_step(sam_copy: Path) -> None:
    replace_once(
        sam_copy,
        "  # ---------------------------------------------------------------- logs\n",
        "  OpenPermission:\n    Type: AWS::Lambda::Permission\n    Properties:\n"
        "      Action: lambda:InvokeFunction\n      FunctionName: !Ref CutoverFunction\n"
        "      Principal: events.amazonaws.com\n\n"
        "  # ---------------------------------------------------------------- logs\n",
    )

    result = run_check("--only", "iam", "--sam", str(sam_copy))

    assert result.returncode != 0, result.stdout
    assert "OpenPermission: lets events.amazonaws.com invoke the function without a SourceArn" in result.stdout


INTAKE_TAG_KEYS = '["aws2azure:status", "aws2azure:reason", "aws2azure:updated-at", "aws2azure:agent"]'


@pytest.mark.parametrize(
    ("new", "message"),
    [
        pytest.param(
            INTAKE_TAG_KEYS.replace("]", ', "aws2azure:migrate"]'),
            "may write 'aws2azure:migrate', which is not a tag aws2azure writes",
            id="request-tag-in-the-allowlist",
        ),
        pytest.param('["aws2azure:*"]', "tag key 'aws2azure:*' is not one literal key", id="wildcard-key"),
    ],
)
def test_tag_key_outside_the_status_keys_fails_the_iam_step(sam_copy: Path, new: str, message: str) -> None:
    replace_once(sam_copy, INTAKE_TAG_KEYS, new)

    result = run_check("--only", "iam", "--sam", str(sam_copy))

    assert result.returncode != 0, result.stdout
    assert f"IntakeRole policy intake WriteStatusTags: {message}" in result.stdout


def test_tag_keys_by_pattern_fail_the_iam_step(sam_copy: Path) -> None:
    # The form before issue 14: any aws2azure:* key, aws2azure:migrate included.
    text = sam_copy.read_text()
    old = (
        "                  ForAllValues:StringEquals:\n"
        '                    aws:TagKeys: ["aws2azure:status", "aws2azure:progress", "aws2azure:reason", '
        '"aws2azure:updated-at", "aws2azure:agent", "aws2azure:cutover-stop", "aws2azure:rollback-start"]\n'
    )
    replace_once(
        sam_copy, old, '                  ForAllValues:StringLike:\n                    aws:TagKeys: ["aws2azure:*"]\n'
    )

    result = run_check("--only", "iam", "--sam", str(sam_copy))

    assert result.returncode != 0, result.stdout
    assert (
        "StatusSyncRole policy status-sync WriteStatusTags: aws:TagKeys under ForAllValues:StringLike" in result.stdout
    )
    assert text  # the copy was read before it was broken


def test_tag_writer_without_the_null_guard_fails_the_iam_step(sam_copy: Path) -> None:
    text = sam_copy.read_text()
    guard = '                  "Null":\n                    aws:TagKeys: "false"\n'
    assert text.count(guard) == 3
    sam_copy.write_text(text.replace(guard, "", 1))

    result = run_check("--only", "iam", "--sam", str(sam_copy))

    assert result.returncode != 0, result.stdout
    assert 'IntakeRole policy intake WriteStatusTags: without "Null"' in result.stdout
