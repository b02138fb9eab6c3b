"""Build the two deployables as docs/DEPLOY.md deploys them, and prove each runs from its own requirements.

    python infra/tools/package.py build [--out build]        build/functionapp.zip and build/lambda/
    python infra/tools/package.py verify [--out build]       install each into a clean venv and run it
    python infra/tools/package.py verify-functionapp ZIP     (one of them, on any copy: the tests break copies)
    python infra/tools/package.py verify-lambda DIR

build/functionapp.zip is the Function App project: function_app.py, host.json, requirements.txt,
functions/ and migration/, without caches (Flex Consumption installs requirements.txt at deploy time,
--build-remote). build/lambda/ is the CodeUri of every function in infra/aws/template.yaml:
aws_lambda/, migration/ and aws_lambda/requirements.txt as requirements.txt (sam build installs it).

verify installs each package's requirements.txt, and nothing else, into a virtual environment of the
runtime's Python (the Function App's from infra/azure, python3.12 for the Lambdas as the template
says), under build/venvs/ and reused while the requirements are unchanged. Then, in a child process
whose sys.path holds the package and that venv only (-I: no PYTHONPATH, no user site, not the repo):
- Function App: import every module of the package and build the composition root
  (functions.bootstrap.build_services) from production-like settings (FunctionSettings);
- Lambdas: import each handler the template names, in its own fresh process (a cold start), with the
  environment the template gives it, and report the import time.
A module missing from a package fails verify with the import error.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]
if str(REPO_ROOT) not in sys.path:  # run as a script
    sys.path.insert(0, str(REPO_ROOT))
FUNCTION_APP_FILES = ("function_app.py", "host.json", "requirements.txt")
FUNCTION_APP_PACKAGES = ("functions", "migration")
LAMBDA_PACKAGES = ("aws_lambda", "migration")
SAM_TEMPLATE = Path("infra") / "aws" / "template.yaml"
LAMBDA_PYTHON = "3.12"  # infra/aws/template.yaml Globals.Function.Runtime python3.12
SKIP_PARTS = {"__pycache__", ".mypy_cache", ".pytest_cache", ".ruff_cache"}
INSTALL_TIMEOUT_SECONDS = 900
RUN_TIMEOUT_SECONDS = 300

# Production-like Function App settings: the names infra/azure sets, with values of the right form.
SUBSCRIPTION = "00000000-0000-0000-0000-000000000000"
FUNCTION_APP_SETTINGS = {
    "ASR_SUBSCRIPTION_ID": SUBSCRIPTION,
    "ASR_RESOURCE_GROUP": "rg-asr",
    "ASR_VAULT_NAME": "rsv-aws2azure",
    "ASR_POLICY_NAME": "aws2azure-24h",
    "ASR_CACHE_STORAGE_ACCOUNT_ID": (
        f"/subscriptions/{SUBSCRIPTION}/resourceGroups/rg-aws2azure/providers/Microsoft.Storage/storageAccounts/a2acache"
    ),
    "TARGET_RESOURCE_GROUP_ID": f"/subscriptions/{SUBSCRIPTION}/resourceGroups/rg-migrated",
    "TARGET_NETWORK_ID": (
        f"/subscriptions/{SUBSCRIPTION}/resourceGroups/rg-migrated/providers/Microsoft.Network/virtualNetworks/vnet"
    ),
    "TARGET_DEFAULT_SUBNET": "workloads",
    "TARGET_DISK_TYPE": "Standard_LRS",
    "AZURE_HYBRID_BENEFIT": "false",
    "ALLOW_TEST_FAILOVER_IN_TARGET_NETWORK": "false",
    "STATE_STORAGE__tableServiceUri": "https://aws2azurestate.table.core.windows.net",
    "MIGRATION_QUEUE__queueServiceUri": "https://aws2azureintake.queue.core.windows.net",
    "AZURE_CLIENT_ID": "11111111-1111-1111-1111-111111111111",
}


class VerifyError(RuntimeError):
    """A package does not install or does not run from its own requirements; the message says why."""


# ---------------------------------------------------------------- build


def _files(root: Path, package: str) -> Iterator[Path]:
    for path in sorted((root / package).rglob("*")):
        relative = path.relative_to(root)
        if path.is_file() and not SKIP_PARTS & set(relative.parts) and path.suffix != ".pyc":
            yield relative


def build_function_app(out: Path, root: Path = REPO_ROOT) -> Path:
    target = out / "functionapp.zip"
    target.parent.mkdir(parents=True, exist_ok=True)
    members = [Path(name) for name in FUNCTION_APP_FILES]
    for package in FUNCTION_APP_PACKAGES:
        members += list(_files(root, package))
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as archive:
        for member in members:
            archive.write(root / member, member.as_posix())
    return target


def build_lambda(out: Path, root: Path = REPO_ROOT) -> Path:
    target = out / "lambda"
    shutil.rmtree(target, ignore_errors=True)
    for package in LAMBDA_PACKAGES:
        for member in _files(root, package):
            (target / member).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(root / member, target / member)
    (target / "aws_lambda" / "requirements.txt").rename(target / "requirements.txt")
    return target


def size_of(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


# ---------------------------------------------------------------- runtimes


def function_app_python_version(root: Path = REPO_ROOT) -> str:
    text = (root / "infra" / "azure" / "modules" / "function-app.bicep").read_text()
    match = re.search(r"^param pythonVersion string = '(\d+\.\d+)'", text, re.MULTILINE)
    if not match:
        raise SystemExit("infra/azure/modules/function-app.bicep declares no default pythonVersion")
    return match.group(1)


def find_python(version: str) -> Path:
    """An interpreter of this version: on PATH, else one pyenv installed."""
    candidates = [shutil.which(f"python{version}")]
    pyenv_root = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv"))
    candidates += [str(p) for p in sorted(pyenv_root.glob(f"versions/{version}.*/bin/python{version}"))]
    for candidate in filter(None, candidates):
        probe = subprocess.run(
            [candidate, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
            capture_output=True,
            text=True,
            check=False,
        )
        if probe.returncode == 0 and probe.stdout.strip() == version:
            return Path(candidate)
    raise SystemExit(f"no Python {version} on this machine (looked on PATH and under {pyenv_root}/versions)")


def clean_venv(requirements: Path, python: Path, venvs: Path) -> Path:
    """A venv with exactly these requirements installed; reused while they (and the Python) are the same."""
    digest = hashlib.sha256(requirements.read_bytes() + str(python).encode()).hexdigest()[:16]
    venv = venvs / f"{requirements.parent.name}-{digest}"
    stamp = venv / ".installed"
    if stamp.exists():
        return venv
    shutil.rmtree(venv, ignore_errors=True)
    venvs.mkdir(parents=True, exist_ok=True)
    subprocess.run([str(python), "-m", "venv", str(venv)], check=True)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    installed = subprocess.run(
        [*pip, "-r", str(requirements)], capture_output=True, text=True, timeout=INSTALL_TIMEOUT_SECONDS, check=False
    )
    if installed.returncode != 0:
        raise VerifyError(f"pip could not install {requirements}:\n{installed.stderr.strip()[-3000:]}")
    stamp.write_text(requirements.read_text())
    return venv


def run_isolated(venv: Path, package_dir: Path, code: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """code in the venv's Python, with only the package and the venv importable (the repo is not)."""
    prelude = (
        "import sys\n"
        f"sys.path.insert(0, {str(package_dir)!r})\n"
        f"assert not any(p.rstrip('/') == {str(REPO_ROOT)!r} for p in sys.path), sys.path\n"
    )
    base = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": os.environ.get("HOME", "/tmp")}
    return subprocess.run(
        [str(venv / "bin" / "python"), "-I", "-c", prelude + code],
        cwd=package_dir,
        env=base | env,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_SECONDS,
        check=False,
    )


# ---------------------------------------------------------------- verify

FUNCTION_APP_PROBE = """
import importlib, json, pkgutil, time
started = time.perf_counter()
modules = ["function_app"]
for package in ("functions", "migration"):
    root = importlib.import_module(package)
    modules.append(package)
    modules += [m.name for m in pkgutil.walk_packages(root.__path__, package + ".")]
for name in modules:
    importlib.import_module(name)
from functions.bootstrap import build_services
from functions.settings import FunctionSettings
services = build_services(FunctionSettings.from_environment())
# Each part of the composition root, built (the root builds them on first use).
built = {name: type(getattr(services, name)).__name__ for name in ("settings", "store", "asr", "clock", "steps")}
print(json.dumps({"modules": len(modules), "seconds": time.perf_counter() - started, "services": built}))
"""

LAMBDA_PROBE = """
import importlib, json, time
started = time.perf_counter()
module = importlib.import_module({module!r})
elapsed = time.perf_counter() - started
assert callable(getattr(module, {attribute!r}))
print(json.dumps({{"module": {module!r}, "seconds": elapsed}}))
"""


def _result(completed: subprocess.CompletedProcess[str], what: str) -> dict[str, Any]:
    if completed.returncode != 0:
        raise VerifyError(f"{what} failed (exit {completed.returncode}):\n{completed.stderr.strip()[-3000:]}")
    parsed: dict[str, Any] = json.loads(completed.stdout.strip().splitlines()[-1])
    return parsed


def verify_function_app(archive: Path, venvs: Path, state_storage: str, root: Path = REPO_ROOT) -> dict[str, Any]:
    """state_storage: a Table Storage connection string (Azurite's): build_services creates its tables."""
    python = find_python(function_app_python_version(root))
    with tempfile.TemporaryDirectory(prefix="aws2azure-functionapp-") as scratch:
        app = Path(scratch) / "app"
        with zipfile.ZipFile(archive) as bundle:
            bundle.extractall(app)
        venv = clean_venv(app / "requirements.txt", python, venvs)
        settings = {k: v for k, v in FUNCTION_APP_SETTINGS.items() if k != "STATE_STORAGE__tableServiceUri"}
        completed = run_isolated(venv, app, FUNCTION_APP_PROBE, settings | {"STATE_STORAGE": state_storage})
        return {"python": str(python), **_result(completed, f"the Function App from {archive.name}")}


def lambda_handlers(template: Path) -> dict[str, str]:
    """{logical id: handler} of every function in the SAM template."""
    from infra.tools.cfn_yaml import load_sam

    resources = load_sam(template).get("Resources") or {}
    return {
        name: str(resource["Properties"]["Handler"])
        for name, resource in resources.items()
        if resource.get("Type") == "AWS::Serverless::Function"
    }


def lambda_environment(template_path: Path) -> dict[str, str]:
    """Deploy-time values of the environment the template gives the functions (sample parameters)."""
    from infra.tools.cfn_yaml import load_sam
    from infra.tools.sam_translate import resolve

    template = load_sam(template_path)
    parameters = {
        "AzureQueueUrl": "https://aws2azureintake.queue.core.windows.net/migration-requests",
        "StatusApiUrl": "https://aws2azure-func.azurewebsites.net",
        "ApplianceCidr": "10.0.1.10/32",
        "ApplianceSecurityGroupId": "sg-0123456789abcdef0",
    }
    variables = dict(template["Globals"]["Function"]["Environment"]["Variables"])
    for resource in template["Resources"].values():
        if resource.get("Type") == "AWS::Serverless::Function":
            variables |= (resource["Properties"].get("Environment") or {}).get("Variables", {})
    resolved = resolve(variables, template, parameters)
    return {k: str(v) for k, v in resolved.items()} | {"AWS_DEFAULT_REGION": "eu-west-1"}


def verify_lambda(bundle: Path, venvs: Path, template: Path = REPO_ROOT / SAM_TEMPLATE) -> dict[str, Any]:
    python = find_python(LAMBDA_PYTHON)
    venv = clean_venv(bundle / "requirements.txt", python, venvs)
    env = lambda_environment(template)
    imports: dict[str, float] = {}
    for handler in sorted(set(lambda_handlers(template).values())):
        module, _, attribute = handler.rpartition(".")
        completed = run_isolated(venv, bundle, LAMBDA_PROBE.format(module=module, attribute=attribute), env)
        result = _result(completed, f"importing {handler} from {bundle.name}")
        imports[handler] = float(result["seconds"])
    return {"python": str(python), "cold_import_seconds": imports}


# ---------------------------------------------------------------- main


def _state_storage(args: argparse.Namespace) -> str:
    if not args.state_storage:
        raise VerifyError("the Function App check needs --state-storage (an Azurite connection string)")
    return str(args.state_storage)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=("build", "verify", "verify-functionapp", "verify-lambda", "lambda"))
    parser.add_argument("path", nargs="?", type=Path, help="the package to verify (verify-functionapp/-lambda)")
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "build")
    parser.add_argument(
        "--state-storage",
        default=os.environ.get("AWS2AZURE_STATE_STORAGE"),
        help="Table Storage connection string the composition root may create its tables in (Azurite's)",
    )
    parser.add_argument("--root", type=Path, default=REPO_ROOT, help="the checkout to package (default: this one)")
    args = parser.parse_args(argv)
    venvs = args.out / "venvs"
    try:
        if args.command == "lambda":  # infra/aws/stage.sh
            print(f"staged {build_lambda(args.out, args.root)}")
            return 0
        if args.command in ("build", "verify"):
            archive, bundle = build_function_app(args.out, args.root), build_lambda(args.out, args.root)
            print(f"{archive}: {size_of(archive)} bytes")
            print(f"{bundle}/: {size_of(bundle)} bytes (code; sam build adds the requirements)")
            if args.command == "build":
                return 0
            print(json.dumps({"lambda": verify_lambda(bundle, venvs, args.root / SAM_TEMPLATE)}, indent=2))
            app = verify_function_app(archive, venvs, _state_storage(args), args.root)
            print(json.dumps({"functionapp": app}, indent=2))
        elif args.command == "verify-functionapp":
            print(json.dumps(verify_function_app(args.path, venvs, _state_storage(args), args.root), indent=2))
        else:
            print(json.dumps(verify_lambda(args.path, venvs, args.root / SAM_TEMPLATE), indent=2))
    except VerifyError as exc:
        print(f"package check FAILED: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
