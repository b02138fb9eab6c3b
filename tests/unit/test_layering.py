"""The layering contract: product code never imports the local stack, and the core no cloud SDK.

import-linter enforces it over the packages (pyproject's [tool.importlinter], run by `make lint`);
function_app.py is a module at the root, outside any package, so its imports are read here.
"""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FORBIDDEN_IN_PRODUCT = ("devstack", "aws2azure", "tests", "bench", "reliability")
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def _imported_roots(path: Path) -> set[str]:
    roots: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            roots.add(node.module.split(".")[0])
    return roots


def test_function_app_imports_only_product_packages() -> None:
    assert not _imported_roots(ROOT / "function_app.py") & set(FORBIDDEN_IN_PRODUCT)


def _lint_imports(tree: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    return subprocess.run(
        [str(LINT_IMPORTS), "--config", str(tree / "pyproject.toml"), "--no-cache"],
        cwd=tree, env=env, capture_output=True, text=True, check=False, timeout=300,
    )  # fmt: skip


@pytest.fixture(scope="module")
def product_copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tree = tmp_path_factory.mktemp("layering")
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for package in ("migration", "functions", "aws_lambda", "devstack", "aws2azure", "tests", "bench", "reliability"):
        shutil.copytree(ROOT / package, tree / package, ignore=ignore)
    shutil.copy(ROOT / "pyproject.toml", tree / "pyproject.toml")
    return tree


def test_contract_holds_on_the_repository(product_copy: Path) -> None:
    result = _lint_imports(product_copy)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("module", "forbidden"),
    [("functions/bootstrap.py", "devstack.clock"), ("migration/steps.py", "azure.core.exceptions"),
     ("aws_lambda/handlers/intake.py", "tests.fakes")],
)  # fmt: skip
def test_contract_fails_on_a_forbidden_import(product_copy: Path, module: str, forbidden: str) -> None:
    target = product_copy / module
    original = target.read_text(encoding="utf-8")
    try:
        target.write_text(original + f"\nimport {forbidden}  # added by the test\n", encoding="utf-8")
        result = _lint_imports(product_copy)
    finally:
        target.write_text(original, encoding="utf-8")
    assert result.returncode != 0
    assert "BROKEN" in result.stdout
    assert forbidden.split(".", maxsplit=1)[0] in result.stdout
