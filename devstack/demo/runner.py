"""Run a migration wave through the whole path on the local stack.

The AWS side runs in this process the way Lambda runs it (the real handlers, a Lambda context,
settings from the environment); EventBridge's Tag Change and EC2 state-change events and Scheduler's
one-time invocations are emitted here, since moto produces none. The Lambdas' asynchronous invocations of
each other (status sync -> cutover, with a wave's stops) go through real boto3 to the Lambda Invoke stand-in
(devstack/lambda_invoke.py), whose queue is delivered to the named handler here, as Lambda's async queue would.
The Mobility service is installed by intake through SSM (the SSM stand-in, which plays the appliance and
registers the machine with the ASR simulator's discovery). Everything else is the real thing: the queue, the
Function App on the local host, the ASR simulator, Table Storage, EC2 tags.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import re
import shutil
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any, Literal, TextIO

import boto3
from rich.console import Console, Group
from rich.live import Live
from rich.table import Table

from aws2azure.api_client import ApiTarget, MigrationApi
from devstack.asr_sim.contract import FaultRule
from devstack.asr_sim.control import SimulatorControl
from devstack.aws_local import CUTOVER_FUNCTION, INTAKE_FUNCTION, SCHEDULER_GROUP, LocalLambdaContext, provision
from devstack.clock import FileClock, clock_environment
from devstack.demo.fleet import DemoInstance, build_fleet, tag_change_event
from devstack.ec2_events import Ec2StateChanges
from devstack.lambda_invoke import LambdaInvokeStandIn
from devstack.launcher import Stack
from devstack.settings import StackSettings, state_dir
from devstack.ssm_sim.control import SsmSimControl
from devstack.webhook_receiver import ReceiverClient, drain
from migration import tags as tag_keys

if TYPE_CHECKING:
    from mypy_boto3_ec2 import EC2Client
    from mypy_boto3_scheduler import EventBridgeSchedulerClient

FaultProfile = Literal["none", "flaky", "hostile"]
WAVES = ("wave-a", "wave-b")  # wave-a: cut over by its schedule; wave-b: by an operator, together
ASYNC_ATTEMPTS = 3  # Lambda runs a failed asynchronous invocation twice more
FINAL = frozenset({"Migrated", "Failed", "Cancelled", "NotReady", "RolledBack"})
AT_EXPRESSION = re.compile(r"^at\((?P<when>[0-9T:-]+)\)$")


@dataclass
class DemoOptions:
    instances: int = 20
    faults: FaultProfile = "none"
    keep: bool = False
    json_summary: bool = False
    state_dir: Path | None = None
    timeout_s: float = 600.0
    live: bool = True


@dataclass
class DemoResult:
    summary: dict[str, Any]
    unexpected: list[str] = field(default_factory=list)
    settings: StackSettings | None = None


def apply_faults(sim: SimulatorControl, profile: FaultProfile, fleet: list[DemoInstance]) -> None:
    if profile == "none":
        return
    if profile == "flaky":
        sim.set_faults(run=FaultRule(throttle_rate=0.1, throttle_retry_after_seconds=2, server_error_rate=0.03), seed=7)
        return
    stalled = next(i for i in fleet if i.expected == "Migrated")
    sim.set_faults(
        run=FaultRule(throttle_rate=0.2, throttle_retry_after_seconds=2, server_error_rate=0.05, job_failure_rate=0.05),
        machines={stalled.private_ip: FaultRule(stalled=True)},
        seed=11,
    )


def demo_stack_root(options: DemoOptions) -> tuple[Path, bool]:
    """Where this run's stack lives, and whether to remove it afterwards.

    A kept stack (``--keep``) lives in the usual state folder, where ``aws2azure status`` finds it; any
    other run gets a folder of its own, so runs never share data and a kept stack is never disturbed."""
    if options.keep or options.state_dir is not None:
        return (options.state_dir or state_dir()).resolve(), False
    run = f"demo-{datetime.now(UTC):%Y%m%dT%H%M%S}-{os.getpid()}"
    return (state_dir() / "runs" / run).resolve(), True


# botocore's service-specific endpoint setting: only the Lambdas' Lambda client goes to the Invoke stand-in.
LAMBDA_ENDPOINT_SETTING = "AWS_ENDPOINT_URL_LAMBDA"


class AwsSide:
    """The Lambdas, invoked in-process with their real settings and a Lambda context.

    Their structured logs and EMF metrics (stdout, as in Lambda) go to ``log`` so the live view stays legible.
    """

    def __init__(self, environment: dict[str, str], log: TextIO) -> None:
        os.environ.update(environment)
        self.log = log
        self.invocations: Counter[str] = Counter()
        with contextlib.redirect_stdout(log):
            self.intake = self._cold_start("intake")
            self.cutover = self._cold_start("cutover")
            self.status_sync = self._cold_start("status_sync")
        self.by_function = {INTAKE_FUNCTION: self.intake, CUTOVER_FUNCTION: self.cutover}
        self.async_attempts: Counter[str] = Counter()
        self.async_dropped: list[str] = []

    @staticmethod
    def _cold_start(name: str) -> ModuleType:
        """Import the handler as a new Lambda container would: its settings are read from this environment."""
        importlib.reload(importlib.import_module("aws_lambda.observability"))
        module_name = f"aws_lambda.handlers.{name}"
        if module_name in sys.modules:
            return importlib.reload(sys.modules[module_name])
        return importlib.import_module(module_name)

    def invoke(self, module: ModuleType, event: dict[str, Any], function: str) -> dict[str, Any]:
        self.invocations[function] += 1
        with contextlib.redirect_stdout(self.log):
            result: dict[str, Any] = module.lambda_handler(event, LocalLambdaContext(function))
        return result

    def deliver_async(self, lambdas: LambdaInvokeStandIn) -> None:
        """Lambda's async queue: each accepted Event invocation runs its function; a failed run is retried."""
        for invocation in lambdas.drain():
            try:
                self.invoke(self.by_function[invocation.function_name], invocation.event(), invocation.function_name)
            except Exception as exc:
                self.async_attempts[invocation.request_id] += 1
                if self.async_attempts[invocation.request_id] < ASYNC_ATTEMPTS:
                    lambdas.requeue(invocation)
                else:  # Lambda would hand it to the function's on-failure destination
                    self.async_dropped.append(f"{invocation.function_name} {invocation.request_id}: {exc}")


class Demo:
    def __init__(self, options: DemoOptions, console: Console) -> None:
        self.options = options
        self.console = console
        self.stack_root, self.remove_after = demo_stack_root(options)
        self.stack = Stack(self.stack_root)
        self.fired_schedules: set[str] = set()
        self.wave_b_cut = False
        self.tag_versions: Counter[str] = Counter()
        self.lambdas: LambdaInvokeStandIn | None = None

    def run(self) -> DemoResult:
        started = time.monotonic()
        # Every run starts from nothing: Azurite's data or a clock left by an earlier run would mix old
        # migrations (whose ASR items died with that run's simulator) into this one.
        self.stack.reset()
        self.console.print("starting the local stack (Azurite, moto, ASR simulator, SSM stand-in, Functions host)...")
        settings = self.stack.up()
        succeeded = False
        lambda_endpoint = os.environ.get(LAMBDA_ENDPOINT_SETTING)
        try:
            result = self._run(settings, started)
            succeeded = not result.unexpected
            return result
        finally:
            if self.lambdas is not None:
                self.lambdas.stop()
                # The stand-in is gone: a caller that goes on in this process (a test session) must not send its
                # Lambda clients to it.
                if lambda_endpoint is None:
                    os.environ.pop(LAMBDA_ENDPOINT_SETTING, None)
                else:
                    os.environ[LAMBDA_ENDPOINT_SETTING] = lambda_endpoint
            if self.options.keep:
                self.console.print(f"stack left running; settings in {self.stack.settings_path}")
            else:
                self.stack.down(quiet=True)
                if self.remove_after and succeeded:
                    shutil.rmtree(self.stack_root, ignore_errors=True)
                elif self.remove_after:
                    self.console.print(f"this run's state and logs are kept for a look: {self.stack_root}")

    def _run(self, settings: StackSettings, started: float) -> DemoResult:
        if (settings.moto is None or settings.asr is None or settings.host is None or settings.azurite is None
                or settings.ssm is None):  # fmt: skip
            raise RuntimeError("the demo needs the whole stack: azurite, moto, asr, ssm and host")
        side = provision(settings, status_api_key=settings.host.master_key)
        environment = side.lambda_environment(status_api_url=settings.host.base_url)
        environment |= clock_environment(settings.clock_file)
        # Lambda's Invoke (asynchronous), which moto cannot run: only the Lambda client goes there.
        lambdas = self.lambdas = LambdaInvokeStandIn([INTAKE_FUNCTION, CUTOVER_FUNCTION], region=side.region,
                                                     account_id=side.account_id).start()  # fmt: skip
        environment[LAMBDA_ENDPOINT_SETTING] = lambdas.url
        log_path = Path(settings.state_dir) / "logs" / "lambdas.log"
        aws = AwsSide(environment, log_path.open("a", encoding="utf-8"))
        self.console.print(
            f"Lambda logs: {log_path}; Functions host log: {Path(settings.state_dir) / 'logs' / 'host.log'}"
        )
        session = boto3.session.Session(aws_access_key_id="testing", aws_secret_access_key="testing",
                                        region_name=settings.moto.region)  # fmt: skip
        ec2: EC2Client = session.client("ec2", endpoint_url=settings.moto.url)
        scheduler: EventBridgeSchedulerClient = session.client("scheduler", endpoint_url=settings.moto.url)
        sim = SimulatorControl.from_endpoint(settings.asr)
        clock = FileClock(settings.clock_file)
        api = MigrationApi(ApiTarget(settings.host.base_url, settings.host.master_key))

        ssm = SsmSimControl(settings.ssm.url)
        fleet = build_fleet(ec2, sim, ssm, vpc_id=side.vpc_id, appliance_group=side.appliance_security_group_id,
                            count=self.options.instances, waves=WAVES)  # fmt: skip
        # EventBridge's rule on "EC2 Instance State-change Notification" (stopped) -> the cutover Lambda.
        state_changes = Ec2StateChanges(
            ec2, account=side.account_id, region=side.region, clock=clock,
            deliver=lambda event: aws.invoke(aws.cutover, event, CUTOVER_FUNCTION),
            never_stops=lambda: [i for i, f in ssm.faults().instances.items() if f == "stop-never-completes"],
        )  # fmt: skip
        state_changes.poll()
        apply_faults(sim, self.options.faults, fleet)
        for unhealthy in (i for i in fleet if i.expected == "RolledBack"):  # docs/ROLLBACK.md: its VM does not run
            sim.vm_fault(unhealthy.private_ip, power_state="stopped")
        cutover_at = (clock.now() + timedelta(days=5)).replace(microsecond=0)
        self.console.print(f"{len(fleet)} EC2 instances in {WAVES[0]} (cutover window {cutover_at:%Y-%m-%d %H:%M}Z) "
                           f"and {WAVES[1]} (cut over on request; it stops its own sources); tagging them")  # fmt: skip
        for instance in fleet:
            request = {tag_keys.MIGRATE: "true", tag_keys.WAVE: instance.wave}
            if instance.wave == WAVES[0]:
                request[tag_keys.CUTOVER_AT] = cutover_at.strftime("%Y-%m-%dT%H:%M:%SZ")
            self._tag(ec2, side.account_id, side.region, instance, request, aws)

        if settings.webhook is not None:  # issue 18: the receiver is away for the whole run, and gets it all after
            ReceiverClient(settings.webhook.url).set_down(True)
        deadline = time.monotonic() + self.options.timeout_s
        last_sync = 0.0
        records: dict[str, dict[str, Any]] = {}
        with Live(console=self.console, refresh_per_second=4, transient=not self.options.live) as live:
            while time.monotonic() < deadline:
                records = {r["instance"]["instance_id"]: r for r in api.iter_migrations()}
                # Before the schedules: a stop is seen (or held by a fault) before its follow-up can fire.
                state_changes.poll()
                self._fire_due_schedules(scheduler, clock.now(), aws)
                self._cut_over_wave_b(api, fleet, self._phases(ec2, fleet, records))
                if time.monotonic() - last_sync > 2.0:
                    aws.invoke(aws.status_sync, {"source": "aws.events", "detail-type": "Scheduled Event"},
                               "aws2azure-status-sync")  # fmt: skip
                    last_sync = time.monotonic()
                aws.deliver_async(lambdas)  # e.g. status sync -> cutover: the wave's stops
                phases = self._phases(ec2, fleet, records)
                if self.options.live:
                    live.update(self._view(fleet, records, phases, clock.now()))
                if all(phases[i.instance_id] in FINAL for i in fleet):
                    break
                time.sleep(0.5)
        # One last status sync so the EC2 tags tell the final story.
        aws.invoke(aws.status_sync, {"source": "aws.events", "detail-type": "Scheduled Event"}, "aws2azure-status-sync")
        phases = self._phases(ec2, fleet, records)
        stats = sim.stats()
        unexpected = [f"{i.instance_id} ({i.wave}): expected {i.expected}, ended {phases[i.instance_id]}"
                      for i in fleet if not self._as_expected(i, phases[i.instance_id], records)]  # fmt: skip
        unexpected += [f"async invocation failed {ASYNC_ATTEMPTS} times: {d}" for d in aws.async_dropped]
        counts = Counter(phases.values())
        summary = {
            "instances": len(fleet),
            "migrated": counts["Migrated"],
            "not_ready": counts["NotReady"],
            "failed": counts["Failed"],
            "cancelled": counts["Cancelled"],
            "rolled_back": counts["RolledBack"],
            "ssm_installs": sum(1 for i in ssm.invocations() if i.status == "Success"),
            "registered_by_install": sum(1 for i in ssm.invocations() if i.registered_with_appliance),
            "state_change_events": state_changes.delivered,
            "lambda_invocations": dict(aws.invocations),
            "async_invocations": lambdas.accepted,
            "wave_b": self._wave_b_summary(ec2, fleet, records, state_changes, sim),
            "asr_requests": stats.total_requests,
            "asr_writes": stats.writes,
            "wall_seconds": round(time.monotonic() - started, 1),
        }
        if settings.webhook is not None:  # issue 18: one notification per phase change, in order, per instance
            notified = drain(settings.webhook.url, clock, list(api.iter_migrations()))
            summary |= notified
            unexpected += [f"{i}: notifications missing or out of order"
                           for i in notified["instances_notified_out_of_order_or_missing"]]  # fmt: skip
        self.console.print(self._view(fleet, records, phases, clock.now()))
        for line in unexpected:
            self.console.print(f"[red]unexpected:[/red] {line}")
        return DemoResult(summary=summary, unexpected=unexpected, settings=settings)

    def _tag(self, ec2: EC2Client, account: str, region: str, instance: DemoInstance, request: dict[str, str],
             aws: AwsSide) -> None:  # fmt: skip
        ec2.create_tags(Resources=[instance.instance_id], Tags=[{"Key": k, "Value": v} for k, v in request.items()])
        described = ec2.describe_instances(InstanceIds=[instance.instance_id])["Reservations"][0]["Instances"][0]
        current = {t["Key"]: t["Value"] for t in described.get("Tags", [])}
        self.tag_versions[instance.instance_id] += 1
        event = tag_change_event(account=account, region=region, instance_id=instance.instance_id, tags=current,
                                 changed=sorted(request), version=self.tag_versions[instance.instance_id])  # fmt: skip
        aws.invoke(aws.intake, event, "aws2azure-intake")

    def _fire_due_schedules(self, scheduler: EventBridgeSchedulerClient, now: datetime, aws: AwsSide) -> None:
        """EventBridge Scheduler, as moto cannot: invoke the cutover Lambda when a one-time schedule is due."""
        for summary in scheduler.list_schedules(GroupName=SCHEDULER_GROUP).get("Schedules", []):
            name = summary["Name"]
            if name in self.fired_schedules:
                continue
            schedule = scheduler.get_schedule(Name=name, GroupName=SCHEDULER_GROUP)
            match = AT_EXPRESSION.match(schedule["ScheduleExpression"])
            if match is None or datetime.fromisoformat(match["when"]).replace(tzinfo=UTC) > now:
                continue
            self.fired_schedules.add(name)
            aws.invoke(aws.cutover, json.loads(schedule["Target"]["Input"]), "aws2azure-cutover")
            scheduler.delete_schedule(Name=name, GroupName=SCHEDULER_GROUP)  # ActionAfterCompletion: DELETE

    def _cut_over_wave_b(self, api: MigrationApi, fleet: list[DemoInstance], phases_now: dict[str, str]) -> None:
        """The operator's cutover of wave-b, once every member that can be cut over is waiting for it: asked, and
        nothing more. The wave marks a stop on each member; status sync reads it and has the cutover Lambda stop
        the sources; each stop's state-change event reports it to Azure, and the wave fails over by recovery plan."""
        if self.wave_b_cut:
            return
        members = [i for i in fleet if i.wave == WAVES[1] and i.expected == "Migrated"]
        phases = [phases_now[i.instance_id] for i in members]
        if not members or any(p not in ("AwaitingCutover", "Failed", "Cancelled", "NotReady") for p in phases):
            return
        waiting = [i for i, p in zip(members, phases, strict=True) if p == "AwaitingCutover"]
        self.wave_b_cut = True
        if not waiting:
            return
        api.cut_over_wave(WAVES[1])
        self.console.print(f"{WAVES[1]}: cut over asked; the wave stops its own sources ({len(waiting)} waiting)")

    @staticmethod
    def _wave_b_summary(ec2: EC2Client, fleet: list[DemoInstance], records: dict[str, dict[str, Any]],
                        state_changes: Ec2StateChanges, sim: SimulatorControl) -> dict[str, Any]:  # fmt: skip
        """Per member of wave-b: how often it stopped (running -> stopped, as EC2's events told), who asked for the
        stop (its cutover-stop tag), and how often ASR started its failover and its commit."""
        members = [i.instance_id for i in fleet if i.wave == WAVES[1] and i.expected == "Migrated"]
        stops = Counter(e["detail"]["instance-id"] for e in state_changes.emitted if e["detail"]["state"] == "stopped")
        described = ec2.describe_instances(InstanceIds=members)["Reservations"] if members else []
        marks = {i["InstanceId"]: next((t["Value"] for t in i.get("Tags", []) if t["Key"] == tag_keys.CUTOVER_STOP), "")
                 for r in described for i in r["Instances"]}  # fmt: skip
        stats = sim.stats()
        items = {m: records.get(m, {}).get("protected_item_name") or "" for m in members}
        asked_by_wave = {m for m in members if f":wave-{WAVES[1]}-" in marks.get(m, "")}  # state:request:by
        return {
            "members": members,
            "stops": {m: stops[m] for m in members},
            "stop_marks": marks,
            "failovers": {m: stats.failovers_started.get(items[m], 0) for m in members},
            "commits": {m: stats.commits_started.get(items[m], 0) for m in members},
            # Stops no wave request explains: a member stopped (or stopped again) other than by the wave's own ask.
            "operator_stops": sum(max(0, stops[m] - (m in asked_by_wave)) for m in members),
            "migrated": sum(1 for m in members if records.get(m, {}).get("phase") == "Migrated"),
        }

    @staticmethod
    def _phases(ec2: EC2Client, fleet: list[DemoInstance], records: dict[str, dict[str, Any]]) -> dict[str, str]:
        """Azure's record where there is one; else the status the AWS side tagged (NotReady never crosses)."""
        described = ec2.describe_instances(InstanceIds=[i.instance_id for i in fleet])
        tags = {i["InstanceId"]: {t["Key"]: t["Value"] for t in i.get("Tags", [])}
                for r in described["Reservations"] for i in r["Instances"]}  # fmt: skip
        return {i.instance_id: records.get(i.instance_id, {}).get("phase")
                or tags[i.instance_id].get(tag_keys.STATUS, "Untagged") for i in fleet}  # fmt: skip

    def _as_expected(self, instance: DemoInstance, phase: str, records: dict[str, dict[str, Any]]) -> bool:
        if instance.expected == "NotReady":
            return phase == "NotReady"
        if instance.expected == "RolledBack":
            return phase == "RolledBack"
        if phase == "Migrated":
            return True
        # Under the hostile profile a machine may fail, but only with a reason an operator can act on.
        return (
            self.options.faults == "hostile"
            and phase == "Failed"
            and bool(records.get(instance.instance_id, {}).get("reason"))
        )

    def _view(self, fleet: list[DemoInstance], records: dict[str, dict[str, Any]], phases: dict[str, str],
              now: datetime) -> Group:  # fmt: skip
        waves = Table("wave", "instances", "per phase", title=f"aws2azure demo - virtual time {now:%Y-%m-%d %H:%M}Z")
        for wave in WAVES:
            members = [i for i in fleet if i.wave == wave]
            counted = Counter(phases[i.instance_id] for i in members)
            waves.add_row(wave, str(len(members)), ", ".join(f"{p} {n}" for p, n in sorted(counted.items())))
        instances = Table("instance", "wave", "os", "phase", "progress", "health", "reason")
        for instance in fleet:
            record = records.get(instance.instance_id, {})
            progress = record.get("progress_percent")
            instances.add_row(
                instance.instance_id, instance.wave, instance.os_type, phases[instance.instance_id],
                f"{progress}%" if progress is not None else "-", record.get("replication_health") or "-",
                (record.get("reason") or instance.why)[:60],
            )  # fmt: skip
        return Group(waves, instances)


def run_demo(options: DemoOptions, console: Console | None = None) -> DemoResult:
    return Demo(options, console or Console(stderr=True)).run()
