"""The artifact is the product: the Function App zip, built as docs/DEPLOY.md builds it, run on the local host.

The host puts the app's folder first on sys.path, so the packaged copies of function_app.py, functions/ and
migration/ are what runs, not the checkout's. A request on the queue ends Migrated; a package with a module
missing does not get that far. (tests/integration/package installs each package's requirements into a clean venv and
imports it with the repository off the path; this runs the whole path.)
"""

from __future__ import annotations

import os
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from devstack.asr_sim.control import SimulatorControl
from devstack.funchost.launch import APP_DIR_VARIABLE
from devstack.launcher import Stack, StackError
from devstack.settings import StackSettings
from infra.tools.package import build_function_app
from tests.e2e.support import api_of, intake_queue, phase_of, send_event, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.e2e]


def _unpacked(tmp: Path) -> Path:
    archive = build_function_app(tmp / "build")
    app = tmp / "app"
    with zipfile.ZipFile(archive) as zipped:
        zipped.extractall(app)
    return app


@pytest.fixture
def packaged_app(tmp_path: Path) -> Iterator[Path]:
    """The Function App zip, unpacked; the local host runs it instead of the checkout (AWS2AZURE_FUNCTION_APP)."""
    app = _unpacked(tmp_path)
    previous = os.environ.get(APP_DIR_VARIABLE)
    os.environ[APP_DIR_VARIABLE] = str(app)
    try:
        yield app
    finally:
        if previous is None:
            os.environ.pop(APP_DIR_VARIABLE, None)
        else:
            os.environ[APP_DIR_VARIABLE] = previous


@pytest.fixture
def packaged_stack(packaged_app: Path, tmp_path: Path) -> Iterator[tuple[Stack, StackSettings]]:
    stack = Stack(tmp_path / "stack")
    try:
        yield stack, stack.up()
    finally:
        stack.down(quiet=True)


def test_the_packaged_function_app_migrates_a_machine(packaged_stack: tuple[Stack, StackSettings]) -> None:
    _, settings = packaged_stack
    assert settings.asr is not None
    sim = SimulatorControl.from_endpoint(settings.asr)
    api, queue = api_of(settings), intake_queue(settings)
    instance = "i-0bac0000000000001"
    sim.seed_machine("10.73.0.10", "Linux", "Ubuntu 22.04 LTS", [32], friendly_name=instance)
    request = {"private_ip": "10.73.0.10", "os_family": "linux", "request_id": "r-package-1"}
    send_event(queue, "MigrationRequested", instance, request)
    wait_for(lambda: phase_of(api, instance) == "AwaitingCutover", timeout=300, what="AwaitingCutover")
    send_event(queue, "FailoverRequested", instance, {"requested_by": "schedule", "source_stopped": True})
    wait_for(lambda: phase_of(api, instance) == "Migrated", timeout=300, what="Migrated")


def test_a_package_missing_a_module_does_not_start(packaged_app: Path, tmp_path: Path) -> None:
    """The host runs the package's own modules: one missing is not borrowed from the checkout."""
    (packaged_app / "functions" / "step_runner.py").unlink()
    stack = Stack(tmp_path / "broken")
    with pytest.raises(StackError) as caught:
        stack.up()
    assert "No module named 'functions.step_runner'" in str(caught.value)
    assert not stack.running()
