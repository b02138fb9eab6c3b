"""Offline checks of both clouds' templates; run by infra/check.sh inside .venv-infra.

Steps (each can be run alone with --only, the tests feed each a broken copy):
  bicep     parse every .bicep file with pycep (the parser checkov uses) and fail on a syntax error,
            because checkov only counts Bicep parse errors and still exits 0; then check what a
            compiler would: @description on every parameter, module paths and parameters, and the
            parameters file against main.bicep.
  cfn-lint  cfn-lint on the SAM template as written and after the SAM transform (aws-sam-translator's
            Translator, offline: infra/tools/sam_translate.py); cfn-lint 1.x no longer transforms SAM
            itself, so a circular dependency through Globals shows only in the translated template.
  sam-refs  resolve every Ref, GetAtt and Sub variable in the SAM template, where cfn-lint is blind.
  iam       on the translated template: trust policies, Lambda permissions and queue policies in the
            forms AWS documents (infra/tools/iam_forms.py), and a tag-key allowlist on every statement
            that writes tags.
  checkov   checkov on the Bicep folder and on the SAM template, as written and translated (with
            the project's own checks in infra/checks); fails on a failed check, on a parse error, on a
            suppression without a reason, and on a suppression that no longer matches any check.
"""

from __future__ import annotations

import argparse
import atexit
import functools
import json
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]
if str(REPO_ROOT) not in sys.path:  # run as a script by infra/check.sh
    sys.path.insert(0, str(REPO_ROOT))

from infra.tools.cfn_yaml import load_sam  # noqa: E402

DEFAULT_AZURE_DIR = REPO_ROOT / "infra" / "azure"
DEFAULT_SAM_TEMPLATE = REPO_ROOT / "infra" / "aws" / "template.yaml"
CUSTOM_CHECKS_DIR = REPO_ROOT / "infra" / "checks"
PARAMETERS_FILE_NAME = "main.parameters.json"
TOOLS_BIN = Path(sys.executable).parent
STEPS = ("bicep", "cfn-lint", "sam-refs", "iam", "checkov")
CLOUDS = ("azure", "aws")
STEP_CLOUD = {"bicep": "azure", "cfn-lint": "aws", "sam-refs": "aws", "iam": "aws"}
SKIP_COMMENT = re.compile(r"checkov:skip=([A-Za-z0-9_]+)(:[^\n]*)?")
NO_REASON = "No comment provided"


@dataclass
class StepResult:
    name: str
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


# ---------------------------------------------------------------- bicep


def _is_required(parameter: dict[str, Any]) -> bool:
    return parameter.get("default") is None


def _has_description(parameter: dict[str, Any]) -> bool:
    return any(d.get("type") == "description" and d.get("argument") for d in parameter.get("decorators", []))


def check_bicep(azure_dir: Path) -> StepResult:
    from pycep import BicepParser  # type: ignore[import-not-found]  # in .venv-infra only

    result = StepResult("bicep")
    files = sorted(azure_dir.rglob("*.bicep"))
    if not files:
        result.problems.append(f"no .bicep files under {azure_dir}")
        return result
    parser = BicepParser()
    parsed: dict[Path, dict[str, Any]] = {}
    for path in files:
        try:
            parsed[path.resolve()] = parser.parse(file_path=path)
        except Exception as exc:  # lark raises several types; any of them means "does not parse"
            first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            result.problems.append(f"{path.relative_to(azure_dir)}: syntax error: {first_line}")
    for path, document in parsed.items():
        name = path.relative_to(azure_dir.resolve())
        for param_name, parameter in document.get("parameters", {}).items():
            if not _has_description(parameter):
                result.problems.append(f"{name}: parameter {param_name} has no @description")
        for module_name, module in document.get("modules", {}).items():
            result.problems.extend(_module_problems(name, module_name, module, path, parsed))
    main = (azure_dir / "main.bicep").resolve()
    if main not in parsed:
        result.problems.append("main.bicep is missing or does not parse")
    else:
        result.problems.extend(_parameters_file_problems(azure_dir / PARAMETERS_FILE_NAME, parsed[main]))
    result.notes.append(f"{len(parsed)} of {len(files)} Bicep files parsed")
    return result


def _module_problems(
    file_name: Path, module_name: str, module: dict[str, Any], path: Path, parsed: dict[Path, dict[str, Any]]
) -> list[str]:
    target = (path.parent / module["detail"]["path"]).resolve()
    where = f"{file_name}: module {module_name}"
    if not target.exists():
        return [f"{where}: {module['detail']['path']} does not exist"]
    if target not in parsed:
        return []  # its own syntax error is reported already
    config = module.get("config", {})
    if "condition" in config:  # module ... = if (condition) { ... }
        config = config.get("config", {})
    if "params" not in config:
        return [f"{where}: passes no params block (conditional or looped modules are not checked)"]
    declared = parsed[target].get("parameters", {})
    passed = set(config["params"])
    problems = [f"{where}: passes {p}, which the module does not declare" for p in sorted(passed - set(declared))]
    problems += [
        f"{where}: does not pass required parameter {p}"
        for p, spec in sorted(declared.items())
        if _is_required(spec) and p not in passed
    ]
    return problems


def _parameters_file_problems(parameters_file: Path, main: dict[str, Any]) -> list[str]:
    if not parameters_file.exists():
        return [f"{PARAMETERS_FILE_NAME} is missing"]
    try:
        values = json.loads(parameters_file.read_text()).get("parameters", {})
    except ValueError as exc:
        return [f"{PARAMETERS_FILE_NAME}: not JSON: {exc}"]
    declared = main.get("parameters", {})
    problems = [
        f"{PARAMETERS_FILE_NAME}: {p} is not a parameter of main.bicep" for p in sorted(set(values) - set(declared))
    ]
    for name, spec in sorted(declared.items()):
        secure = any(d.get("type") == "secure" for d in spec.get("decorators", []))
        # Secure parameters are passed on the command line, never kept in the file.
        if _is_required(spec) and not secure and name not in values:
            problems.append(f"{PARAMETERS_FILE_NAME}: required parameter {name} has no value")
        if secure and name in values and "reference" not in values[name]:
            problems.append(f"{PARAMETERS_FILE_NAME}: secure parameter {name} must not hold a literal value")
    return problems


# ---------------------------------------------------------------- cfn-lint


@functools.cache
def translated_template(template: Path) -> tuple[Path | None, str]:
    """The template after the SAM transform, written next to nothing in the work tree; (None, why) if it fails."""
    from infra.tools.sam_translate import TranslationError, translate

    try:
        translated = translate(template)
    except TranslationError as exc:
        return None, f"the SAM transform refuses {template.name}: {exc}"
    except Exception as exc:  # the translator raises bare errors for some malformed input
        return None, f"the SAM transform fails on {template.name}: {type(exc).__name__}: {exc}"
    out_dir = Path(tempfile.mkdtemp(prefix="aws2azure-sam-"))
    atexit.register(shutil.rmtree, out_dir, True)
    target = out_dir / f"{template.stem}.translated.json"
    target.write_text(json.dumps(translated, indent=2))
    return target, ""


def _cfn_lint(path: Path) -> tuple[int, str]:
    completed = subprocess.run(
        [str(TOOLS_BIN / "cfn-lint"), "--format", "parseable", "--", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    return completed.returncode, (completed.stdout + completed.stderr).strip()


def check_cfn_lint(template: Path) -> StepResult:
    """cfn-lint on the SAM template as written and on the template after the SAM transform.

    cfn-lint 1.x no longer runs the SAM transform itself (it merges Globals and validates SAM resources
    against their schema), so a circular dependency through Globals (E3004) or a bad property of a
    generated resource shows only in the translated template.
    """
    result = StepResult("cfn-lint")
    translated, why = translated_template(template)
    targets = [("as written", template)]
    if translated is None:
        result.problems.append(why)
    else:
        targets.append(("after the SAM transform", translated))
    for label, path in targets:
        code, output = _cfn_lint(path)
        if code != 0:
            result.problems.append(f"cfn-lint on {template.name} {label}: exit {code}:\n{output}")
        else:
            result.notes.append(f"cfn-lint clean on {template.name} {label}")
    return result


# ---------------------------------------------------------------- sam-refs
# cfn-lint 1.58 with the SAM transform still misses some references inside SAM resources: in
# Environment variables whose names contain "_" (all of ours), in event properties (a Schedule's
# expression, a dead-letter Arn) and in DeadLetterQueue.TargetArn. This walk resolves every Ref,
# GetAtt and ${} in Sub against the parameters, the resources, the pseudo parameters and the
# logical ids the SAM transform generates.

PSEUDO_PARAMETERS = frozenset(
    {
        "AWS::AccountId",
        "AWS::NotificationARNs",
        "AWS::NoValue",
        "AWS::Partition",
        "AWS::Region",
        "AWS::StackId",
        "AWS::StackName",
        "AWS::URLSuffix",
    }
)
SUB_VARIABLE = re.compile(r"\$\{(?!!)([^}]+)\}")


def _sam_generated_ids(resources: dict[str, Any]) -> set[str]:
    generated = set()
    for logical_id, resource in resources.items():
        if not isinstance(resource, dict) or resource.get("Type") != "AWS::Serverless::Function":
            continue
        properties = resource.get("Properties") or {}
        if "Role" not in properties:
            generated.add(f"{logical_id}Role")
        for event in properties.get("Events") or {}:
            generated |= {f"{logical_id}{event}", f"{logical_id}{event}Permission"}
    return generated


def _unresolved(node: Any, known: set[str], path: str) -> list[str]:
    problems: list[str] = []
    if isinstance(node, list):
        for index, item in enumerate(node):
            problems += _unresolved(item, known, f"{path}[{index}]")
        return problems
    if not isinstance(node, dict):
        return problems
    if set(node) == {"Ref"} and isinstance(node["Ref"], str):
        if node["Ref"] not in known:
            problems.append(f"{path}: !Ref {node['Ref']} names no parameter or resource")
        return problems
    if set(node) == {"Fn::GetAtt"}:
        target = node["Fn::GetAtt"]
        name = target[0] if isinstance(target, list) and target else str(target).split(".", 1)[0]
        if name not in known:
            problems.append(f"{path}: !GetAtt {name} names no resource")
        return problems
    if set(node) == {"Fn::Sub"}:
        argument = node["Fn::Sub"]
        text, local = (argument[0], argument[1]) if isinstance(argument, list) else (argument, {})
        for variable in SUB_VARIABLE.findall(str(text)):
            name = variable if variable.startswith("AWS::") else variable.split(".", 1)[0]
            if name not in known and name not in local:
                problems.append(f"{path}: !Sub ${{{variable}}} names no parameter or resource")
        return problems + _unresolved(local, known, f"{path}.Fn::Sub")
    for key, value in node.items():
        problems += _unresolved(value, known, f"{path}.{key}")
    return problems


def check_sam_references(template: Path) -> StepResult:
    result = StepResult("sam-refs")
    document = load_sam(template)
    resources = document.get("Resources") or {}
    known = set(document.get("Parameters") or {}) | set(resources) | PSEUDO_PARAMETERS
    known |= _sam_generated_ids(resources)
    for section in ("Globals", "Conditions", "Resources", "Outputs"):
        result.problems += _unresolved(document.get(section) or {}, known, section)
    result.notes.append(f"every reference in {template.name} resolves" if result.ok else "")
    return result


# ---------------------------------------------------------------- iam


def check_iam(template: Path) -> StepResult:
    from infra.tools import iam_forms
    from migration import tags

    result = StepResult("iam")
    translated, why = translated_template(template)
    if translated is None:
        result.problems.append(why)
        return result
    # The keys aws2azure itself writes: every aws2azure: key of migration/tags.py but the request tags.
    written = frozenset(
        value
        for name, value in vars(tags).items()
        if name.isupper() and isinstance(value, str) and value.startswith(tags.PREFIX) and value != tags.PREFIX
    ) - set(tags.REQUEST_TAGS)
    problems, notes = iam_forms.check(json.loads(translated.read_text()), written)
    result.problems += problems
    result.notes += notes
    return result


# ---------------------------------------------------------------- checkov


def _start_checkov(option: str, path: Path, framework: str) -> subprocess.Popen[str]:
    """checkov on ``path``, named relative to its own folder: checkov's CKV_AWS_45 runs its secret patterns over
    the ``__file__`` it records in every environment block, so an absolute path with a 40-character run of
    [A-Za-z0-9/+=] (``/tmp/streak/run1/main/infra/aws/template``) reads as an AWS secret key and fails the
    check on one checkout folder and not another. Relative names keep the verdict independent of the clone."""
    command = [
        str(TOOLS_BIN / "checkov"),
        option,
        path.name,
        "--framework",
        framework,
        "--external-checks-dir",
        str(CUSTOM_CHECKS_DIR),
        "--skip-download",
        "--output",
        "json",
    ]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=path.parent)


def _checkov_reports(process: subprocess.Popen[str], framework: str) -> tuple[list[dict[str, Any]], str]:
    stdout, stderr = process.communicate()
    try:
        payload = json.loads(stdout)
    except ValueError:
        return [], f"checkov printed no JSON (exit {process.returncode}): {stderr.strip()[-2000:]}"
    reports = payload if isinstance(payload, list) else [payload]
    return [r for r in reports if isinstance(r, dict) and r.get("check_type") == framework], ""


def _report_problems(report: dict[str, Any], label: str) -> list[str]:
    problems = []
    summary = report["summary"]
    results = report["results"]
    for failed in results.get("failed_checks", []):
        lines = failed.get("file_line_range", [])
        problems.append(
            f"{label}: {failed['check_id']} failed on {failed['resource']} "
            f"({failed.get('file_path')}:{'-'.join(map(str, lines))}): {failed['check_name']}"
        )
    if summary.get("parsing_errors", 0):
        files = ", ".join(results.get("parsing_errors", [])) or "(files not named)"
        problems.append(f"{label}: {summary['parsing_errors']} parsing error(s), checkov still exits 0: {files}")
    for skipped in results.get("skipped_checks", []):
        reason = (skipped.get("check_result") or {}).get("suppress_comment", NO_REASON)
        if not reason or reason == NO_REASON:
            problems.append(f"{label}: suppression of {skipped['check_id']} on {skipped['resource']} gives no reason")
    return problems


def _bicep_suppressions(azure_dir: Path) -> set[tuple[str, str]]:
    found = set()
    for path in azure_dir.rglob("*.bicep"):
        for match in SKIP_COMMENT.finditer(path.read_text()):
            found.add((path.name, match.group(1)))
    return found


def _cfn_suppressions(template: Path) -> set[tuple[str, str]]:
    document = load_sam(template)
    found = set()
    for logical_id, resource in (document.get("Resources") or {}).items():
        skips = (((resource or {}).get("Metadata") or {}).get("checkov") or {}).get("skip") or []
        for skip in skips:
            if isinstance(skip, dict) and "id" in skip:
                found.add((logical_id, str(skip["id"])))
    return found


def check_checkov(azure_dir: Path | None, template: Path | None) -> StepResult:
    result = StepResult("checkov")
    scans = []
    if azure_dir is not None:
        scans.append(("bicep", ("--directory", azure_dir.resolve()), "bicep", _bicep_suppressions(azure_dir)))
    if template is not None:
        declared = _cfn_suppressions(template)
        scans.append(("sam", ("--file", template.resolve()), "cloudformation", declared))
        translated, why = translated_template(template)
        if translated is None:
            result.problems.append(f"sam-translated: {why}")
        else:
            # The transform passes each function's Metadata (its suppressions) on to AWS::Lambda::Function.
            scans.append(("sam-translated", ("--file", translated.resolve()), "cloudformation", declared))
    # checkov spends most of its time starting up: scan both clouds at once.
    running = [
        (label, framework, declared, _start_checkov(*target, framework)) for label, target, framework, declared in scans
    ]
    for label, framework, declared, process in running:
        reports, error = _checkov_reports(process, framework)
        if error:
            result.problems.append(f"{label}: {error}")
            continue
        if not reports:
            result.problems.append(f"{label}: checkov produced no {framework} report (nothing scanned?)")
            continue
        used: set[tuple[str, str]] = set()
        for report in reports:
            result.problems.extend(_report_problems(report, label))
            summary = report["summary"]
            result.notes.append(
                f"{label}: {summary['passed']} passed, {summary['failed']} failed, "
                f"{summary['skipped']} suppressed, {summary['parsing_errors']} parse errors"
            )
            for skipped in report["results"].get("skipped_checks", []):
                if framework == "bicep":
                    used.add((Path(skipped.get("file_path", "")).name, skipped["check_id"]))
                else:
                    used.add((str(skipped["resource"]).rsplit(".", 1)[-1], skipped["check_id"]))
        for where, check_id in sorted(declared - used):
            result.problems.append(f"{label}: suppression of {check_id} in {where} matches no check; remove it")
    return result


# ---------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--azure", type=Path, default=DEFAULT_AZURE_DIR, help="folder with main.bicep")
    parser.add_argument("--sam", type=Path, default=DEFAULT_SAM_TEMPLATE, help="the SAM template")
    parser.add_argument("--only", choices=STEPS, action="append", help="run only this step (repeatable)")
    parser.add_argument("--cloud", choices=CLOUDS, action="append", help="check only this cloud's templates")
    args = parser.parse_args(argv)
    clouds = set(args.cloud or CLOUDS)
    azure_dir = args.azure if "azure" in clouds else None
    template = args.sam if "aws" in clouds else None

    runners: dict[str, Callable[[], StepResult]] = {
        "bicep": lambda: check_bicep(args.azure),
        "cfn-lint": lambda: check_cfn_lint(args.sam),
        "sam-refs": lambda: check_sam_references(args.sam),
        "iam": lambda: check_iam(args.sam),
        "checkov": lambda: check_checkov(azure_dir, template),
    }
    steps = [s for s in (args.only or STEPS) if s == "checkov" or STEP_CLOUD[s] in clouds]
    failed = []
    for step in steps:
        outcome = runners[step]()
        print(f"[{'ok' if outcome.ok else 'FAILED'}] {step}")
        for note in filter(None, outcome.notes):
            print(f"    {note}")
        for problem in outcome.problems:
            print(f"    ! {problem}")
        if not outcome.ok:
            failed.append(step)
    if failed:
        print(f"infra checks FAILED: {', '.join(failed)}")
        return 1
    print(f"infra checks: every step ok ({', '.join(steps)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
