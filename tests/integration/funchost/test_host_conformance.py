"""The local host on Azurite, driven from outside as on Azure: HTTP triggers with keys, the
SDK's ``DurableOrchestrationClient`` inside functions talking to the management API, queue and
timer triggers, the virtual clock."""

from __future__ import annotations

import base64
import json
import time
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from azure.storage.queue import QueueClient

from devstack.funchost.durable.orchestration import RuntimeStatus
from devstack.funchost.host import LocalHost

pytestmark = pytest.mark.integration


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def start(host: LocalHost, name: str, payload: Any = None, instance_id: str | None = None) -> httpx.Response:
    path = f"/api/orchestrators/{name}" + (f"/{instance_id}" if instance_id else "")
    return httpx.post(host.base_url + path, json=payload, headers={"x-functions-key": host.keys.host_default})


def client_op(host: LocalHost, op: str, instance_id: str = "", *, method: str = "GET", **params: str) -> Any:
    response = httpx.request(method, f"{host.base_url}/api/client/{op}/{instance_id}", params=params)
    assert response.status_code == 200, response.text
    return response.json()


def finished(host: LocalHost, instance_id: str, timeout: float = 20) -> Any:
    instance = host.wait_for(instance_id, timeout)
    return None if instance.output_json is None else json.loads(instance.output_json)


def test_http_starter_returns_the_check_status_payload_and_its_urls_work(host: LocalHost) -> None:
    response = start(host, "chain", "ada")
    assert response.status_code == 202
    payload = response.json()
    assert set(payload) >= {"id", "statusQueryGetUri", "sendEventPostUri", "terminatePostUri", "purgeHistoryDeleteUri"}
    assert response.headers["Location"] == payload["statusQueryGetUri"]
    assert payload["statusQueryGetUri"].startswith(host.base_url + "/runtime/webhooks/durabletask/instances/")
    finished(host, payload["id"])
    status = httpx.get(payload["statusQueryGetUri"])
    assert status.status_code == 200
    body = status.json()
    assert body["runtimeStatus"] == "Completed"
    assert body["output"] == ["Hello ada", "Hello Hello ada"]
    assert body["name"] == "chain"
    assert body["createdTime"].endswith("Z")
    without_key = httpx.get(payload["statusQueryGetUri"].split("?")[0])
    assert without_key.status_code == 401


def test_http_function_keys_are_checked_from_header_or_code(host: LocalHost) -> None:
    url = host.base_url + "/api/orchestrators/chain"
    assert httpx.post(url, json="x").status_code == 401
    assert httpx.post(url, json="x", headers={"x-functions-key": "wrong"}).status_code == 401
    assert httpx.post(url, json="x", params={"code": host.keys.functions["http_start"]}).status_code == 202
    assert httpx.post(url, json="x", headers={"x-functions-key": host.keys.master}).status_code == 202
    assert httpx.post(url, json="x", headers={"x-functions-key": host.keys.functions["client_ops"]}).status_code == 401
    assert httpx.get(host.base_url + "/api/client/by_status", params={"statuses": "Running"}).status_code == 200
    assert httpx.get(host.base_url + "/api/nothing-here").status_code == 404
    assert httpx.get(url, headers={"x-functions-key": host.keys.master}).status_code == 405


def test_durable_client_get_status_and_get_status_by(host: LocalHost) -> None:
    done = start(host, "fan_out", 4).json()["id"]
    finished(host, done)
    waiting = start(host, "forever").json()["id"]
    host.run_until_idle()
    status = client_op(host, "status", done)
    assert status["runtimeStatus"] == "Completed"
    assert status["output"] == 14
    running = client_op(host, "by_status", statuses="Running")
    assert waiting in running
    assert done not in running
    completed = client_op(host, "by_status", statuses="Completed,Failed")
    assert done in completed
    assert client_op(host, "status", waiting)["customStatus"] == "waiting forever"
    client_op(host, "terminate", waiting, method="POST", reason="cleanup")


def test_external_event_raised_before_the_wait_is_delivered_and_custom_status_shows_progress(host: LocalHost) -> None:
    instance_id = unique("approval")
    start(host, "approval", instance_id=instance_id)
    response = httpx.post(
        f"{host.base_url}/api/client/raise/{instance_id}",
        params={"event": "Approval"},
        content=json.dumps({"by": "ops"}),
    )
    assert response.status_code == 200, response.text
    # The SDK client double-encodes event data, as on Azure: the orchestrator receives its JSON text.
    assert json.loads(finished(host, instance_id)) == {"by": "ops"}
    assert client_op(host, "status", instance_id)["customStatus"] == {"stage": "approved"}


def test_event_posted_to_send_event_uri_arrives_as_json(host: LocalHost) -> None:
    payload = start(host, "approval").json()
    host.run_until_idle()
    assert client_op(host, "status", payload["id"])["customStatus"] == {"stage": "waiting for approval"}
    url = payload["sendEventPostUri"].replace("{eventName}", "Approval")
    assert httpx.post(url, content="plain text", headers={"content-type": "text/plain"}).status_code == 400
    assert httpx.post(url, json={"approved": True}).status_code == 202
    assert finished(host, payload["id"]) == {"approved": True}
    assert httpx.post(url, json={"approved": True}).status_code == 410


def test_singleton_start_is_refused_while_running_and_allowed_after_terminate(host: LocalHost) -> None:
    instance_id = unique("singleton")
    assert start(host, "forever", instance_id=instance_id).status_code == 202
    refused = start(host, "forever", instance_id=instance_id)
    assert refused.status_code == 409
    assert "already exists" in refused.json()["refused"]
    assert client_op(host, "terminate", instance_id, method="POST", reason="operator") == "terminated"
    assert finished(host, instance_id) == "operator"
    assert host.engine.status(instance_id).status == RuntimeStatus.TERMINATED  # type: ignore[union-attr]
    gone = httpx.post(f"{host.base_url}/api/client/raise/{instance_id}", params={"event": "Never"}, content="1")
    assert gone.status_code == 500  # the SDK raises: "Instance ... is gone"
    assert start(host, "chain", "again", instance_id=instance_id).status_code == 202
    assert finished(host, instance_id) == ["Hello again", "Hello Hello again"]


def test_purge_deletes_a_finished_instance(host: LocalHost) -> None:
    instance_id = unique("purge")
    start(host, "chain", "p", instance_id=instance_id)
    finished(host, instance_id)
    assert client_op(host, "purge", instance_id, method="DELETE") == 1
    assert client_op(host, "status", instance_id) is None
    assert client_op(host, "purge", instance_id, method="DELETE") == 0


def test_unknown_orchestrator_is_refused_with_the_extension_message(host: LocalHost) -> None:
    refused = start(host, "no_such_orchestrator")
    assert refused.status_code == 409
    assert "doesn't exist" in refused.json()["refused"]


def test_long_timer_jumps_the_virtual_clock_and_current_utc_datetime_follows(host: LocalHost) -> None:
    before = host.clock.now()
    instance_id = start(host, "sleeper", 10 * 86400).json()["id"]
    output = finished(host, instance_id)
    woke = output["woke"]
    assert woke.startswith((before + timedelta(days=10)).strftime("%Y-%m-%dT%H"))
    assert host.clock.now() - before >= timedelta(days=10)
    history = client_op(host, "status", instance_id, history="1")
    assert history["runtimeStatus"] == "Completed"


def test_timeout_pattern_event_wins_and_the_cancelled_timer_does_not_move_time(host: LocalHost) -> None:
    host.engine.idle_grace_seconds = 60  # hold virtual time while the test raises the event
    try:
        payload = start(host, "approval_or_timeout", 2).json()
        deadline = time.monotonic() + 10
        while host.engine.pending_timers() == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        before = host.clock.now()
        httpx.post(payload["sendEventPostUri"].replace("{eventName}", "Approval"), json="ok")
        assert finished(host, payload["id"]) == {"approved": "ok"}
    finally:
        host.engine.idle_grace_seconds = 0
    host.run_until_idle()
    assert host.clock.now() - before < timedelta(hours=2)


def test_sub_orchestrations_retry_and_continue_as_new(host: LocalHost) -> None:
    parent = start(host, "parent", 3).json()["id"]
    flaky = start(host, "flaky", {"key": unique("flaky"), "failures": 2, "attempts": 3}).json()["id"]
    mixed = start(host, "fan_out_retry").json()["id"]
    collector = start(host, "collector").json()
    for item in ("a", "b", "c", "d"):
        httpx.post(collector["sendEventPostUri"].replace("{eventName}", "Item"), json=item)
    assert finished(host, parent) == {"sums": [0, 1, 5], "named": ["Hello child", "Hello Hello child"]}
    assert finished(host, flaky) == {"value": "succeeded on attempt 3", "after": "Hello after"}
    assert finished(host, mixed)[-2:] == [49, 9]
    assert finished(host, collector["id"]) == ["a", "b", "c"]


def test_a_failed_orchestration_reports_failed_with_its_error(host: LocalHost) -> None:
    instance_id = start(host, "failing").json()["id"]
    output = finished(host, instance_id)
    assert "orchestrator gave up" in output
    status = httpx.get(f"{host.base_url}/durabletask/instances/{instance_id}")
    assert status.json()["runtimeStatus"] == "Failed"


def test_queue_message_starts_an_orchestration(host: LocalHost) -> None:
    instance_id = unique("from-queue")
    queue = QueueClient.from_connection_string(host.storage_connection_string, "sample-requests")
    body = json.dumps({"instance_id": instance_id, "input": "queue"})
    queue.send_message(base64.b64encode(body.encode()).decode())
    deadline = time.monotonic() + 20
    while host.engine.status(instance_id) is None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert finished(host, instance_id) == ["Hello queue", "Hello Hello queue"]


def test_a_failing_queue_message_goes_to_poison_after_five_attempts(host: LocalHost, sample_log: Path) -> None:
    marker = unique("poison")
    queue = QueueClient.from_connection_string(host.storage_connection_string, "sample-requests")
    queue.send_message(base64.b64encode(json.dumps({"fail": True, "marker": marker}).encode()).decode())
    poison = QueueClient.from_connection_string(host.storage_connection_string, "sample-requests-poison")
    deadline = time.monotonic() + 20
    found: list[str] = []
    while not found and time.monotonic() < deadline:
        found = [
            m.content for m in poison.peek_messages(max_messages=32) if marker in base64.b64decode(m.content).decode()
        ]
        time.sleep(0.05)
    assert found, "the message never reached the poison queue"
    attempts = [json.loads(line) for line in (sample_log / "intake.log").read_text().splitlines()]
    counts = [a["dequeue_count"] for a in attempts if a["body"].get("marker") == marker]
    assert counts == [1, 2, 3, 4, 5]


def test_timer_trigger_fires_when_the_virtual_clock_passes_its_schedule(host: LocalHost, sample_log: Path) -> None:
    log = sample_log / "timer.log"
    before = len(log.read_text().splitlines()) if log.exists() else 0
    host.clock.advance_by(300)  # type: ignore[attr-defined]
    deadline = time.monotonic() + 5
    while (len(log.read_text().splitlines()) if log.exists() else 0) == before and time.monotonic() < deadline:
        time.sleep(0.02)
    assert len(log.read_text().splitlines()) >= before + 1


def test_a_restarted_host_resumes_children_timers_and_stored_events(
    azurite: Any, tmp_path: Path, sample_log: Path
) -> None:
    """Stop a host mid-flight and start another on the same storage: everything resumes."""
    import shutil

    from devstack.clock import FileClock
    from tests.integration.funchost.conftest import SAMPLE_APP, VIRTUAL_START

    app = tmp_path / "app"
    shutil.copytree(SAMPLE_APP, app, ignore=shutil.ignore_patterns("__pycache__"))
    (app / "host.json").write_text(
        json.dumps({"version": "2.0", "extensions": {"durableTask": {"hubName": "RestartHub"}}})
    )
    clock = FileClock(tmp_path / "clock", start=VIRTUAL_START)

    def new_host() -> LocalHost:
        return LocalHost(
            app,
            azurite.azurite.connection_string,
            clock=clock,
            virtual_clock=True,
            state_dir=tmp_path,
            app_settings={"FUNCHOST_SAMPLE_LOG": str(sample_log), "FUNCHOST_SAMPLE_SLOW": "0.2"},
        )

    first = new_host().start()
    first.engine.idle_grace_seconds = 60  # keep the timer pending across the restart
    try:
        parent = start(first, "parent", 2).json()["id"]
        sleeper = start(first, "sleeper", 3600).json()["id"]
        waiting = start(first, "approval").json()
        deadline = time.monotonic() + 10
        while first.engine.pending_timers() == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.2)
        raised = httpx.post(waiting["sendEventPostUri"].replace("{eventName}", "Approval"), json="after restart")
        assert raised.status_code == 202
    finally:
        first.stop()
    second = new_host().start()
    try:
        assert finished(second, parent) == {"sums": [0, 1], "named": ["Hello child", "Hello Hello child"]}
        assert "woke" in finished(second, sleeper)
        assert finished(second, waiting["id"]) == "after restart"
    finally:
        second.stop()
