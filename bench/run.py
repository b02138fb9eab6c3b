"""``make bench``: the figures a cloud team can check, measured in one run on the local stack.

Writes ``bench/results.json`` and prints a table. docs/PERFORMANCE.md explains each figure.
``--quick`` runs a reduced form (smaller waves, fewer records) for CI, to catch regressions.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from azure.data.tables import TableServiceClient

from bench import aws_side, downtime, intake_bench
from bench.wave import WaveDriver
from devstack.launcher import Stack
from devstack.replay import PendingActivity, Replay, orchestrator_handle
from devstack.settings import REPO_ROOT
from functions import names
from functions.adapters.table_store import TableStore
from functions.orchestrations import bp as orchestrations
from functions.settings import FunctionSettings
from migration.events import MigrationRequestedData
from migration.identity import InstanceRef
from migration.lifecycle import Phase, WorkflowState
from migration.records import MigrationRecord
from tests.e2e.support import ACCOUNT, REGION

RESULTS = REPO_ROOT / "bench" / "results.json"


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def fresh_stack(state_dir: Path) -> Stack:
    """A stack with no data left from an earlier run (Azurite keeps its tables on disk)."""
    shutil.rmtree(state_dir, ignore_errors=True)
    return Stack(state_dir)


def measure_wave(count: int, state_dir: Path) -> dict[str, Any]:
    """``count`` machines, three days of initial replication each, from the queue to Migrated."""
    stack = fresh_stack(state_dir)
    settings = stack.up()
    try:
        assert settings.host is not None
        driver = WaveDriver(settings, count)
        driver.seed()
        started = time.monotonic()
        driver.request_all()
        records = driver.run_to_the_end()
        wall = time.monotonic() - started
        if len(records) != count or any(r["phase"] != "Migrated" for r in records.values()):
            raise RuntimeError(f"the benchmark wave did not all migrate: {[r['phase'] for r in records.values()]}")
        # Each machine cut over alone (the per-instance schedule path): its downtime, from the timelines.
        downtimes = downtime.downtime_minutes(records.values())
        if len(downtimes) != count:
            raise RuntimeError(f"{count - len(downtimes)} records lack a downtime on their timeline")
        jobs = downtime.failover_jobs_minutes(settings)
        schedule = downtime.summarize(f"schedule_{count}", downtimes, downtime.wait_minutes(records.values()))
        schedule[f"failover_job_min_schedule_{count}"] = round(statistics.median(jobs), 2)
        stats = driver.sim.stats()
        host = httpx.get(f"{settings.host.base_url}/admin/host/status",
                         headers={"x-functions-key": settings.host.master_key}, timeout=30).json()  # fmt: skip
        return {
            "vms": count,
            "wall_s": round(wall, 1),
            "asr_requests_per_vm": round(stats.total_requests / count, 1),
            "asr_writes_per_vm": round(stats.writes / count, 2),
            "asr_requests_by_operation": stats.per_operation,
            "peak_asr_writes_per_s": stats.peak_writes_per_second(),
            "max_history_events": host["durable"].get(f"max_history_events:{names.MIGRATE_INSTANCE}", 0),
            "failovers_started_max": max(stats.failovers_started.values(), default=0),
            "downtime": schedule,
        }
    finally:
        stack.down(quiet=True)


def measure_replay(days: int = 7) -> dict[str, float]:
    """Orchestrator replay time per episode early and late in a ``days``-long replication."""
    handle = orchestrator_handle(orchestrations, names.MIGRATE_INSTANCE)
    start = datetime(2026, 11, 26, tzinfo=UTC)
    request = {"instance": {"account_id": ACCOUNT, "region": REGION, "instance_id": "i-0be0000000000001"},
               "private_ip": "10.0.0.1", "os_family": "linux", "request_id": "r"}  # fmt: skip
    # A faster poll than production (5 min to 30 min), so a 7-day replication has hundreds of steps to time.
    bounds = {"poll_floor_seconds": 300, "poll_ceiling_seconds": 1800}
    state = WorkflowState.model_validate({"request": request, **bounds}).model_dump(mode="json")
    span = timedelta(days=days)

    def respond(activity: PendingActivity, replay: Replay) -> dict[str, Any]:
        progress = min(100, int((replay.now - start) / span * 100))
        value: dict[str, Any] = {}
        if activity.name.startswith("start_"):
            value = {"job_id": f"job-{activity.name}", "protected_item_name": "item"}
        elif activity.name == "get_job":
            value = {"job_id": activity.input["job_id"], "state": "Succeeded"}
        elif activity.name == "observe_replication":
            value = {"protection_state": "x", "replication_health": "Normal", "progress_percent": progress,
                     "ready_for_cutover": progress >= 100, "failed_over": False, "health_errors": []}  # fmt: skip
        elif activity.name == "validate_failover":  # the validation gate: the failed-over VM runs
            value = {"vm_id": "vm", "provisioning_state": "succeeded", "power_state": "running",
                     "agent_status": "Ready", "verdict": "passed"}  # fmt: skip
        elif activity.name == "register":
            value = {"migration_id": "m", "phase": "Requested", "new_request": True}
        return {"ok": True, "value": value}

    timings: list[tuple[datetime, float]] = []
    replay = Replay(handle, state, start)
    original = replay.handle

    def timed(context: str) -> str:
        began = time.perf_counter()
        result = original(context)
        timings.append((replay.now, (time.perf_counter() - began) * 1000))
        return result

    replay.handle = timed
    cutover = {"instance": request["instance"], "requested_by": "schedule", "source_stopped": True}
    sent: list[bool] = []

    def cut_over_when_ready(run: Replay) -> None:
        if not sent and run.custom_status and run.custom_status.get("stage") == "await_cutover":
            sent.append(True)
            run.raise_event(names.EVENT_FAILOVER_REQUESTED, cutover)

    replay.run(respond, max_episodes=20_000, before_episode=cut_over_when_ready)
    day1 = [ms for at, ms in timings if at - start <= timedelta(days=1)]
    last = [ms for at, ms in timings if at - start >= span - timedelta(days=1)]
    return {
        "replay_ms_day1": round(statistics.median(day1), 3),
        "replay_ms_day7": round(statistics.median(last), 3),
        "replay_episodes": len(timings),
        "replay_max_history_events": replay.max_history,
        "replay_executions": replay.executions,
    }


def measure_status_api(records: int, state_dir: Path) -> dict[str, Any]:
    """The HTTP API with ``records`` migrations stored: point reads and wave listings."""
    stack = fresh_stack(state_dir)
    settings = stack.up(["azurite", "moto", "asr", "host"])
    try:
        assert settings.azurite is not None
        assert settings.host is not None
        service = TableServiceClient.from_connection_string(settings.azurite.connection_string)
        store = TableStore(service)
        now = datetime.now(UTC)
        waves = max(1, records // 100)
        ids = []
        for n in range(records):
            ref = InstanceRef(account_id=ACCOUNT, region=REGION, instance_id=f"i-{0xA000000 + n:017x}")
            request = MigrationRequestedData.model_validate({
                "instance": ref, "request_id": f"r-{n}", "private_ip": "10.0.0.1", "os_family": "linux",
                "wave": f"wave-{n % waves:04d}",
            })  # fmt: skip
            store.create(MigrationRecord(request=request, phase=Phase.REPLICATING, progress_percent=n % 100,
                                         created_at=now, updated_at=now))  # fmt: skip
            ids.append(ref.migration_id)
        headers = {"x-functions-key": settings.host.master_key}
        base = f"{settings.host.base_url}/api"
        with httpx.Client(timeout=30) as client:
            get_ms, list_ms = [], []
            for n in range(200):
                began = time.perf_counter()
                client.get(f"{base}/migrations/{ids[(n * 37) % len(ids)]}", headers=headers).raise_for_status()
                get_ms.append((time.perf_counter() - began) * 1000)
            for n in range(50):
                began = time.perf_counter()
                client.get(f"{base}/migrations", params={"wave": f"wave-{n % waves:04d}"},
                           headers=headers).raise_for_status()  # fmt: skip
                list_ms.append((time.perf_counter() - began) * 1000)
        # The same reads in process, to count the queries that are neither point nor single-partition.
        probe = TableStore.counted(settings.azurite.connection_string)
        probe.get(ids[0])
        probe.list(wave="wave-0000")
        probe.list()
        return {
            "records": records,
            "status_get_p99_ms": round(_percentile(get_ms, 0.99), 1),
            "status_list_wave_p99_ms": round(_percentile(list_ms, 0.99), 1),
            "table_scans": probe.table_scans,
        }
    finally:
        stack.down(quiet=True)


# The app-wide ARM write budget (functions/adapters/write_budget.py): a token bucket, so one second may carry
# the whole bucket plus that second's refill, never more (ARM's own bucket: 200, refilled 10/s).
_BUDGET = FunctionSettings.model_fields
WRITE_BUDGET_ONE_SECOND = int(
    _BUDGET["asr_write_budget_capacity"].default + _BUDGET["asr_write_budget_per_second"].default
)
# Goals on counts: the same on any machine, checked by `make test` (bench --quick --check).
COUNT_GOALS = {
    "asr_requests_per_vm": ("<=", 40), "asr_writes_per_vm": ("<=", 8), "max_history_events": ("<=", 300),
    "peak_asr_writes_per_s": ("<=", WRITE_BUDGET_ONE_SECOND), "table_scans": ("<=", 0),
}  # fmt: skip
# Goals on cutover downtime (issue 16), in virtual minutes: the wave's p99 against the source's stop plus the
# failover job, and the wave of 1,000 against the wave of 100. Reported always; the quick form's is checked by
# `make test` too (see bench/downtime.py and docs/PERFORMANCE.md on how far it is machine-independent).
DOWNTIME_GOALS = {
    "cutover_downtime_goal_ratio_wave_1000": ("<=", downtime.GOAL_VS_STOP_AND_JOB),
    "cutover_downtime_goal_ratio_wave_100": ("<=", downtime.GOAL_VS_STOP_AND_JOB),
    "cutover_downtime_goal_ratio_wave_10": ("<=", downtime.GOAL_VS_STOP_AND_JOB),
    "cutover_downtime_ratio_wave_1000_100": ("<=", downtime.GOAL_RATIO_1000_100),
}
# Goals on time: they depend on the machine, so they are reported always and checked only on request
# (--check-times, for `make bench` on a quiet machine), never in CI.
TIME_GOALS = {
    "replay_ratio_day7_day1": ("<", 1.2), "wave_wall_s_1000": ("<", 120), "wave_ratio_1000_100": ("<", 12),
    "status_get_p99_ms": ("<", 20), "status_list_wave_p99_ms": ("<", 200),
}  # fmt: skip
GOALS = COUNT_GOALS | DOWNTIME_GOALS | TIME_GOALS


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="the reduced form CI runs")
    parser.add_argument("--output", type=Path, default=RESULTS)
    parser.add_argument("--check", action="store_true", help="exit non-zero when a goal on counts is missed (CI)")
    parser.add_argument("--check-times", action="store_true", help="also when a goal on time is missed")
    args = parser.parse_args()
    work = REPO_ROOT / ".state" / "bench"
    small, big, records = (10, 0, 500) if args.quick else (100, 1000, 10_000)

    results: dict[str, Any] = {"measured_at": datetime.now(UTC).isoformat(timespec="seconds"), "quick": args.quick}
    wave = measure_wave(small, work / "wave-small")
    results |= {
        "asr_requests_per_vm": wave["asr_requests_per_vm"], "asr_writes_per_vm": wave["asr_writes_per_vm"],
        "max_history_events": wave["max_history_events"], "peak_asr_writes_per_s": wave["peak_asr_writes_per_s"],
        f"wave_wall_s_{small}": wave["wall_s"], "asr_requests_by_operation": wave["asr_requests_by_operation"],
    }  # fmt: skip
    results |= wave["downtime"]
    if big:
        large = measure_wave(big, work / "wave-big")
        results[f"wave_wall_s_{big}"] = large["wall_s"]
        results["wave_ratio_1000_100"] = round(large["wall_s"] / wave["wall_s"], 2)
        results["max_history_events"] = max(results["max_history_events"], large["max_history_events"])
        results["peak_asr_writes_per_s"] = max(results["peak_asr_writes_per_s"], large["peak_asr_writes_per_s"])
        results |= large["downtime"]
    # Cutover downtime on the wave path (bench/downtime.py): the bench stops each source as the AWS side would.
    paths: list[tuple[int, downtime.CutoverPath]] = [(10, "wave")]
    if not args.quick:
        paths = [(small, "wave"), (big, "wave"), (big, "sequential")]
    for count, path in paths:
        results |= downtime.measure(count, path, work / f"downtime-{path}-{count}")
    results |= downtime.derive(results)
    replay = measure_replay()
    results |= replay
    results["replay_ratio_day7_day1"] = round(replay["replay_ms_day7"] / replay["replay_ms_day1"], 2)
    results |= measure_status_api(records, work / "status")
    intake = intake_bench.run(events=20 if args.quick else 50, repeats=2 if args.quick else 5)
    results["intake_p50_ms"] = intake["intake_p50_ms"]
    results["intake_cold_import_ms"] = intake["intake_cold_import_ms"]
    # The AWS side alone: every source of one cutover-at stopped and failed over (bench/aws_side.py).
    results |= aws_side.measure(100 if args.quick else 1000, work / "aws-side")

    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=2) + "\n")
    print(f"{'figure':32} {'value':>12}  goal")
    missed = []
    for key, value in results.items():
        if isinstance(value, dict):
            continue
        goal = GOALS.get(key)
        verdict = ""
        if goal is not None and isinstance(value, int | float):
            met = value <= goal[1] if goal[0] == "<=" else value < goal[1]
            verdict = f"{goal[0]} {goal[1]}  {'met' if met else 'MISSED'}"
            if not met and (key in COUNT_GOALS or key in DOWNTIME_GOALS or args.check_times):
                missed.append(key)
        print(f"{key:32} {value!s:>12}  {verdict}")
    print(f"written to {args.output}")
    if args.check and missed:
        raise SystemExit(f"goals missed: {', '.join(missed)}")


if __name__ == "__main__":
    main()
