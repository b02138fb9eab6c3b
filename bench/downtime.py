"""Cutover downtime (issue 16): source stopped -> failover done, per machine, in virtual minutes.

Each machine's downtime is read from its record's timeline (migration/records.py ``CutoverTimeline``):
``failover_done_at - source_stopped_at``. Three paths, each on a fresh local stack:

- ``wave``: ``POST /api/waves/{wave}/cutover`` without ``source_stopped``. The wave marks "stop requested" on its
  members; this bench plays the AWS side at the process boundary: for each member whose timeline says stop
  requested it reports the source stopped (FailoverRequested ``{requested_by: wave, source_stopped: true}`` on the
  intake queue, the event's ``time`` = virtual stop time) once the virtual clock reaches
  ``stop_requested_at + stop duration``. Member k of n stops ``SOURCE_STOP_MIN * (k + 1) / n`` after the request:
  the last one ``SOURCE_STOP_MIN`` after it, the others spread evenly before.
- ``sequential``: the same on a host started with ``WAVE_SEQUENTIAL_PLANS=true`` (the old plan-after-plan path).
- ``schedule``: no wave cutover; each machine is cut over alone (FailoverRequested ``{requested_by: schedule,
  source_stopped: true}``, stopped "now") as soon as it awaits cutover, as ``bench/run.py``'s wave does.

``SOURCE_STOP_MIN`` is measured, not assumed: bench/aws_side.py, 1,000 instances with one ``cutover-at``, had the
last FailoverRequested (every source stopped and reported) 3.85 virtual minutes after ``cutover-at``
(``aws_side_virtual_minutes_to_last_failover`` in bench/results.json, 2026-11-26). ``failover_job_min`` is the
median of the simulator's failover jobs (``UnplannedFailover``, start -> end, read from ASR's job list) in the run.

The bench never moves the clock: the host jumps it to its next timer when idle. So a report can only be sent
once the clock has passed its stop time; how late (virtual) it went out is reported
(``source_stop_report_late_max_min_*``); a late report can add at most one wave poll (1 min) to that member.

    .venv/bin/python -m bench.downtime --vms 100 --path wave          # merges its keys into bench/results.json
    .venv/bin/python -m bench.downtime --vms 1000 --path sequential
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import statistics
import time
from collections.abc import Iterable, Iterator, Mapping
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Literal

from bench.wave import FINAL, Progress, WaveDriver
from devstack.launcher import Stack
from devstack.settings import REPO_ROOT, StackSettings
from tests.integration.asr_sim.support import make_client

RESULTS = REPO_ROOT / "bench" / "results.json"
CutoverPath = Literal["wave", "sequential", "schedule"]
PATHS: tuple[CutoverPath, ...] = ("wave", "sequential", "schedule")
# Measured by bench/aws_side.py (see the module docstring): every one of 1,000 sources stopped and reported.
SOURCE_STOP_MIN = 3.85
# The goals of issue 16.
GOAL_VS_STOP_AND_JOB = 1.25
GOAL_RATIO_1000_100 = 1.2


def percentile(values: Iterable[float], fraction: float) -> float:
    """Nearest rank, as bench/run.py's other percentiles."""
    ordered = sorted(values)
    if not ordered:
        raise ValueError("no values")
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def _at(value: object) -> datetime | None:
    return datetime.fromisoformat(value) if isinstance(value, str) else None


def _timeline(record: Mapping[str, Any]) -> Mapping[str, Any]:
    timeline = record.get("timeline")
    return timeline if isinstance(timeline, Mapping) else {}


def downtime_minutes(records: Iterable[Mapping[str, Any]]) -> list[float]:
    """failover_done_at - source_stopped_at of every record whose timeline has both, in minutes."""
    minutes = []
    for record in records:
        timeline = _timeline(record)
        stopped, done = _at(timeline.get("source_stopped_at")), _at(timeline.get("failover_done_at"))
        if stopped is not None and done is not None:
            minutes.append((done - stopped).total_seconds() / 60)
    return minutes


def wait_minutes(records: Iterable[Mapping[str, Any]]) -> list[float]:
    """The part of the downtime before the failover job: source_stopped_at -> failover_started_at, in minutes."""
    minutes = []
    for record in records:
        timeline = _timeline(record)
        stopped, started = _at(timeline.get("source_stopped_at")), _at(timeline.get("failover_started_at"))
        if stopped is not None and started is not None:
            minutes.append((started - stopped).total_seconds() / 60)
    return minutes


def summarize(tag: str, downtimes: list[float], waits: list[float]) -> dict[str, float]:
    return {
        f"cutover_downtime_p50_min_{tag}": round(percentile(downtimes, 0.5), 2),
        f"cutover_downtime_p99_min_{tag}": round(percentile(downtimes, 0.99), 2),
        f"cutover_downtime_max_min_{tag}": round(max(downtimes), 2),
        f"cutover_wait_p50_min_{tag}": round(percentile(waits, 0.5), 2),
        f"cutover_wait_p99_min_{tag}": round(percentile(waits, 0.99), 2),
    }


def failover_jobs_minutes(settings: StackSettings) -> list[float]:
    """Every succeeded failover job's start -> end in the simulator (one per plan, or one per machine)."""
    assert settings.asr is not None
    client = make_client(settings.asr)
    minutes = []
    for job in client.replication_jobs.list(settings.asr.resource_group, settings.asr.vault_name):
        props = job.properties
        if props is None or props.scenario_name != "UnplannedFailover" or props.state != "Succeeded":
            continue
        if props.start_time and props.end_time:
            minutes.append((props.end_time - props.start_time).total_seconds() / 60)
    return minutes


@contextlib.contextmanager
def app_setting(name: str, value: str | None) -> Iterator[None]:
    """The stack's services inherit this process's environment: an app setting for the host of one run."""
    before = os.environ.get(name)
    if value is not None:
        os.environ[name] = value
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = before


def _records(driver: WaveDriver) -> dict[str, dict[str, Any]]:
    """The wave's records, or none this time when the busy host does not answer in time (look again later)."""
    try:
        return driver.records()
    except Exception:  # a timeout or a 5xx of the local host under load
        return {}


def _wait_all(driver: WaveDriver, phases: set[str]) -> dict[str, dict[str, Any]]:
    progress = Progress(driver.clock)
    records: dict[str, dict[str, Any]] = {}
    while progress.moving(records):
        records = _records(driver) or records
        if len(records) == driver.count and all(r["phase"] in phases for r in records.values()):
            return records
        time.sleep(1.0)
    raise RuntimeError(f"not all {driver.count} in {sorted(phases)}: {sorted(r['phase'] for r in records.values())}")


def play_wave(driver: WaveDriver, stop_min: float) -> tuple[dict[str, dict[str, Any]], list[float]]:
    """Cut the wave over; stop each source ``stop_min * (k+1)/n`` after its stop request. Returns the final
    records and how late (virtual minutes) each report went out. Bounded by progress (``Progress``), not time."""
    _wait_all(driver, {"AwaitingCutover"})
    driver.api.cut_over_wave(driver.wave, source_stopped=False)
    index = {driver.migration_id(i): k for k, i in enumerate(driver.instances)}
    due: dict[str, datetime] = {}  # instance -> virtual time its source stops
    late: list[float] = []
    progress = Progress(driver.clock)
    records: dict[str, dict[str, Any]] = {}
    last_listing = 0.0
    while progress.moving(records):
        listing_every = 1.0 if len(due) < driver.count else 5.0
        if time.monotonic() - last_listing >= listing_every:
            records, last_listing = _records(driver) or records, time.monotonic()
            for mid, record in records.items():
                requested = _at(_timeline(record).get("stop_requested_at"))
                instance = driver.instances[index[mid]]
                if requested is not None and instance not in due and instance not in driver.cutover_sent:
                    fraction = (index[mid] + 1) / driver.count
                    due[instance] = requested + timedelta(minutes=stop_min * fraction)
            if len(records) == driver.count and all(r["phase"] in FINAL for r in records.values()):
                return records, late
        # Between listings, watch the virtual clock closely and report each stop as soon as it is due.
        until = time.monotonic() + listing_every
        while time.monotonic() < until:
            now = driver.clock.now()
            for instance, when in due.items():
                if when <= now and instance not in driver.cutover_sent:
                    driver.cut_over(instance, requested_by="wave", at=when)
                    late.append((now - when).total_seconds() / 60)
            time.sleep(0.02)
    raise RuntimeError(f"the wave stopped moving before it finished: {[r['phase'] for r in records.values()]}")


def measure(count: int, path: CutoverPath, state_dir: Path, *, stop_min: float = SOURCE_STOP_MIN) -> dict[str, Any]:
    """One path at ``count`` machines on a fresh stack: the downtime figures, tagged ``<path>_<count>``."""
    shutil.rmtree(state_dir, ignore_errors=True)
    stack = Stack(state_dir)
    with app_setting("WAVE_SEQUENTIAL_PLANS", "true" if path == "sequential" else None):
        settings = stack.up()
    try:
        driver = WaveDriver(settings, count, wave=f"downtime-{path}")
        driver.seed()
        began = time.monotonic()
        driver.request_all()
        late: list[float] = []
        if path == "schedule":
            records = driver.run_to_the_end()
        else:
            records, late = play_wave(driver, stop_min)
        wall = time.monotonic() - began
        phases = sorted({str(r["phase"]) for r in records.values()})
        if len(records) != count or phases != ["Migrated"]:
            raise RuntimeError(f"{path} {count}: not all migrated: {phases}")
        tag = {"wave": f"wave_{count}", "sequential": f"wave_{count}_sequential", "schedule": f"schedule_{count}"}[path]
        # Kept beside the stack's logs (not in the repository) to look into one machine's timeline afterwards.
        (state_dir / "records.json").write_text(json.dumps(list(records.values()), indent=1, default=str))
        downtimes = downtime_minutes(records.values())
        if len(downtimes) != count:
            raise RuntimeError(f"{path} {count}: {count - len(downtimes)} records lack a downtime on their timeline")
        jobs = failover_jobs_minutes(settings)
        figures: dict[str, Any] = summarize(tag, downtimes, wait_minutes(records.values())) | {
            f"failover_job_min_{tag}": round(statistics.median(jobs), 2),
            f"failover_job_max_min_{tag}": round(max(jobs), 2),
            f"failover_jobs_{tag}": len(jobs),
            f"downtime_wall_s_{tag}": round(wall, 1),
        }
        if path != "schedule":
            figures["source_stop_min"] = stop_min
            figures[f"source_stop_report_late_max_min_{tag}"] = round(max(late, default=0.0), 2)
        return figures
    finally:
        stack.down(quiet=True)


def derive(results: dict[str, Any]) -> dict[str, Any]:
    """The goal figures of issue 16 from what ``results`` holds (keys absent when their inputs are)."""
    derived: dict[str, Any] = {}
    for tag in ("wave_1000", "wave_100", "wave_10"):
        job = results.get(f"failover_job_min_{tag}")
        p99 = results.get(f"cutover_downtime_p99_min_{tag}")
        if job is not None and "failover_job_min" not in derived:
            derived["failover_job_min"] = job
        if job is not None and p99 is not None and "source_stop_min" in results:
            derived[f"cutover_downtime_goal_ratio_{tag}"] = round(p99 / (results["source_stop_min"] + job), 3)
    big, small = results.get("cutover_downtime_p99_min_wave_1000"), results.get("cutover_downtime_p99_min_wave_100")
    if big is not None and small:
        derived["cutover_downtime_ratio_wave_1000_100"] = round(big / small, 3)
    return derived


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--vms", type=int, default=100)
    parser.add_argument("--path", choices=PATHS, default="wave")
    parser.add_argument("--stop-min", type=float, default=SOURCE_STOP_MIN, help="the last source's stop (min)")
    parser.add_argument("--output", type=Path, default=RESULTS, help="results file to merge the keys into")
    args = parser.parse_args()
    figures = measure(args.vms, args.path, REPO_ROOT / ".state" / "bench" / f"downtime-{args.path}-{args.vms}",
                      stop_min=args.stop_min)  # fmt: skip
    results: dict[str, Any] = json.loads(args.output.read_text()) if args.output.exists() else {}
    results |= figures
    results |= derive(results)
    args.output.write_text(json.dumps(results, indent=2) + "\n")
    for key, value in figures.items():
        print(f"{key:48} {value}")
    for key, value in derive(results).items():
        print(f"{key:48} {value}")
    print(f"merged into {args.output}")


if __name__ == "__main__":
    main()
