"""The names the code reads are the names the templates create.

Azure: tables, queues, task hub and app settings in infra/azure against functions/settings.py.
AWS: Lambda environment, handlers, the EventBridge pattern and the IAM tag conditions in
infra/aws/template.yaml against aws_lambda/settings.py, aws_lambda/handlers and migration/tags.py.
"""

from __future__ import annotations

import ast
import importlib
import json
import re
from typing import Any

import pytest
from pydantic import BaseModel

from functions import settings as function_settings
from functions.settings import FunctionSettings
from migration import tags
from tests.integration.infra.infra_support import (
    AZURE_DIR,
    REPO_ROOT,
    ensure_infra_venv,
    iam_statements,
    load_sam_template,
    object_keys,
    parse_bicep,
)

# The Lambda environment agreed with aws_lambda/settings.py (issue 8).
AGREED_LAMBDA_ENVIRONMENT = frozenset(
    {
        "POWERTOOLS_SERVICE_NAME",
        "POWERTOOLS_METRICS_NAMESPACE",
        "IDEMPOTENCY_TABLE",
        "AZURE_QUEUE_URL",
        "AZURE_QUEUE_SAS_SECRET_ARN",
        "STATUS_API_URL",
        "STATUS_API_KEY_SECRET_ARN",
        "APPLIANCE_CIDR",
        "APPLIANCE_SECURITY_GROUP_ID",
        "CUTOVER_FUNCTION_ARN",
        "SCHEDULER_GROUP_NAME",
        "SCHEDULER_ROLE_ARN",
        "SCHEDULER_DEAD_LETTER_ARN",
        "STOP_TIMEOUT_SECONDS",
        "INTAKE_FUNCTION_NAME",
        "AGENT_INSTALL",
        "AGENT_INSTALL_DOCUMENT",
        "AGENT_CONFIG_EXPIRES_AT",
        "PHASE_TOPIC_ARN",
    }
)
HANDLERS = {"intake", "cutover", "status_sync", "reconcile"}
# App settings only the local stack sets (the simulator's URL and CA, the virtual clock).
LOCAL_ONLY_SETTINGS = {"ASR_BASE_URL", "ASR_CA_BUNDLE", "AWS2AZURE_CLOCK"}


# ---------------------------------------------------------------- Azure


@pytest.fixture(scope="module")
def bicep() -> dict[str, dict[str, Any]]:
    reason = ensure_infra_venv()
    if reason:
        pytest.skip(reason)
    return parse_bicep(
        AZURE_DIR / "main.bicep",
        AZURE_DIR / "modules" / "function-app.bicep",
        AZURE_DIR / "modules" / "intake-queue.bicep",
        AZURE_DIR / "modules" / "storage.bicep",
    )


def variable(document: dict[str, Any], name: str) -> Any:
    return document["variables"][name]["value"]


def module_params(document: dict[str, Any], name: str) -> dict[str, Any]:
    params: dict[str, Any] = document["modules"][name]["config"]["params"]
    return params


def template_app_settings(bicep: dict[str, dict[str, Any]]) -> set[str]:
    return object_keys(variable(bicep["main.bicep"], "applicationSettings")) | object_keys(
        variable(bicep["function-app.bicep"], "runtimeSettings")
    )


def setting_aliases() -> dict[str, bool]:
    """Each app setting FunctionSettings reads, and whether it is required."""
    return {str(f.alias): f.is_required() for f in FunctionSettings.model_fields.values()}


def test_state_tables_are_the_tables_the_code_reads(bicep: dict[str, dict[str, Any]]) -> None:
    main = bicep["main.bicep"]

    assert variable(main, "migrationsTableName") == function_settings.MIGRATIONS_TABLE
    assert variable(main, "eventsTableName") == function_settings.EVENTS_TABLE
    assert module_params(main, "runtimeStorage")["tableNames"] == ["migrationsTableName", "eventsTableName"]
    assert bicep["storage.bicep"]["resources"]["tables"]["config"]["loop_type"]  # one table per name


def test_intake_queue_and_its_poison_queue_are_the_ones_the_trigger_uses(bicep: dict[str, dict[str, Any]]) -> None:
    main = bicep["main.bicep"]
    queues = bicep["intake-queue.bicep"]["resources"]

    assert variable(main, "intakeQueueName") == function_settings.INTAKE_QUEUE
    assert module_params(main, "intake")["queueName"] == "intakeQueueName"
    assert queues["intakeQueue"]["config"]["name"] == "queueName"
    poison = queues["poisonQueue"]["config"]["name"].replace("${queueName}", function_settings.INTAKE_QUEUE)
    assert poison == f"{function_settings.INTAKE_QUEUE}-poison"


def test_task_hub_name_and_partition_count_are_fixed_by_app_settings(bicep: dict[str, dict[str, Any]]) -> None:
    main = bicep["main.bicep"]
    runtime = variable(bicep["function-app.bicep"], "runtimeSettings")

    assert variable(main, "taskHubName") == function_settings.TASK_HUB_NAME
    assert module_params(main, "functionApp")["taskHubName"] == "taskHubName"
    assert runtime["AzureFunctionsJobHost__extensions__durableTask__hubName"] == "taskHubName"
    assert "AzureFunctionsJobHost__extensions__durableTask__storageProvider__partitionCount" in runtime
    assert main["parameters"]["durablePartitionCount"]["default"] == 16


def test_host_json_agrees_with_the_task_hub_settings(bicep: dict[str, dict[str, Any]]) -> None:
    host_json = REPO_ROOT / "host.json"
    if not host_json.exists():
        pytest.skip("host.json does not exist yet; re-run once it does")
    durable = json.loads(host_json.read_text())["extensions"]["durableTask"]

    assert durable["hubName"] == function_settings.TASK_HUB_NAME
    assert durable["storageProvider"].get("type", "AzureStorage") == "AzureStorage"
    assert (
        durable["storageProvider"]["partitionCount"]
        == (bicep["main.bicep"]["parameters"]["durablePartitionCount"]["default"])
    )


def test_status_api_url_output_is_the_origin_status_sync_expects(bicep: dict[str, dict[str, Any]]) -> None:
    # aws_lambda's status API client appends /api/migrations/{id} to STATUS_API_URL.
    output = bicep["main.bicep"]["outputs"]["statusApiUrl"]["value"]

    assert output == "https://${functionApp.outputs.defaultHostName}"


def test_app_settings_include_every_required_setting(bicep: dict[str, dict[str, Any]]) -> None:
    settings = template_app_settings(bicep)
    required = {alias for alias, is_required in setting_aliases().items() if is_required}

    assert required - settings == set()
    # Identity-based connections: the service-URI forms, never a connection string or key.
    assert f"{function_settings.STATE_STORAGE_CONNECTION}__tableServiceUri" in settings
    assert f"{function_settings.INTAKE_QUEUE_CONNECTION}__queueServiceUri" in settings
    assert "AzureWebJobsStorage__accountName" in settings
    assert function_settings.STATE_STORAGE_CONNECTION not in settings
    assert function_settings.INTAKE_QUEUE_CONNECTION not in settings
    assert "AzureWebJobsStorage" not in settings


def test_every_app_setting_is_one_the_code_or_the_runtime_reads(bicep: dict[str, dict[str, Any]]) -> None:
    known = set(setting_aliases()) - LOCAL_ONLY_SETTINGS
    runtime_prefixes = (
        f"{function_settings.STATE_STORAGE_CONNECTION}__",
        f"{function_settings.INTAKE_QUEUE_CONNECTION}__",
        "AzureWebJobsStorage__",
        "AzureFunctionsJobHost__",
        "APPLICATIONINSIGHTS_",
    )

    unknown = {
        name
        for name in template_app_settings(bicep)
        if name not in known and name != "AZURE_CLIENT_ID" and not name.startswith(runtime_prefixes)
    }

    assert unknown == set()
    assert template_app_settings(bicep) & LOCAL_ONLY_SETTINGS == set()


# ---------------------------------------------------------------- AWS


@pytest.fixture(scope="module")
def sam() -> dict[str, Any]:
    return load_sam_template()


def functions_of(sam: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {k: v for k, v in sam["Resources"].items() if v["Type"] == "AWS::Serverless::Function"}


def lambda_environment(sam: dict[str, Any]) -> dict[str, Any]:
    environment: dict[str, Any] = dict(sam["Globals"]["Function"]["Environment"]["Variables"])
    for function in functions_of(sam).values():
        environment |= function["Properties"].get("Environment", {}).get("Variables", {})
    return environment


def test_lambda_environment_is_the_agreed_contract(sam: dict[str, Any]) -> None:
    assert set(lambda_environment(sam)) == AGREED_LAMBDA_ENVIRONMENT


def lambda_settings_aliases() -> dict[str, bool]:
    try:
        module = importlib.import_module("aws_lambda.settings")
    except ModuleNotFoundError:
        pytest.skip("aws_lambda/settings.py does not exist yet; re-run once it does")
    aliases: dict[str, bool] = {}
    for value in vars(module).values():
        if isinstance(value, type) and issubclass(value, BaseModel) and value.__module__ == module.__name__:
            for field in value.model_fields.values():
                if field.alias:
                    aliases[field.alias] = aliases.get(field.alias, False) or field.is_required()
    assert aliases, "aws_lambda.settings defines no pydantic settings model with aliases"
    return aliases


def test_lambda_environment_agrees_with_aws_lambda_settings(sam: dict[str, Any]) -> None:
    aliases = lambda_settings_aliases()
    environment = set(lambda_environment(sam))

    assert {alias for alias, required in aliases.items() if required} - environment == set()
    assert environment - set(aliases) == set()


SAMPLE_PARAMETERS = {
    "AzureQueueUrl": "https://aws2azureinabc123.queue.core.windows.net/migration-requests",
    "StatusApiUrl": "https://aws2azure-func-abc123.azurewebsites.net",
    "ApplianceCidr": "10.0.1.10/32",
    "ApplianceSecurityGroupId": "sg-0123456789abcdef0",
}
SAMPLE_PSEUDO = {"AWS::Partition": "aws", "AWS::Region": "eu-west-1", "AWS::AccountId": "123456789012"}


def resolve(value: Any, sam: dict[str, Any]) -> str:
    """A deploy-time value for an environment variable: parameter samples or defaults, made-up ARNs."""
    if not isinstance(value, dict):
        return str(value)
    if "Ref" in value:
        name = value["Ref"]
        if name in sam["Parameters"]:
            return str(SAMPLE_PARAMETERS.get(name, sam["Parameters"][name].get("Default", "")))
        if name == "AWS::StackName":
            return "aws2azure"
        return f"arn:aws:secretsmanager:eu-west-1:123456789012:secret:{name}"
    if "Fn::GetAtt" in value:
        return f"arn:aws:iam::123456789012:role/{value['Fn::GetAtt'][0]}"
    if "Fn::Sub" in value:
        return re.sub(
            r"\$\{([^}]+)\}",
            lambda m: SAMPLE_PSEUDO.get(m.group(1), "aws2azure"),
            str(value["Fn::Sub"]),
        )
    raise AssertionError(f"unexpected intrinsic {value}")


def test_each_lambda_accepts_the_environment_the_template_gives_it(sam: dict[str, Any]) -> None:
    module = importlib.import_module("aws_lambda.settings")
    environment = {name: resolve(value, sam) for name, value in lambda_environment(sam).items()}
    for name, sample in SAMPLE_PARAMETERS.items():
        assert re.fullmatch(sam["Parameters"][name]["AllowedPattern"], sample), name

    for settings_class in ("IntakeSettings", "CutoverSettings", "StatusSyncSettings", "ReconcileSettings"):
        getattr(module, settings_class).from_environment(environment)


def test_stop_timeout_bounds_are_ones_cutover_accepts(sam: dict[str, Any]) -> None:
    module = importlib.import_module("aws_lambda.settings")
    parameter = sam["Parameters"]["StopTimeoutSeconds"]
    environment = {name: resolve(value, sam) for name, value in lambda_environment(sam).items()}

    for bound in (parameter["MinValue"], parameter["MaxValue"], parameter["Default"]):
        module.CutoverSettings.from_environment(environment | {"STOP_TIMEOUT_SECONDS": str(bound)})
    # No Lambda waits for the stop (issue 15): the bound is the follow-up schedule's, not cutover's timeout.


def test_handlers_are_the_lambda_handlers_in_aws_lambda(sam: dict[str, Any]) -> None:
    handlers = {}
    for function in functions_of(sam).values():
        module_path, _, attribute = function["Properties"]["Handler"].rpartition(".")
        handlers[module_path] = attribute

    assert set(handlers) == {f"aws_lambda.handlers.{name}" for name in HANDLERS}
    for module_path, attribute in handlers.items():
        source = REPO_ROOT / (module_path.replace(".", "/") + ".py")
        if not source.exists():
            pytest.skip(f"{source.relative_to(REPO_ROOT)} does not exist yet; re-run once it does")
        defined = {n.name for n in ast.parse(source.read_text()).body if isinstance(n, ast.FunctionDef)}
        assert attribute in defined, f"{module_path} defines no {attribute}"


def test_intake_rule_matches_tag_changes_of_every_request_tag(sam: dict[str, Any]) -> None:
    event = functions_of(sam)["IntakeFunction"]["Properties"]["Events"]["TagChange"]

    assert event["Type"] == "EventBridgeRule"
    assert event["Properties"]["Pattern"] == {
        "source": ["aws.tag"],
        "detail-type": ["Tag Change on Resource"],
        "detail": {"service": ["ec2"], "resource-type": ["instance"], "changed-tag-keys": list(tags.REQUEST_TAGS)},
    }


def statements_with(sam: dict[str, Any], action: str) -> dict[str, list[dict[str, Any]]]:
    found: dict[str, list[dict[str, Any]]] = {}
    for logical_id, resource in sam["Resources"].items():
        if resource["Type"] == "AWS::IAM::Role":
            for statement in iam_statements(resource):
                if action in ([statement["Action"]] if isinstance(statement["Action"], str) else statement["Action"]):
                    found.setdefault(logical_id, []).append(statement)
    return found


# The keys each function writes (aws_lambda/logic: intake and cutover write status_tags() without progress,
# intake the agent command, cutover its stop mark; status sync writes desired_tags() and the agent's end).
# The IAM test (tests/integration/infra/test_lambda_iam.py) proves the real calls stay inside these lists.
TAG_KEYS_WRITTEN = {
    "IntakeRole": {tags.STATUS, tags.REASON, tags.UPDATED_AT, tags.AGENT},
    "CutoverRole": {tags.STATUS, tags.REASON, tags.UPDATED_AT, tags.CUTOVER_STOP},
    # A rollback clears the cutover's stop mark and remembers the restart it did (docs/ROLLBACK.md).
    "StatusSyncRole": {
        tags.STATUS,
        tags.PROGRESS,
        tags.REASON,
        tags.UPDATED_AT,
        tags.AGENT,
        tags.CUTOVER_STOP,
        tags.ROLLBACK_START,
    },
}


def test_create_tags_is_limited_to_the_status_keys_each_role_writes(sam: dict[str, Any]) -> None:
    writers = statements_with(sam, "ec2:CreateTags")

    assert set(writers) == set(TAG_KEYS_WRITTEN)
    for role, statements in writers.items():
        (statement,) = statements
        keys = statement["Condition"]["ForAllValues:StringEquals"]["aws:TagKeys"]
        assert set(keys) == TAG_KEYS_WRITTEN[role], role
        assert not set(keys) & set(tags.REQUEST_TAGS)
        assert statement["Condition"]["Null"] == {"aws:TagKeys": "false"}
        assert statement["Resource"]["Fn::Sub"].endswith(":instance/*")


def test_only_cutover_stops_instances_and_only_ones_tagged_for_migration(sam: dict[str, Any]) -> None:
    stoppers = statements_with(sam, "ec2:StopInstances")

    assert set(stoppers) == {"CutoverRole"}
    (statement,) = stoppers["CutoverRole"]
    condition = statement["Condition"]["StringEqualsIgnoreCase"]
    assert set(condition) == {f"aws:ResourceTag/{tags.MIGRATE}"}
    allowed = {v.lower() for v in condition[f"aws:ResourceTag/{tags.MIGRATE}"]}
    for spelling in ("true", "True", "TRUE", "yes", "Yes", "1"):
        assert tags.parse_bool(tags.MIGRATE, spelling)
        assert spelling.lower() in allowed
    assert all(tags.parse_bool(tags.MIGRATE, value) for value in allowed)


def test_queue_url_parameter_names_the_intake_queue(sam: dict[str, Any]) -> None:
    pattern = sam["Parameters"]["AzureQueueUrl"]["AllowedPattern"]

    assert pattern.endswith(f"/{function_settings.INTAKE_QUEUE}$")


def test_every_asynchronous_invocation_has_a_dead_letter_queue(sam: dict[str, Any]) -> None:
    for logical_id, function in functions_of(sam).items():
        properties = function["Properties"]
        assert properties["DeadLetterQueue"]["Type"] == "SQS", logical_id
        for event_name, event in properties.get("Events", {}).items():
            assert "DeadLetterConfig" in event["Properties"], f"{logical_id}.{event_name}"


def test_functions_run_python_3_12_or_newer_on_arm64(sam: dict[str, Any]) -> None:
    function_globals = sam["Globals"]["Function"]

    assert function_globals["Architectures"] == ["arm64"]
    major, minor = map(int, function_globals["Runtime"].removeprefix("python").split("."))
    assert (major, minor) >= (3, 12)


# ---------------------------------------------------------------- ASR cache storage and target settings


def test_disk_types_offered_are_the_ones_the_code_accepts(bicep: dict[str, dict[str, Any]]) -> None:
    from typing import get_args

    from migration.ports import DiskType

    parameter = bicep["main.bicep"]["parameters"]["targetDiskType"]
    (allowed,) = [d["argument"] for d in parameter["decorators"] if d["type"] == "allowed"]

    assert set(allowed) == {"Standard_LRS", "Premium_LRS", "StandardSSD_LRS"}
    assert set(allowed) <= set(get_args(DiskType))
    assert parameter["default"] == "Standard_LRS"


def test_cache_storage_grants_what_site_recovery_documents_and_nothing_wider() -> None:
    reason = ensure_infra_venv()
    if reason:
        pytest.skip(reason)
    module = parse_bicep(AZURE_DIR / "modules" / "asr-cache-storage.bicep")["asr-cache-storage.bicep"]
    resources = module["resources"]
    account = resources["account"]["config"]
    built_in = {
        name: str(r["config"]["properties"]["roleDefinitionId"])
        for name, r in resources.items()
        if r["type"] == "Microsoft.Authorization/roleAssignments"
    }
    custom = resources["callerRole"]["config"]["properties"]["permissions"][0]["actions"]

    assert account["sku"]["name"] == "Standard_LRS"
    assert account["kind"] == "StorageV2"
    assert account["properties"]["networkAcls"]["bypass"] == "AzureServices"  # trusted Microsoft services
    # Contributor and Storage Blob Data Contributor for the vault's identity, on this account only.
    assert module["variables"]["contributorRoleId"]["value"] == "b24988ac-6180-42a0-ab88-20f7382dd24c"
    assert module["variables"]["blobDataContributorRoleId"]["value"] == "ba92f5b4-2d11-453d-a403-e96b0029c9fe"
    assert set(built_in) == {"vaultContributor", "vaultBlobDataContributor", "callerAccess"}
    assert all(r["config"].get("scope") == "account" for n, r in resources.items() if n in built_in)
    assert sorted(custom) == [
        "Microsoft.Storage/storageAccounts/listkeys/action",
        "Microsoft.Storage/storageAccounts/read",
    ]
