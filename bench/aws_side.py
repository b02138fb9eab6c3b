"""The AWS side alone, at scale: N instances (1,000 by default) with one ``cutover-at``.

Every instance is requested through the intake Lambda (which creates its one-time cutover schedule), reported
AwaitingCutover (what status sync copies from Azure), then at ``cutover-at`` every schedule fires the cutover
Lambda, which stops its source and returns; the EC2 state-change events (devstack/ec2_events.py, since moto emits
none) fail each one over; finally every follow-up schedule fires at its bound and finds nothing left to report.
All on moto's server and Azurite, handlers in this process with their real settings.

Figures:
- ``aws_side_virtual_minutes_to_last_failover``: virtual time from ``cutover-at`` to the last FailoverRequested,
  with the virtual clock moved by each invocation's wall time, one invocation at a time. Lambda runs them in
  parallel, so this is an upper bound for this code (the old design, a 14-minute wait inside each invocation with
  10 reserved executions, would have needed hours).
- ``aws_side_lambda_invocations``: per function and in total, for the cutover from the first schedule to the last
  follow-up (intake's are counted apart).
- ``aws_side_longest_invocation_ms``: the longest single invocation (wall), per function.
Not a timed test: nothing asserts these figures.

    .venv/bin/python -m bench.aws_side [--instances 1000] [--output bench/results.json]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import shutil
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
from azure.storage.queue import QueueClient

from devstack.aws_local import QUEUE_NAME, SCHEDULER_GROUP, LocalLambdaContext, provision
from devstack.clock import FileClock, clock_environment
from devstack.ec2_events import Ec2StateChanges
from devstack.launcher import Stack
from devstack.settings import REPO_ROOT
from migration.events import FailoverRequested
from migration.tags import CUTOVER_AT, MIGRATE, STATUS
from tests.integration.aws.aws_test_support import AMI_UBUNTU, QueueReader

RESULTS = REPO_ROOT / "bench" / "results.json"
BATCH = 100  # RunInstances / CreateTags per call here (set-up only)


class Invoker:
    """Runs a handler as Lambda would (fresh context), times it and moves the virtual clock by its wall time."""

    def __init__(self, clock: FileClock) -> None:
        self.clock = clock
        self.count: Counter[str] = Counter()
        self.longest_ms: dict[str, float] = {}
        self.sink = io.StringIO()

    def __call__(self, module: Any, event: dict[str, Any], function: str) -> dict[str, Any]:
        began = time.perf_counter()
        with contextlib.redirect_stdout(self.sink):
            result: dict[str, Any] = module.lambda_handler(event, LocalLambdaContext(function))
        elapsed = time.perf_counter() - began
        self.sink.seek(0)
        self.sink.truncate()
        self.count[function] += 1
        self.longest_ms[function] = max(self.longest_ms.get(function, 0.0), elapsed * 1000)
        self.clock.advance_by(elapsed)
        return result


def _handlers(env: dict[str, str]) -> dict[str, Any]:
    import importlib
    import os
    import sys

    # Warnings and errors only: a thousand INFO lines per figure would drown the report.
    os.environ.update(env | {"POWERTOOLS_LOG_LEVEL": "WARNING"})
    modules = {}
    for name in ("intake", "cutover"):
        importlib.reload(importlib.import_module("aws_lambda.observability"))
        module_name = f"aws_lambda.handlers.{name}"
        module = importlib.reload(sys.modules[module_name]) if module_name in sys.modules else None
        modules[name] = module or importlib.import_module(module_name)
    return modules


def measure(instances: int = 1000, state_dir: Path | None = None) -> dict[str, Any]:
    root = state_dir or REPO_ROOT / ".state" / "bench" / "aws-side"
    shutil.rmtree(root, ignore_errors=True)
    stack = Stack(root)
    settings = stack.up(["moto", "azurite"], quiet=True)
    try:
        assert settings.moto is not None
        assert settings.azurite is not None
        side = provision(settings)
        clock = FileClock(settings.clock_file)
        handlers = _handlers(side.lambda_environment() | clock_environment(settings.clock_file))
        session = boto3.session.Session(aws_access_key_id="testing", aws_secret_access_key="testing",
                                        region_name=side.region)  # fmt: skip
        ec2 = session.client("ec2", endpoint_url=settings.moto.url)
        scheduler = session.client("scheduler", endpoint_url=settings.moto.url)
        group = ec2.create_security_group(GroupName="bench-workload", Description="bench", VpcId=side.vpc_id)["GroupId"]
        ids: list[str] = []
        for start in range(0, instances, BATCH):
            n = min(BATCH, instances - start)
            reservation = ec2.run_instances(ImageId=AMI_UBUNTU, MinCount=n, MaxCount=n, InstanceType="m5.large",
                                            SecurityGroupIds=[group])  # fmt: skip
            ids += [i["InstanceId"] for i in reservation["Instances"]]
        cutover_at = (clock.now() + timedelta(days=2)).replace(microsecond=0)
        stamp = cutover_at.strftime("%Y-%m-%dT%H:%M:%SZ")
        _tag(ec2, ids, {MIGRATE: "true", CUTOVER_AT: stamp})

        invoke = Invoker(clock)
        intake_began = time.monotonic()
        for instance_id in ids:
            outcome = invoke(handlers["intake"], _tag_change(side.account_id, side.region, instance_id, stamp),
                             "aws2azure-intake")  # fmt: skip
            if outcome["action"] != "requested":
                raise RuntimeError(f"intake did not request {instance_id}: {outcome}")
        intake_wall = time.monotonic() - intake_began
        intake_count, intake_longest = invoke.count.pop("aws2azure-intake"), invoke.longest_ms.pop("aws2azure-intake")
        _tag(ec2, ids, {STATUS: "AwaitingCutover"})  # what status sync copies from Azure by then

        def cutover(event: dict[str, Any]) -> object:
            return invoke(handlers["cutover"], event, "aws2azure-cutover")

        failovers: list[datetime] = []

        def on_event(event: dict[str, Any]) -> object:
            result = cutover(event)
            if isinstance(result, dict) and result.get("action") == "failover-requested":
                failovers.append(clock.now())
            return result

        watcher = Ec2StateChanges(ec2, account=side.account_id, region=side.region, deliver=on_event, clock=clock)
        watcher.poll()
        clock.advance_to(cutover_at)
        began_wall = time.monotonic()
        fired = _fire_due(scheduler, clock, cutover, after_each=BATCH, between=watcher.poll)
        watcher.poll()
        last_failover = max(failovers) if failovers else None
        # The follow-ups, at their bound: each finds its source failed over already.
        clock.advance_by(int(side.lambda_environment()["STOP_TIMEOUT_SECONDS"]) + 1)
        follow_ups = _fire_due(scheduler, clock, cutover)
        wall = time.monotonic() - began_wall

        states = Counter(
            i["State"]["Name"]
            for page in ec2.get_paginator("describe_instances").paginate(InstanceIds=ids)
            for r in page["Reservations"]
            for i in r["Instances"]
        )
        reader = QueueReader(QueueClient.from_connection_string(settings.azurite.connection_string, QUEUE_NAME))
        reader.drain()
        emitted = {e.subject for e in reader.seen if isinstance(e, FailoverRequested)}
        if states.get("stopped") != instances or len(emitted) != instances:
            raise RuntimeError(f"not every source stopped and failed over: {dict(states)}, {len(emitted)} failovers")
        minutes = (last_failover - cutover_at).total_seconds() / 60 if last_failover else None
        return {
            "aws_side_instances": instances,
            "aws_side_sources_stopped": states["stopped"],
            "aws_side_failover_requested": len(emitted),
            "aws_side_virtual_minutes_to_last_failover": round(minutes, 2) if minutes is not None else None,
            "aws_side_lambda_invocations": sum(invoke.count.values()),
            "aws_side_lambda_invocations_by_trigger": {
                "cutover_schedules": fired,
                "state_change_events": watcher.delivered,
                "stop_follow_ups": follow_ups,
            },
            "aws_side_longest_invocation_ms": round(max(invoke.longest_ms.values()), 1),
            "aws_side_cutover_wall_s": round(wall, 1),
            "aws_side_intake_invocations": intake_count,
            "aws_side_intake_longest_ms": round(intake_longest, 1),
            "aws_side_intake_wall_s": round(intake_wall, 1),
        }
    finally:
        stack.down(quiet=True)


def _tag(ec2: Any, ids: list[str], tags: dict[str, str]) -> None:
    for start in range(0, len(ids), BATCH):
        ec2.create_tags(Resources=ids[start : start + BATCH], Tags=[{"Key": k, "Value": v} for k, v in tags.items()])


def _tag_change(account: str, region: str, instance_id: str, cutover_at: str) -> dict[str, Any]:
    return {
        "version": "0",
        "id": f"bench-{instance_id}",
        "detail-type": "Tag Change on Resource",
        "source": "aws.tag",
        "account": account,
        "time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": region,
        "resources": [f"arn:aws:ec2:{region}:{account}:instance/{instance_id}"],
        "detail": {"changed-tag-keys": [MIGRATE, CUTOVER_AT], "service": "ec2", "resource-type": "instance",
                   "version": 1, "tags": {MIGRATE: "true", CUTOVER_AT: cutover_at}},
    }  # fmt: skip


def _fire_due(scheduler: Any, clock: FileClock, invoke: Callable[[dict[str, Any]], object], *, after_each: int = 0,
              between: Callable[[], object] | None = None) -> int:  # fmt: skip
    """EventBridge Scheduler, as moto cannot: every due one-time schedule invokes its target, then is deleted."""
    fired = 0
    names = [s["Name"] for page in scheduler.get_paginator("list_schedules").paginate(GroupName=SCHEDULER_GROUP)
             for s in page["Schedules"]]  # fmt: skip
    for name in names:
        schedule = scheduler.get_schedule(Name=name, GroupName=SCHEDULER_GROUP)
        when = datetime.fromisoformat(schedule["ScheduleExpression"][3:-1]).replace(tzinfo=UTC)
        if when > clock.now():
            continue
        invoke(json.loads(schedule["Target"]["Input"]))
        scheduler.delete_schedule(Name=name, GroupName=SCHEDULER_GROUP)
        fired += 1
        if between is not None and after_each and fired % after_each == 0:
            between()
    return fired


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--instances", type=int, default=1000)
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args()
    results = measure(args.instances)
    existing = json.loads(args.output.read_text()) if args.output.exists() else {}
    args.output.write_text(json.dumps(existing | results, indent=2) + "\n")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
