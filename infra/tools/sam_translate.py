"""The SAM transform, offline: infra/aws/template.yaml as the CloudFormation CloudFormation would deploy.

Runs aws-sam-translator's own Translator (the library behind the AWS::Serverless-2016-10-31
transform and `sam validate`) with a fixed region and no AWS call: the template names no managed
policy, so the managed-policy map is empty. CodeUri is replaced by an S3 location first, as
`sam package` does, because the transform accepts only that. The intrinsic functions stay as they
are (CloudFormation resolves them at deploy time); resolve() turns them into concrete values for
tests that need real ARNs.

    python infra/tools/sam_translate.py [TEMPLATE] > translated.json
"""

from __future__ import annotations

import copy
import json
import re
import sys
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]
if str(REPO_ROOT) not in sys.path:  # run as a script
    sys.path.insert(0, str(REPO_ROOT))

from infra.tools.cfn_yaml import load_sam  # noqa: E402

REGION = "eu-west-1"
ACCOUNT_ID = "123456789012"
PARTITION = "aws"
STACK_NAME = "aws2azure"
PACKAGED_CODE = {"Bucket": "aws2azure-artifacts", "Key": "lambda.zip"}


class TranslationError(RuntimeError):
    """The SAM transform refused the template; the message is the transform's."""


def translate(template: Path | dict[str, Any], parameter_values: dict[str, Any] | None = None) -> dict[str, Any]:
    """The CloudFormation template the SAM transform makes of this SAM template."""
    import boto3
    from samtranslator.model.exceptions import InvalidDocumentException  # type: ignore[import-not-found]
    from samtranslator.parser.parser import Parser  # type: ignore[import-not-found]
    from samtranslator.translator.translator import Translator  # type: ignore[import-not-found]

    document = copy.deepcopy(template) if isinstance(template, dict) else load_sam(template)
    _package_code_uris(document)
    session = boto3.session.Session(region_name=REGION)
    translator = Translator(managed_policy_map={}, sam_parser=Parser(), boto_session=session)
    try:
        translated: dict[str, Any] = translator.translate(
            sam_template=document,
            parameter_values={"AWS::AccountId": ACCOUNT_ID, **(parameter_values or {})},
            passthrough_metadata=True,
            get_managed_policy_map=lambda: {},
        )
    except InvalidDocumentException as exc:
        causes = "; ".join(str(cause) for cause in exc.causes) or str(exc)
        raise TranslationError(causes) from None
    return translated


def _package_code_uris(document: dict[str, Any]) -> None:
    globals_ = (document.get("Globals") or {}).get("Function") or {}
    if isinstance(globals_.get("CodeUri"), str):
        globals_["CodeUri"] = dict(PACKAGED_CODE)
    for resource in (document.get("Resources") or {}).values():
        properties = (resource or {}).get("Properties") or {}
        if resource.get("Type") == "AWS::Serverless::Function" and isinstance(properties.get("CodeUri"), str):
            properties["CodeUri"] = dict(PACKAGED_CODE)


# ---------------------------------------------------------------- concrete values

SUB_VARIABLE = re.compile(r"\$\{([^}!][^}]*)\}")


def physical_ids(
    template: dict[str, Any], parameters: dict[str, str], pseudo: dict[str, str] | None = None
) -> dict[str, dict[str, str]]:
    """Made-up but well-formed Ref and GetAtt values for each resource, as CloudFormation would return them."""
    known = pseudo_parameters() | (pseudo or {})
    region, account_id = known["AWS::Region"], known["AWS::AccountId"]
    prefix = f"arn:{known['AWS::Partition']}"
    where = f"{region}:{account_id}"
    values: dict[str, dict[str, str]] = {}
    for logical_id, resource in template.get("Resources", {}).items():
        kind = resource.get("Type")
        properties = resource.get("Properties") or {}
        name = f"{known['AWS::StackName']}-{logical_id}"
        if kind == "AWS::IAM::Role":
            arn = f"{prefix}:iam::{account_id}:role/{name}"
            values[logical_id] = {"Ref": name, "Arn": arn}
        elif kind == "AWS::Lambda::Function":
            function_name = resolve(properties.get("FunctionName", name), template, parameters, values, pseudo)
            arn = f"{prefix}:lambda:{where}:function:{function_name}"
            values[logical_id] = {"Ref": function_name, "Arn": arn}
        elif kind == "AWS::SQS::Queue":
            arn = f"{prefix}:sqs:{where}:{name}"
            url = f"https://sqs.{region}.amazonaws.com/{account_id}/{name}"
            values[logical_id] = {"Ref": url, "Arn": arn, "QueueName": name, "QueueUrl": url}
        elif kind == "AWS::DynamoDB::Table":
            values[logical_id] = {"Ref": name, "Arn": f"{prefix}:dynamodb:{where}:table/{name}"}
        elif kind == "AWS::SecretsManager::Secret":
            secret_name = resolve(properties.get("Name", name), template, parameters, values, pseudo)
            arn = f"{prefix}:secretsmanager:{where}:secret:{secret_name}-AbCdEf"
            values[logical_id] = {"Ref": arn, "Id": arn}
        elif kind == "AWS::Scheduler::ScheduleGroup":
            group = resolve(properties.get("Name", name), template, parameters, values, pseudo)
            values[logical_id] = {"Ref": group, "Arn": f"{prefix}:scheduler:{where}:schedule-group/{group}"}
        elif kind == "AWS::Logs::LogGroup":
            group = resolve(properties.get("LogGroupName", name), template, parameters, values, pseudo)
            values[logical_id] = {"Ref": group, "Arn": f"{prefix}:logs:{where}:log-group:{group}:*"}
        elif kind == "AWS::Events::Rule":
            values[logical_id] = {"Ref": name, "Arn": f"{prefix}:events:{where}:rule/{name}"}
        else:
            values[logical_id] = {"Ref": name}
    return values


def pseudo_parameters() -> dict[str, str]:
    return {
        "AWS::Partition": PARTITION,
        "AWS::Region": REGION,
        "AWS::AccountId": ACCOUNT_ID,
        "AWS::StackName": STACK_NAME,
        "AWS::URLSuffix": "amazonaws.com",
    }


# What Ref AWS::NoValue resolves to: removed from the list or mapping that holds it.
NO_VALUE: Any = object()


def resolve(
    value: Any,
    template: dict[str, Any],
    parameters: dict[str, str],
    ids: dict[str, dict[str, str]] | None = None,
    pseudo: dict[str, str] | None = None,
) -> Any:
    """value with Ref, GetAtt, Sub, Join and If replaced by concrete values (parameters, then defaults)."""
    ids = ids if ids is not None else physical_ids(template, parameters, pseudo)
    known: dict[str, str] = pseudo_parameters() | (pseudo or {})
    for name, spec in (template.get("Parameters") or {}).items():
        known[name] = str(parameters.get(name, spec.get("Default", "")))

    def ref(name: str) -> str:
        if name in known:
            return known[name]
        if name in ids:
            return ids[name]["Ref"]
        raise KeyError(f"Ref {name} names nothing known")

    def get_att(name: str, attribute: str) -> str:
        try:
            return ids[name][attribute]
        except KeyError:
            raise KeyError(f"GetAtt {name}.{attribute} has no made-up value") from None

    def condition(name: str) -> bool:
        return bool(walk((template.get("Conditions") or {})[name]))

    def walk(node: Any) -> Any:
        if isinstance(node, list):
            # An item that is (or resolves to, through Fn::If) AWS::NoValue is removed, as CloudFormation does.
            return [value for value in (walk(item) for item in node) if value is not NO_VALUE]
        if not isinstance(node, dict):
            return node
        if len(node) == 1:
            ((key, argument),) = node.items()
            if key == "Ref":
                return NO_VALUE if argument == "AWS::NoValue" else ref(argument)
            if key == "Fn::GetAtt":
                name, attribute = argument if isinstance(argument, list) else argument.split(".", 1)
                return get_att(name, attribute)
            if key == "Fn::Sub":
                text, local = (argument[0], walk(argument[1])) if isinstance(argument, list) else (argument, {})

                def substitute(match: re.Match[str]) -> str:
                    variable = match.group(1)
                    if variable in local:
                        return str(local[variable])
                    if "." in variable and not variable.startswith("AWS::"):
                        return get_att(*variable.split(".", 1))
                    return ref(variable)

                return SUB_VARIABLE.sub(substitute, text)
            if key == "Fn::Join":
                separator, items = argument
                return separator.join(str(item) for item in walk(items))
            if key == "Fn::If":
                name, when_true, when_false = argument
                return walk(when_true if condition(name) else when_false)
            if key == "Fn::Equals":
                left, right = walk(argument)
                return left == right
            if key == "Fn::Not":
                return not walk(argument[0])
            if key == "Condition":
                return condition(argument)
        return {k: value for k, value in ((k, walk(v)) for k, v in node.items()) if value is not NO_VALUE}

    return walk(value)


def main(argv: list[str]) -> int:
    template = Path(argv[0]) if argv else Path(__file__).resolve().parents[2] / "infra" / "aws" / "template.yaml"
    try:
        print(json.dumps(translate(template), indent=2, sort_keys=True))
    except TranslationError as exc:
        print(f"SAM transform failed: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
