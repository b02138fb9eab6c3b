"""`make demo` runs again and again in one checkout (issue 19): each run on fresh state of its own.

A second demo used to find the first one's migrations in Azurite (kept across runs) while the ASR simulator
started empty, and hung. Here the demo runs twice in the same state folder, as `make demo` twice would,
and a kept stack that still runs is refused with a clear message instead of being mixed into a new run.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from devstack.launcher import Stack
from devstack.settings import REPO_ROOT

pytestmark = [pytest.mark.integration, pytest.mark.e2e]


def _demo(state_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "AWS2AZURE_STATE_DIR": str(state_dir)}
    command = [sys.executable, "-m", "aws2azure", "demo", "--instances", "4", "--json", "--timeout", "400", *args]
    return subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=600, check=False)


def test_the_demo_twice_in_one_checkout_both_succeed_and_leave_nothing_behind(tmp_path: Path) -> None:
    for run in (1, 2):
        result = _demo(tmp_path)
        assert result.returncode == 0, f"run {run}:\n{result.stdout[-2000:]}\n{result.stderr[-4000:]}"
        summary = json.loads(result.stdout.strip().splitlines()[-1])
        assert summary["instances"] == 4
        assert summary["migrated"] + summary["not_ready"] == 4, summary
    # Each run had a folder of its own, removed once it succeeded.
    assert not any((tmp_path / "runs").iterdir())
    assert not Stack(tmp_path).running()


def test_a_kept_stack_that_still_runs_is_refused_not_reused(tmp_path: Path) -> None:
    kept = Stack(tmp_path)
    kept.up(["azurite"], quiet=True)
    try:
        result = _demo(tmp_path, "--keep")
        assert result.returncode == 1
        assert "still running" in result.stderr
        assert "aws2azure stack down" in result.stderr
        assert kept.running() == {"azurite": kept.running()["azurite"]}  # untouched
    finally:
        kept.down(quiet=True)
