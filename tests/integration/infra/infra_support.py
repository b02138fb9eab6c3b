"""Helpers for the infrastructure tests: the checker venv, the check script, template readers."""

from __future__ import annotations

import functools
import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from infra.tools.cfn_yaml import CfnLoader

REPO_ROOT = Path(__file__).resolve().parents[3]
CHECK_SCRIPT = REPO_ROOT / "infra" / "check.sh"
AZURE_DIR = REPO_ROOT / "infra" / "azure"
SAM_TEMPLATE = REPO_ROOT / "infra" / "aws" / "template.yaml"
# infra/check.sh honours AWS2AZURE_INFRA_VENV; so do the tests.
INFRA_VENV_PYTHON = Path(os.environ.get("AWS2AZURE_INFRA_VENV", REPO_ROOT / ".venv-infra")) / "bin" / "python"
BICEP_JSON_TOOL = REPO_ROOT / "infra" / "tools" / "bicep_json.py"
VENV_INSTALL_TIMEOUT_SECONDS = 900
CHECK_TIMEOUT_SECONDS = 180


@functools.cache
def ensure_infra_venv() -> str | None:
    """Create .venv-infra if needed (once per test run); return why it could not be, or None when ready."""
    try:
        completed = subprocess.run(
            [str(CHECK_SCRIPT), "--ensure-venv"],
            capture_output=True,
            text=True,
            timeout=VENV_INSTALL_TIMEOUT_SECONDS,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return f"creating .venv-infra took longer than {VENV_INSTALL_TIMEOUT_SECONDS} s"
    if completed.returncode != 0:
        return "infra/check.sh could not create .venv-infra: " + completed.stderr.strip()[-1500:]
    return None


def run_check(*args: str) -> subprocess.CompletedProcess[str]:
    """infra/check.sh with these arguments; stdout and stderr together in .stdout."""
    return subprocess.run(
        [str(CHECK_SCRIPT), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=CHECK_TIMEOUT_SECONDS,
        check=False,
    )


def parse_bicep(*paths: Path) -> dict[str, dict[str, Any]]:
    """pycep's parse of each file (run in .venv-infra), keyed by file name."""
    completed = subprocess.run(
        [str(INFRA_VENV_PYTHON), str(BICEP_JSON_TOOL), *map(str, paths)],
        capture_output=True,
        text=True,
        timeout=CHECK_TIMEOUT_SECONDS,
        check=True,
    )
    parsed: dict[str, dict[str, Any]] = json.loads(completed.stdout)
    return {Path(name).name: document for name, document in parsed.items()}


def load_sam_template(path: Path = SAM_TEMPLATE) -> dict[str, Any]:
    document: dict[str, Any] = yaml.load(path.read_text(), Loader=CfnLoader)
    return document


def iam_statements(role: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every statement of the role's policies; a conditional one (Fn::If) counts as each branch that is one."""
    for policy in role["Properties"].get("Policies", []):
        for statement in policy["PolicyDocument"]["Statement"]:
            if isinstance(statement, dict) and set(statement) == {"Fn::If"}:
                _, *branches = statement["Fn::If"]
                yield from (b for b in branches if isinstance(b, dict) and "Effect" in b)
            else:
                yield statement


def object_keys(value: Any) -> set[str]:
    """The keys of the object literals a pycep value builds, through union() and conditionals.

    pycep writes a function call as {"function": {...}}, an operator as {"operator": {...}}; any
    other mapping is an object literal, whose keys are returned (its values are not searched).
    """
    if isinstance(value, list):
        return set().union(*(object_keys(item) for item in value))
    if not isinstance(value, dict):
        return set()
    if "function" in value:
        return set().union(*(object_keys(arg) for arg in value["function"].get("parameters", {}).values()))
    if "operator" in value:
        operands = value["operator"].get("operands", {})
        return set().union(*(object_keys(arg) for name, arg in operands.items() if name != "condition"))
    return set(value)


SAM_TRANSLATE_TOOL = REPO_ROOT / "infra" / "tools" / "sam_translate.py"


@functools.cache
def translated_sam_template() -> dict[str, Any]:
    """infra/aws/template.yaml after the SAM transform (aws-sam-translator runs in .venv-infra only)."""
    completed = subprocess.run(
        [str(INFRA_VENV_PYTHON), str(SAM_TRANSLATE_TOOL), str(SAM_TEMPLATE)],
        capture_output=True,
        text=True,
        timeout=CHECK_TIMEOUT_SECONDS,
        check=True,
    )
    translated: dict[str, Any] = json.loads(completed.stdout)
    return translated
