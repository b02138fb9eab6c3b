"""The two deployables, built by `make package`'s code, run from their own requirements in clean venvs.

infra/tools/package.py builds build/functionapp.zip and build/lambda/ as docs/DEPLOY.md deploys them,
then installs each package's requirements.txt (and nothing else) into a virtual environment of its
runtime's Python (the Function App's from infra/azure, 3.12 for the Lambdas) and runs it there with
the repository off sys.path: every Function App module imported and its composition root built from
production-like settings (its tables in Azurite), every Lambda handler imported in its own process.
A package missing a module, or requirements missing a library, fails.
"""

from __future__ import annotations

import shutil
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from devstack.launcher import Stack
from infra.tools.package import (
    REPO_ROOT,
    SAM_TEMPLATE,
    VerifyError,
    build_function_app,
    build_lambda,
    lambda_handlers,
    verify_function_app,
    verify_lambda,
)

pytestmark = pytest.mark.integration

# Shared by every run: each venv holds exactly one requirements file, keyed by its hash.
VENVS = REPO_ROOT / "build" / "venvs"


@pytest.fixture(scope="module")
def packages(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    out = tmp_path_factory.mktemp("package")
    return build_function_app(out), build_lambda(out)


@pytest.fixture(scope="module")
def state_storage(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    stack = Stack(tmp_path_factory.mktemp("package-stack"))
    settings = stack.up(["azurite"], quiet=True)
    try:
        assert settings.azurite is not None
        yield settings.azurite.connection_string
    finally:
        stack.down(quiet=True)


def test_function_app_package_holds_the_project_and_no_caches(packages: tuple[Path, Path]) -> None:
    archive, _ = packages
    names = zipfile.ZipFile(archive).namelist()

    assert {"function_app.py", "host.json", "requirements.txt"} <= set(names)
    assert any(n.startswith("functions/") for n in names)
    assert any(n.startswith("migration/") for n in names)
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]
    assert not [n for n in names if n.split("/")[0] in ("devstack", "aws_lambda", "tests", "aws2azure")]


def test_function_app_runs_from_its_own_requirements(packages: tuple[Path, Path], state_storage: str) -> None:
    archive, _ = packages

    result = verify_function_app(archive, VENVS, state_storage)

    assert int(str(result["modules"])) > 20, result
    assert result["services"]["steps"] == "MigrationSteps", result
    assert {"asr", "clock", "settings", "steps", "store"} <= set(result["services"]), result


def test_each_lambda_handler_imports_from_the_bundle(packages: tuple[Path, Path]) -> None:
    _, bundle = packages

    result = verify_lambda(bundle, VENVS)

    assert "3.12" in str(result["python"])
    assert set(result["cold_import_seconds"]) == set(lambda_handlers(REPO_ROOT / SAM_TEMPLATE).values())


def test_a_module_missing_from_the_function_app_package_fails(
    packages: tuple[Path, Path], state_storage: str, tmp_path: Path
) -> None:
    archive, _ = packages
    broken = tmp_path / "functionapp.zip"
    with zipfile.ZipFile(archive) as source, zipfile.ZipFile(broken, "w") as target:
        for item in source.infolist():
            if item.filename != "migration/tags.py":
                target.writestr(item, source.read(item))

    with pytest.raises(VerifyError, match=r"No module named 'migration\.tags'"):
        verify_function_app(broken, VENVS, state_storage)


def test_a_module_missing_from_the_lambda_bundle_fails(packages: tuple[Path, Path], tmp_path: Path) -> None:
    _, bundle = packages
    broken = tmp_path / "lambda"
    shutil.copytree(bundle, broken)
    (broken / "migration" / "tags.py").unlink()

    with pytest.raises(VerifyError, match=r"No module named 'migration\.tags'"):
        verify_lambda(broken, VENVS)


def test_a_library_missing_from_the_lambda_requirements_fails(packages: tuple[Path, Path], tmp_path: Path) -> None:
    _, bundle = packages
    broken = tmp_path / "lambda"
    shutil.copytree(bundle, broken)
    requirements = broken / "requirements.txt"
    lines = requirements.read_text().splitlines()
    requirements.write_text("\n".join(line for line in lines if not line.startswith("azure-storage-queue")) + "\n")

    with pytest.raises(VerifyError, match=r"No module named 'azure"):
        verify_lambda(broken, VENVS)
