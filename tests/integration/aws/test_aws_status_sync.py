"""Status sync, through its Lambda handler, against a small real HTTP server that serves the status API's
contract from MigrationRecord objects. (The same test against the real Function App is the lead's e2e.)"""

from __future__ import annotations

import json
import threading
import urllib.parse
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import ModuleType

import pytest

from migration.events import MigrationRequestedData
from migration.identity import InstanceRef
from migration.lifecycle import Phase
from migration.records import MigrationRecord
from migration.tags import MIGRATE, PROGRESS, REASON, STATUS, UPDATED_AT
from tests.integration.aws.aws_test_support import AMI_UBUNTU, SCHEDULED_SAMPLE, LocalAws, reference_event

pytestmark = pytest.mark.integration

API_KEY = "local-status-key"  # what devstack.aws_local.provision stores in Secrets Manager
UPDATED = datetime(2026, 11, 20, 8, 30, tzinfo=UTC)


class StatusApi:
    """``GET /api/migrations/{id}`` as the Function App serves it, from records, with the function key checked."""

    def __init__(self) -> None:
        self.key = API_KEY
        self.records: dict[str, MigrationRecord] = {}
        self.failing: set[str] = set()
        self.requests: list[str] = []
        api = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                api.requests.append(self.path)
                if self.headers.get("x-functions-key") != api.key:
                    self._send(401, {"error": "bad key"})
                    return
                url = urllib.parse.urlsplit(self.path)
                migration_id = urllib.parse.unquote(url.path.removeprefix("/api/migrations/"))
                if migration_id in api.failing:
                    self._send(503, {"error": "unavailable"})
                elif migration_id in api.records:
                    record = json.loads(api.records[migration_id].model_dump_json())
                    record["schema_note"] = "a newer field"  # unknown record keys: the client ignores them
                    self._send(200, {"migration": record, "events": [{"kind": "PhaseChanged"}]})
                else:
                    self._send(404, {"error": "not found"})

            def _send(self, status: int, body: object) -> None:
                raw = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            def log_message(self, format: str, *args: object) -> None:  # quiet
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def put(self, instance: InstanceRef, phase: Phase, *, progress: int | None = None, reason: str = "") -> None:
        self.records[instance.migration_id] = MigrationRecord(
            request=MigrationRequestedData.model_validate(
                {"instance": instance, "private_ip": "10.0.0.10", "os_family": "linux", "request_id": "req-1"}
            ),
            phase=phase,
            reason=reason,
            progress_percent=progress,
            created_at=UPDATED,
            updated_at=UPDATED,
        )


@pytest.fixture(scope="module")
def status_api() -> Iterator[StatusApi]:
    api = StatusApi()
    thread = threading.Thread(target=api.server.serve_forever, daemon=True)
    thread.start()
    yield api
    api.server.shutdown()
    api.server.server_close()


@pytest.fixture(scope="module")
def status_sync(local_aws: LocalAws, status_api: StatusApi) -> ModuleType:
    return local_aws.handler("status_sync", STATUS_API_URL=status_api.url)


def instance(aws: LocalAws, status: str) -> tuple[str, InstanceRef]:
    group = aws.workload_group("sync", ingress=[])
    instance_id = aws.launch(AMI_UBUNTU, groups=[group], tags={MIGRATE: "true", STATUS: status})
    return instance_id, InstanceRef(account_id=aws.side.account_id, region=aws.side.region, instance_id=instance_id)


def test_what_azure_reports_becomes_the_instance_status_tags(
    local_aws: LocalAws, status_api: StatusApi, status_sync: ModuleType
) -> None:
    replicating_id, replicating = instance(local_aws, "Requested")
    failed_id, failed = instance(local_aws, "Replicating")
    status_api.put(replicating, Phase.REPLICATING, progress=42)
    status_api.put(failed, Phase.FAILED, reason="ASR job 1234 failed: the appliance lost the machine")

    outcome = local_aws.invoke(status_sync, reference_event(SCHEDULED_SAMPLE))

    assert replicating_id in outcome["updated"]
    assert failed_id in outcome["updated"]
    tags = local_aws.tags_of(replicating_id)
    assert tags[STATUS] == "Replicating"
    assert tags[PROGRESS] == "42"
    assert tags[UPDATED_AT] == "2026-11-20T08:30:00Z"
    failed_tags = local_aws.tags_of(failed_id)
    assert failed_tags[STATUS] == "Failed"
    assert failed_tags[REASON] == "ASR job 1234 failed: the appliance lost the machine"


def test_a_second_run_with_nothing_new_writes_no_tags(
    local_aws: LocalAws, status_api: StatusApi, status_sync: ModuleType
) -> None:
    instance_id, ref = instance(local_aws, "Requested")
    status_api.put(ref, Phase.ENABLING_REPLICATION)
    first = local_aws.invoke(status_sync, reference_event(SCHEDULED_SAMPLE))
    assert instance_id in first["updated"]

    second = local_aws.invoke(status_sync, reference_event(SCHEDULED_SAMPLE))

    assert instance_id not in second["updated"]
    assert second["unchanged"] >= 1


def test_settled_instances_are_not_read_and_unknown_ones_are_listed(
    local_aws: LocalAws, status_api: StatusApi, status_sync: ModuleType
) -> None:
    not_ready_id, _ = instance(local_aws, "NotReady")
    unknown_id, _ = instance(local_aws, "Requested")  # Azure has not picked it up yet
    status_api.requests.clear()

    outcome = local_aws.invoke(status_sync, reference_event(SCHEDULED_SAMPLE))

    assert unknown_id in outcome["not_in_azure"]
    assert local_aws.tags_of(unknown_id)[STATUS] == "Requested"
    assert not any(not_ready_id in path for path in status_api.requests)


def test_an_api_error_for_one_instance_does_not_stop_the_others(
    local_aws: LocalAws, status_api: StatusApi, status_sync: ModuleType
) -> None:
    broken_id, broken = instance(local_aws, "Replicating")
    fine_id, fine = instance(local_aws, "Replicating")
    status_api.put(broken, Phase.REPLICATING, progress=10)
    status_api.put(fine, Phase.READY_FOR_CUTOVER, progress=100)
    status_api.failing.add(broken.migration_id)

    outcome = local_aws.invoke(status_sync, {"any": "payload"})

    assert "HTTP 503" in outcome["errors"][broken_id]
    assert local_aws.tags_of(fine_id)[STATUS] == "ReadyForCutover"
    assert local_aws.tags_of(broken_id)[STATUS] == "Replicating"
    assert PROGRESS not in local_aws.tags_of(broken_id)


def test_a_rotated_api_key_is_read_again_after_a_401(
    local_aws: LocalAws, status_api: StatusApi, status_sync: ModuleType
) -> None:
    instance_id, ref = instance(local_aws, "Requested")
    status_api.put(ref, Phase.REPLICATING, progress=5)
    local_aws.invoke(status_sync, {})  # the old key is now cached in the warm container
    secrets = local_aws.session.client(
        "secretsmanager", endpoint_url=local_aws.side.aws_environment["AWS_ENDPOINT_URL"]
    )
    secrets.put_secret_value(SecretId=local_aws.side.status_api_key_secret_arn, SecretString="rotated-key")
    status_api.key = "rotated-key"
    status_api.put(ref, Phase.REPLICATING, progress=6)
    try:
        outcome = local_aws.invoke(status_sync, {})
    finally:
        status_api.key = API_KEY
        secrets.put_secret_value(SecretId=local_aws.side.status_api_key_secret_arn, SecretString=API_KEY)

    assert instance_id not in outcome["errors"]
    assert local_aws.tags_of(instance_id)[PROGRESS] == "6"


def test_a_rolled_back_source_is_started_again_once_with_its_tags_restored(
    local_aws: LocalAws, status_api: StatusApi, status_sync: ModuleType
) -> None:
    from migration.records import CutoverTimeline
    from migration.tags import CUTOVER_STOP, ROLLBACK_START

    instance_id, ref = instance(local_aws, "Validating")
    local_aws.set_tags(instance_id, {CUTOVER_STOP: "sent:req-9:operator"})
    local_aws.ec2.stop_instances(InstanceIds=[instance_id])
    assert local_aws.state_of(instance_id) == "stopped"
    status_api.put(ref, Phase.ROLLED_BACK, reason="rolled back before commit (validation failed)")
    asked = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
    status_api.records[ref.migration_id].timeline = CutoverTimeline(
        source_stopped_at=datetime(2026, 11, 20, 8, 0, tzinfo=UTC), restart_requested_at=asked
    )

    outcome = local_aws.invoke(status_sync, reference_event(SCHEDULED_SAMPLE))

    assert instance_id in outcome["updated"], outcome
    assert local_aws.state_of(instance_id) in ("pending", "running")
    tags = local_aws.tags_of(instance_id)
    assert tags[STATUS] == "RolledBack"
    assert "validation failed" in tags[REASON]
    assert tags[CUTOVER_STOP] == ""  # the cutover's stop mark cleared: a later cutover stops it again
    assert tags[ROLLBACK_START] == "rollback-20261120T090000Z"

    # Once per request: stopped again by hand, the next run leaves it stopped.
    local_aws.ec2.stop_instances(InstanceIds=[instance_id])
    again = local_aws.invoke(status_sync, reference_event(SCHEDULED_SAMPLE))
    assert instance_id not in again["updated"]
    assert local_aws.state_of(instance_id) == "stopped"
