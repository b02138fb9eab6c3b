"""``make reliability``: the scenarios a cloud team worries about, each on a wave, reported as figures.

Writes ``reliability/results.json``; docs/RELIABILITY.md explains each scenario. ``--quick`` runs
smaller waves for CI; ``--check`` exits non-zero when a scenario's expectation fails.
"""

from __future__ import annotations

import argparse
import base64
import json
import threading
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
from azure.data.tables import TableServiceClient
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from bench.run import fresh_stack
from bench.wave import FINAL, Progress, WaveDriver
from devstack.asr_sim.contract import FaultRule
from devstack.launcher import Stack, http_answers
from devstack.settings import REPO_ROOT, StackSettings
from functions.adapters.table_store import TableStore
from migration.errors import PreconditionFailed
from migration.events import MigrationRequestedData
from migration.identity import InstanceRef
from migration.lifecycle import Phase
from migration.records import MigrationRecord
from tests.e2e.support import send_event

RESULTS = REPO_ROOT / "reliability" / "results.json"


def _writes_per_item(driver: WaveDriver) -> Counter[tuple[str, str]]:
    counted: Counter[tuple[str, str]] = Counter()
    for request in driver.sim.requests(limit=1_000_000):
        if request.kind == "write" and request.machine and request.status < 300:
            counted[(request.machine, request.operation)] += 1
    return counted


def _outcome(driver: WaveDriver, records: dict[str, dict[str, Any]]) -> dict[str, Any]:
    phases = Counter(str(r["phase"]) for r in records.values())
    lost = driver.count - len(records)
    stuck = sum(1 for r in records.values() if r["phase"] not in FINAL)
    unexplained = sum(1 for r in records.values() if r["phase"] == "Failed" and not r.get("reason"))
    writes = _writes_per_item(driver)
    stats = driver.sim.stats()
    return {
        "instances": driver.count,
        "phases": dict(phases),
        "lost": lost,
        "stuck": stuck,
        "failed_without_reason": unexplained,
        "duplicate_replications": sum(1 for (_, op), n in writes.items() if op.endswith("_Create") and n > 1),
        "duplicate_failovers": sum(1 for n in stats.failover_requests.values() if n > 1),
        "duplicate_writes": sum(1 for n in writes.values() if n > 1),
        "asr_429_served": stats.throttled_429,
        "asr_5xx_served": stats.server_errors_5xx,
    }


def _stack(root: Path) -> tuple[Stack, StackSettings]:
    stack = fresh_stack(root)
    return stack, stack.up()


def scenario_duplicates(count: int, root: Path) -> dict[str, Any]:
    """Every event delivered three times, and once more after the wave has finished."""
    stack, settings = _stack(root)
    try:
        driver = WaveDriver(settings, count)
        driver.seed()
        driver.request_all(copies=3)
        records = driver.run_to_the_end(copies=3)
        driver.request_all(copies=1)  # much later: the wave is done
        for instance in driver.instances:
            driver.cut_over(instance)
        time.sleep(5)
        records = driver.records()
        result = _outcome(driver, records)
        result["ok"] = (result["duplicate_replications"] == 0 and result["duplicate_failovers"] == 0
                        and result["phases"] == {"Migrated": count})  # fmt: skip
        return result
    finally:
        stack.down(quiet=True)


def scenario_hostile(count: int, root: Path) -> dict[str, Any]:
    """20% throttling, 5% 5xx, 5% failed ASR jobs, one stalled replication."""
    stack, settings = _stack(root)
    try:
        driver = WaveDriver(settings, count)
        driver.seed()
        stalled = driver.items[driver.instances[0]]
        driver.sim.set_faults(
            run=FaultRule(throttle_rate=0.2, throttle_retry_after_seconds=2, server_error_rate=0.05,
                          job_failure_rate=0.05),
            machines={stalled: FaultRule(stalled=True)},
            seed=5,
        )  # fmt: skip
        driver.request_all()
        records = driver.run_to_the_end()
        result = _outcome(driver, records)
        stalled_record = records.get(driver.migration_id(driver.instances[0]), {})
        result["stalled_reason"] = stalled_record.get("reason", "")
        stats = driver.sim.stats()
        result["job_restarts"] = dict(stats.job_restarts)
        result["failover_job_restarts"] = sum(stats.failover_restarts.values())
        result["failed_reasons"] = sorted(str(r.get("reason", "")) for r in records.values() if r["phase"] == "Failed")
        # Every machine but the stalled one migrates with no one's help; the stalled one fails with its reason.
        others = [r for i, r in records.items() if i != driver.migration_id(driver.instances[0])]
        migrated_others = sum(1 for r in others if r["phase"] == "Migrated")
        result["operator_actions"] = 0  # the scenario sends no retry, resume or approval: none is possible
        result["ok"] = (result["lost"] == 0 and result["stuck"] == 0 and result["failed_without_reason"] == 0
                        and result["duplicate_failovers"] == 0 and stalled_record.get("phase") == "Failed"
                        and "stalled" in result["stalled_reason"]
                        and migrated_others >= len(others) - len(others) // 100)  # fmt: skip
        return result
    finally:
        stack.down(quiet=True)


# Where a host SIGKILL lands: right after ASR accepted the operation of that step (the request log shows it), while
# the activity that sent it may not yet have recorded it, or its answer reached the orchestration.
KILL_POINTS: dict[str, str] = {
    "enable": "ReplicationProtectedItems_Create",
    "monitor": "ReplicationProtectedItems_Get",
    "failover": "ReplicationProtectedItems_UnplannedFailover",
    "commit": "ReplicationProtectedItems_FailoverCommit",
    "complete": "ReplicationProtectedItems_Delete",
}


def scenario_crashes(count: int, root: Path, kills_per_point: int = 3, *, strict: bool = True) -> dict[str, Any]:
    """The local Functions host SIGKILLed at five points of a migration (during enable, monitor, failover, commit,
    complete), ``kills_per_point`` times each, and restarted with the same state. Machines are requested and cut
    over one at a time, so each step happens once per machine and a kill can land in each."""
    stack, settings = _stack(root)
    assert settings.host is not None
    ping = f"{settings.host.base_url}/admin/host/ping"
    kills: Counter[str] = Counter()
    try:
        driver = WaveDriver(settings, count)
        driver.seed()
        seen = 0
        requested: list[str] = []
        pending: set[str] = set()

        def step() -> dict[str, dict[str, Any]] | None:
            nonlocal seen
            try:
                records = driver.records()
            except Exception:  # the host is restarting: look again
                return None
            phases = {i: str(records.get(driver.migration_id(i), {}).get("phase", "")) for i in driver.instances}
            previous_enabled = not requested or phases[requested[-1]] not in ("", "Requested", "EnablingReplication")
            if previous_enabled and len(requested) < count:
                instance = driver.instances[len(requested)]
                n = len(requested)
                data = {
                    "private_ip": driver.ip(n),
                    "os_family": "linux",
                    "wave": driver.wave,
                    "request_id": f"r-{n}",
                }
                send_event(driver.queue, "MigrationRequested", instance, data)
                requested.append(instance)
            moving = [i for i in driver.cutover_sent if phases[i] not in FINAL]
            waiting = [i for i in driver.instances if phases[i] == "AwaitingCutover" and i not in driver.cutover_sent]
            if not moving and waiting:
                driver.cut_over(waiting[0])
            page = driver.sim.request_page(since=seen, limit=100_000)
            seen = page.next_seq
            accepted = {r.operation for r in page.records if r.status < 300}
            # Points whose operation ASR accepted wait their turn: one kill per look, so two steps accepted in
            # the same look (a commit and the complete after it) each still get their kill.
            pending.update(point for point, operation in KILL_POINTS.items()
                           if operation in accepted and kills[point] < kills_per_point)  # fmt: skip
            for point in ("complete", "commit", "failover", "enable", "monitor"):  # the rarer requests first
                if point in pending:
                    pending.discard(point)
                    stack.kill("host")
                    stack.restart("host", lambda: http_answers(ping))
                    kills[point] += 1
                    seen = driver.sim.request_page(since=seen, limit=100_000).next_seq
                    break
            return {k: dict(v) for k, v in records.items()}

        records: dict[str, dict[str, Any]] = {}
        progress = Progress(driver.clock)  # a kill and restart moves records and the clock: progress, not a stall
        while progress.moving(records):
            latest = step()
            if latest is not None:
                records = latest
                if len(records) == count and all(r["phase"] in FINAL for r in records.values()):
                    break
            time.sleep(0.5)
        result = _outcome(driver, records)
        result["host_kills"] = dict(kills)
        planned = len(KILL_POINTS) * kills_per_point
        safe = (result["lost"] == 0 and result["stuck"] == 0 and result["failed_without_reason"] == 0
                and result["duplicate_writes"] == 0 and result["duplicate_failovers"] == 0
                and sum(kills.values()) == planned)  # fmt: skip
        result["all_migrated"] = result["phases"] == {"Migrated": count}
        result["failed_reasons"] = {k: r.get("reason") for k, r in records.items() if r["phase"] == "Failed"}
        # Issue 17's bar, all Migrated, in the full run and the quick CI run alike (docs/RELIABILITY.md, crash
        # findings); strict=False keeps the safety bar only (nothing lost, stuck, unexplained or written twice,
        # every kill landed), for a look at a run that is expected to fail some machines.
        result["ok"] = safe and (result["all_migrated"] or not strict)
        return result
    finally:
        stack.down(quiet=True)


def scenario_bad_input(examples: int, root: Path) -> dict[str, Any]:
    """Generated malformed queue messages and HTTP requests: nothing crashes, every refusal says why."""
    stack, settings = _stack(root)
    assert settings.host is not None
    try:
        driver = WaveDriver(settings, 0)
        base, key = f"{settings.host.base_url}/api", settings.host.master_key
        statuses: Counter[int] = Counter()
        silent = 0
        client = httpx.Client(timeout=30, headers={"x-functions-key": key})
        objects = st.dictionaries(st.text(max_size=20), st.text(max_size=40), max_size=6).map(json.dumps)
        junk = st.one_of(st.text(max_size=200), st.binary(max_size=200).map(lambda b: b.decode("latin-1")), objects)

        @hypothesis_settings(max_examples=examples, deadline=None, database=None,
                             suppress_health_check=list(HealthCheck))  # fmt: skip
        @given(body=junk, filter_value=st.text(max_size=80), identifier=st.text(max_size=80))
        def probe(body: str, filter_value: str, identifier: str) -> None:
            nonlocal silent
            raw = body.encode("utf-8", "surrogatepass")
            driver.queue.send_message(base64.b64encode(raw).decode())
            for response in (
                client.post(f"{base}/migrations", content=raw),
                client.get(f"{base}/migrations", params={"wave": filter_value, "phase": filter_value}),
                client.get(f"{base}/migrations/{quote(identifier, safe='') or 'x'}"),
                client.post(f"{base}/migrations/{quote(identifier, safe='') or 'x'}/cutover", content=raw),
            ):
                statuses[response.status_code] += 1
                if response.status_code >= 400 and response.status_code != 404 and "message" not in response.text:
                    silent += 1

        probe()
        time.sleep(5)
        records = list(driver.api.iter_migrations())
        return {
            "requests": sum(statuses.values()),
            "queue_messages": examples,
            "statuses": {str(k): v for k, v in sorted(statuses.items())},
            "server_errors": sum(v for k, v in statuses.items() if k >= 500),
            "rejections_without_message": silent,
            "migrations_created": len(records),
            "ok": sum(v for k, v in statuses.items() if k >= 500) == 0 and silent == 0 and not records,
        }
    finally:
        stack.down(quiet=True)


def scenario_concurrent_writers(updates: int, root: Path) -> dict[str, Any]:
    """Two updaters race on one record through the real store: no update may be lost."""
    stack, settings = _stack(root)
    try:
        assert settings.azurite is not None
        store = TableStore(TableServiceClient.from_connection_string(settings.azurite.connection_string))
        ref = InstanceRef(account_id="123456789012", region="eu-west-1", instance_id="i-0c0c0c0c0c0c0c0c0")
        now = datetime.now(UTC)
        request = MigrationRequestedData.model_validate(
            {"instance": ref, "request_id": "r", "private_ip": "10.0.0.1", "os_family": "linux"}
        )
        store.create(MigrationRecord(request=request, phase=Phase.REPLICATING, rpo_seconds=0, created_at=now,
                                     updated_at=now))  # fmt: skip
        conflicts = Counter[str]()

        def writer(name: str) -> None:
            for _ in range(updates):
                while True:
                    record = store.get(ref.migration_id)
                    record.rpo_seconds = (record.rpo_seconds or 0) + 1  # any counter field: each writer adds one
                    try:
                        store.update(record)
                        break
                    except PreconditionFailed:
                        conflicts[name] += 1

        threads = [threading.Thread(target=writer, args=(n,)) for n in ("a", "b")]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        final = store.get(ref.migration_id).rpo_seconds
        return {"updates": 2 * updates, "final_count": final, "lost_updates": 2 * updates - (final or 0),
                "conflicts_retried": sum(conflicts.values()), "ok": final == 2 * updates}  # fmt: skip
    finally:
        stack.down(quiet=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--check", action="store_true")
    parser.add_argument("--output", type=Path, default=RESULTS)
    parser.add_argument("--only", action="append", metavar="SCENARIO", help="run only this scenario (repeatable)")
    args = parser.parse_args()
    work = REPO_ROOT / ".state" / "reliability"
    wave = 6 if args.quick else 100
    results: dict[str, Any] = {"measured_at": datetime.now(UTC).isoformat(timespec="seconds"), "wave": wave}
    scenarios: list[tuple[str, Callable[[], dict[str, Any]]]] = [
        ("duplicates", lambda: scenario_duplicates(wave, work / "duplicates")),
        ("hostile", lambda: scenario_hostile(wave, work / "hostile")),
        # Machines go through the kill points one at a time (see scenario_crashes): a small wave suffices.
        ("crashes", lambda: scenario_crashes(4 if args.quick else 6, work / "crashes")),
        ("bad_input", lambda: scenario_bad_input(60 if args.quick else 300, work / "bad-input")),
        ("concurrent_writers", lambda: scenario_concurrent_writers(20 if args.quick else 100, work / "writers")),
    ]
    if args.only:
        unknown = set(args.only) - {name for name, _ in scenarios}
        if unknown:
            parser.error(
                f"unknown scenario(s) {', '.join(sorted(unknown))}; known: {', '.join(n for n, _ in scenarios)}"
            )
        scenarios = [(name, scenario) for name, scenario in scenarios if name in args.only]
    args.output.parent.mkdir(parents=True, exist_ok=True)
    for name, scenario in scenarios:
        try:
            results[name] = scenario()
        except Exception as exc:  # a scenario that breaks is a failed scenario, and the others still run
            results[name] = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
        args.output.write_text(json.dumps(results, indent=2) + "\n")  # after each: a long run keeps what it measured
    failed = [name for name, value in results.items() if isinstance(value, dict) and not value.get("ok")]
    for name, value in results.items():
        if isinstance(value, dict):
            print(f"{name:20} {'ok' if value.get('ok') else 'FAILED':7} {json.dumps(value)[:200]}")
    print(f"written to {args.output}")
    if args.check and failed:
        raise SystemExit(f"scenarios failed: {', '.join(failed)}")


if __name__ == "__main__":
    main()
