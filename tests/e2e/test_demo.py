"""Issue 7: the demo, end to end, checked in all three places, and the status page as a person sees it."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import boto3
import pytest
from azure.data.tables import TableServiceClient
from rich.console import Console

from devstack.asr_sim.control import SimulatorControl
from devstack.demo.runner import LAMBDA_ENDPOINT_SETTING, DemoOptions, DemoResult, run_demo
from devstack.launcher import Stack
from devstack.settings import REPO_ROOT, StackSettings
from functions.adapters.table_store import TableStore
from migration import tags
from migration.lifecycle import Phase

pytestmark = [pytest.mark.integration, pytest.mark.e2e]
INSTANCES = 6
# The demo's deliberate NotReady examples: a paravirtual image, a security group that does not let the instance
# reach the appliance on 9443 (outbound), an instance that is no SSM managed node.
NOT_READY = 3
# The demo's deliberate rollback (docs/ROLLBACK.md): wave-a's first instance fails over to a VM that does not run.
ROLLED_BACK = 1
OUTPUT = REPO_ROOT / "test-output"


@dataclass
class DemoRun:
    state_dir: Path
    thread: threading.Thread | None = None
    result: DemoResult | None = None
    error: BaseException | None = None
    log: io.StringIO = field(default_factory=io.StringIO)
    lambda_endpoint_before: str | None = field(default_factory=lambda: os.environ.get(LAMBDA_ENDPOINT_SETTING))

    def settings(self, timeout: float = 120) -> StackSettings:
        deadline = time.monotonic() + timeout
        path = self.state_dir / "stack.json"
        while time.monotonic() < deadline:
            if path.exists():
                settings = StackSettings.load(path)
                if settings.host is not None:
                    return settings
            time.sleep(0.2)
        raise AssertionError("the demo's stack did not come up")

    def wait(self, timeout: float = 400) -> DemoResult:
        assert self.thread is not None
        self.thread.join(timeout)
        if self.error is not None:
            raise self.error
        assert self.result is not None, f"the demo did not finish in {timeout}s:\n{self.log.getvalue()[-3000:]}"
        return self.result


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DemoRun]:
    run = DemoRun(state_dir=tmp_path_factory.mktemp("demo"))
    options = DemoOptions(instances=INSTANCES, keep=True, live=False, state_dir=run.state_dir, timeout_s=300)

    def target() -> None:
        try:
            run.result = run_demo(options, Console(file=run.log, width=160))
        except BaseException as exc:  # reported by wait()
            run.error = exc

    run.thread = threading.Thread(target=target, name="demo", daemon=True)
    run.thread.start()
    yield run
    if run.thread.is_alive():
        run.thread.join(400)
    Stack(run.state_dir).down(quiet=True)


def _chromium() -> str | None:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found:
        return found
    # The test setup installs Debian's chromium when it is missing (it is not part of the venv).
    for command in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "chromium"]):
        try:
            subprocess.run(command, check=True, capture_output=True, timeout=600)
        except (OSError, subprocess.SubprocessError):
            return None
    return shutil.which("chromium")


CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--window-size=1400,1000",
]  # fmt: skip


def test_the_status_page_shows_the_wave_moving(demo: DemoRun, tmp_path: Path) -> None:
    chromium = _chromium()
    if chromium is None:
        pytest.skip("Debian's chromium could not be installed here")
    settings = demo.settings()
    assert settings.host is not None
    url = f"{settings.host.base_url}/api/status?code={settings.host.master_key}"
    dom = ""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        # Wait until some instances have crossed to Azure, so the page has a wave to show.
        dom = subprocess.run(
            [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}", "--dump-dom", url],
            capture_output=True, text=True, timeout=60, check=False,
        ).stdout  # fmt: skip
        if "wave-a" in dom and "wave-b" in dom:
            break
        time.sleep(1)
    assert "aws2azure migrations" in dom
    assert "wave-a" in dom
    assert "wave-b" in dom
    assert 'id="instances"' in dom
    assert "refreshes every 5 s" in dom
    OUTPUT.mkdir(exist_ok=True)
    screenshot = OUTPUT / "status-page.png"
    subprocess.run(
        [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile2'}", f"--screenshot={screenshot}", url],
        capture_output=True, timeout=60, check=True,
    )  # fmt: skip
    assert screenshot.stat().st_size > 10_000


def test_the_demo_ends_as_expected_in_tables_tags_and_asr(demo: DemoRun) -> None:
    result = demo.wait()
    assert result.unexpected == [], result.unexpected
    # The Lambda stand-in stopped with the demo: later code in this process must not be sent to it.
    assert os.environ.get(LAMBDA_ENDPOINT_SETTING) == demo.lambda_endpoint_before
    assert result.summary["migrated"] == INSTANCES - NOT_READY - ROLLED_BACK
    assert result.summary["not_ready"] == NOT_READY
    assert result.summary["rolled_back"] == ROLLED_BACK
    # Issue 15: every migrated machine's agent came through SSM and its install registered it with the appliance
    # (nothing was seeded into discovery); each schedule-driven stop came back as a state-change event.
    assert result.summary["ssm_installs"] == INSTANCES - NOT_READY
    assert result.summary["registered_by_install"] == INSTANCES - NOT_READY
    assert result.summary["state_change_events"] >= INSTANCES - NOT_READY
    settings = result.settings
    assert settings is not None
    assert settings.azurite is not None
    assert settings.moto is not None
    assert settings.asr is not None

    # Table Storage: every instance that crossed to Azure is Migrated, with its audit log, but the one whose VM did not
    # run: rolled back (never committed), its source running again in AWS.
    store = TableStore(TableServiceClient.from_connection_string(settings.azurite.connection_string))
    everything = store.list(page_size=100).items
    assert len(everything) == INSTANCES - NOT_READY
    rolled_back = [r for r in everything if r.phase is Phase.ROLLED_BACK]
    assert len(rolled_back) == ROLLED_BACK
    assert rolled_back[0].wave == "wave-a"
    assert "PowerState/stopped" in rolled_back[0].reason
    records = [r for r in everything if r.phase is not Phase.ROLLED_BACK]
    assert {r.phase for r in records} == {Phase.MIGRATED}
    for record in records:
        assert record.failover_requested_at is not None
        assert next(e.kind for e in store.list_events(record.migration_id)) == "MigrationRequested"
    by_plan = [r for r in records if r.cutover_plan]
    assert {r.wave for r in by_plan} == {"wave-b"}  # wave-b went over together, by recovery plan

    # Issue 16: wave-b was cut over with one request and no stop by a person. The wave asked for its members'
    # stops, status sync passed them to the cutover Lambda (an async Invoke), which stopped each source once; each
    # member failed over once (its recovery plan's failover) and committed once.
    wave_b = result.summary["wave_b"]
    members = wave_b["members"]
    assert members
    assert sorted(members) == sorted(r.instance.instance_id for r in by_plan)
    assert wave_b["stops"] == dict.fromkeys(members, 1)
    assert all(":wave-wave-b-" in wave_b["stop_marks"][m] for m in members), wave_b["stop_marks"]
    assert wave_b["failovers"] == dict.fromkeys(members, 1)
    assert wave_b["commits"] == dict.fromkeys(members, 1)
    assert wave_b["operator_stops"] == 0
    assert wave_b["migrated"] == len(members)
    assert result.summary["async_invocations"] >= 1

    # EC2 tags in moto: the status the AWS side wrote back.
    ec2 = boto3.client("ec2", endpoint_url=settings.moto.url, region_name=settings.moto.region,
                       aws_access_key_id="testing", aws_secret_access_key="testing")  # fmt: skip
    statuses: dict[str, tuple[str, str]] = {}
    for reservation in ec2.describe_instances()["Reservations"]:
        for instance in reservation["Instances"]:
            found = {t["Key"]: t["Value"] for t in instance.get("Tags", [])}
            statuses[instance["InstanceId"]] = (found.get(tags.STATUS, ""), found.get(tags.REASON, ""))
    assert (
        sorted(status for status, _ in statuses.values())
        == ["Migrated"] * (INSTANCES - NOT_READY - ROLLED_BACK)
        + ["NotReady"] * NOT_READY
        + ["RolledBack"] * ROLLED_BACK
    )
    back = ec2.describe_instances(InstanceIds=[rolled_back[0].instance.instance_id])["Reservations"][0]["Instances"][0]
    assert back["State"]["Name"] in ("pending", "running")  # status sync started the source again
    reasons = [reason for status, reason in statuses.values() if status == "NotReady"]
    assert any("paravirtual" in reason for reason in reasons)
    assert any("outbound TCP 9443" in reason for reason in reasons)
    assert any("SSM" in reason for reason in reasons)

    # The simulator: each machine failed over once, committed, and its migration completed.
    stats = SimulatorControl.from_endpoint(settings.asr).stats()
    assert sorted(stats.failovers_started.values()) == [1] * (INSTANCES - NOT_READY)
    assert all(count == 1 for count in stats.failover_requests.values())
    operations = stats.per_operation
    assert (
        operations.get("ReplicationProtectedItems_UnplannedFailover", 0)
        + operations.get("ReplicationRecoveryPlans_UnplannedFailover", 0)
        >= 2
    )
    # complete migration, and the rolled-back item's disable protection
    assert operations.get("ReplicationProtectedItems_Delete", 0) == INSTANCES - NOT_READY
    assert stats.commits_started.get(rolled_back[0].protected_item_name or "", 0) == 0
    assert operations.get("VirtualMachines_Delete", 0) == ROLLED_BACK
