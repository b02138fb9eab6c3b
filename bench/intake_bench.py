"""Benchmark the intake Lambda against moto's server and Azurite: ``python -m bench.intake_bench``.

Prints one JSON object:
- ``intake_p50_ms`` / ``intake_p90_ms``: one Tag Change event for a new instance, end to end through the
  handler (describe, readiness, idempotency record in DynamoDB, schedule, SAS from Secrets Manager, queue
  message, status tags), warm container;
- ``intake_first_invocation_ms``: the first event, which also builds the clients (the cold part after import);
- ``intake_duplicate_p50_ms``: the same event again, answered from the idempotency record;
- ``intake_cold_import_ms``: per handler module, the median time to import it in a fresh interpreter
  (the init phase of a cold start, interpreter start-up excluded).
Numbers are local (loopback, moto in one process), so they compare versions of this code, not AWS.
"""

from __future__ import annotations

import argparse
import copy
import importlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from devstack.aws_local import LocalLambdaContext, provision
from devstack.launcher import Stack
from devstack.settings import REPO_ROOT
from migration.tags import MIGRATE

HANDLERS = ("intake", "cutover", "status_sync", "reconcile")
UBUNTU_HVM = "ami-785db401"  # in moto's default AMI list
SAMPLE = {
    "version": "0",
    "id": "",
    "detail-type": "Tag Change on Resource",
    "source": "aws.tag",
    "account": "",
    "time": "2018-09-18T20:41:38Z",
    "region": "",
    "resources": [],
    "detail": {"changed-tag-keys": [MIGRATE], "service": "ec2", "resource-type": "instance", "version": 1, "tags": {}},
}


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def cold_import_ms(env: dict[str, str], repeats: int) -> dict[str, float]:
    probe = (
        "import time; t = time.perf_counter(); import aws_lambda.handlers.{name}; "
        "print((time.perf_counter() - t) * 1000)"
    )
    results = {}
    for name in HANDLERS:
        samples = []
        for _ in range(repeats):
            done = subprocess.run(
                [sys.executable, "-c", probe.format(name=name)],
                cwd=REPO_ROOT,
                env=env,
                capture_output=True,
                text=True,
                check=True,
                timeout=120,
            )
            samples.append(float(done.stdout.strip().splitlines()[-1]))
        results[name] = round(statistics.median(samples), 1)
    return results


def run(events: int, repeats: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="intake-bench-") as root:
        stack = Stack(Path(root))
        settings = stack.up(["moto", "azurite"], quiet=True)
        try:
            side = provision(settings)
            env = side.lambda_environment()
            os.environ.update(env)
            import boto3

            ec2 = boto3.session.Session(region_name=side.region).client("ec2")
            group = ec2.create_security_group(GroupName="bench", Description="bench", VpcId=side.vpc_id)["GroupId"]
            ec2.authorize_security_group_ingress(
                GroupId=group,
                IpPermissions=[
                    {"IpProtocol": "tcp", "FromPort": 443, "ToPort": 9443, "IpRanges": [{"CidrIp": "10.0.0.0/8"}]}
                ],
            )
            instances = [
                i["InstanceId"]
                for i in ec2.run_instances(
                    ImageId=UBUNTU_HVM,
                    MinCount=events,
                    MaxCount=events,
                    SecurityGroupIds=[group],
                    TagSpecifications=[{"ResourceType": "instance", "Tags": [{"Key": MIGRATE, "Value": "true"}]}],
                )["Instances"]
            ]
            intake = importlib.import_module("aws_lambda.handlers.intake")
            timings, outcomes, sent = [], [], []
            for instance_id in instances:
                event = copy.deepcopy(SAMPLE)
                event.update(id=str(uuid.uuid4()), account=side.account_id, region=side.region)
                event["resources"] = [f"arn:aws:ec2:{side.region}:{side.account_id}:instance/{instance_id}"]
                event["detail"]["tags"] = {MIGRATE: "true"}  # type: ignore[index]
                started = time.perf_counter()
                outcome = intake.lambda_handler(event, LocalLambdaContext("aws2azure-intake"))
                timings.append((time.perf_counter() - started) * 1000)
                outcomes.append(outcome["action"])
                sent.append(event)
            duplicates = []
            for event in sent:
                started = time.perf_counter()
                intake.lambda_handler(copy.deepcopy(event), LocalLambdaContext("aws2azure-intake"))
                duplicates.append((time.perf_counter() - started) * 1000)
            if set(outcomes) != {"requested"}:
                raise RuntimeError(f"the benchmark expects every event to be requested, got {set(outcomes)}")
            imports = cold_import_ms({**os.environ, **env}, repeats)
        finally:
            stack.down(quiet=True)
    warm = timings[1:]
    return {
        "events": events,
        "intake_p50_ms": round(statistics.median(warm), 1),
        "intake_p90_ms": round(_percentile(warm, 0.9), 1),
        "intake_first_invocation_ms": round(timings[0], 1),
        "intake_duplicate_p50_ms": round(statistics.median(duplicates), 1),
        "intake_cold_import_ms": imports,
        "against": "moto server + Azurite on loopback, handler in-process",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=50, help="instances tagged, one event each")
    parser.add_argument("--repeats", type=int, default=5, help="fresh interpreters per handler import")
    args = parser.parse_args()
    # Tracing needs the X-Ray daemon; Lambda has one, this machine does not.
    os.environ.setdefault("POWERTOOLS_TRACE_DISABLED", "true")
    # Metrics and logs go to stdout in Lambda; here they would drown the result.
    sys.stdout.flush()
    real_stdout = sys.stdout
    with open(os.devnull, "w") as quiet:
        sys.stdout = quiet
        try:
            result = run(args.events, args.repeats)
        finally:
            sys.stdout = real_stdout
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
