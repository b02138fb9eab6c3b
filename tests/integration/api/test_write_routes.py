"""POST routes: they check the record's state, then start or signal the orchestration through the
real DurableOrchestrationClient, whose HTTP calls the recording host captures."""

from __future__ import annotations

import functools
import json
import socket
from datetime import UTC, datetime, timedelta
from typing import Any

import azure.functions as func
import pytest

from functions.adapters.table_store import TableStore
from functions.names import (
    EVENT_APPROVED,
    EVENT_CANCEL_REQUESTED,
    EVENT_FAILOVER_REQUESTED,
    MIGRATE_INSTANCE,
)
from migration.events import MIGRATION_REQUESTED, MigrationRequested
from migration.lifecycle import Phase, WorkflowState
from migration.ports import AsrJob
from tests.integration.api.conftest import APPROVAL_WAVE, Caller
from tests.integration.api.durable_host import Call, RecordingDurableHost
from tests.integration.store.records import instance, make_record

pytestmark = pytest.mark.integration


def _request_event(number: int, **data: Any) -> dict[str, Any]:
    ref = instance(number)
    return {
        "specversion": "1.0",
        "id": f"evt-{number}",
        "source": "aws2azure/intake/123456789012/eu-west-1",
        "type": MIGRATION_REQUESTED,
        "time": "2026-03-01T12:00:00Z",
        "subject": ref.instance_id,
        "data": {
            "instance": ref.model_dump(),
            "private_ip": "10.0.0.5",
            "os_family": "linux",
            "wave": "w1",
            "request_id": f"req-{number}",
            **data,
        },
    }


def _body(response: func.HttpResponse, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.get_body()
    return json.loads(response.get_body())  # type: ignore[no-any-return]


def _signal(call: Caller, action: str, migration_id: str, body: object = None) -> func.HttpResponse:
    raw = None if body is None else (body if isinstance(body, str) else json.dumps(body))
    return call(f"api_{action}", "POST", f"migrations/{migration_id}/{action}",
                route={"migration_id": migration_id}, body=raw)  # fmt: skip


def _running(store: TableStore, host: RecordingDurableHost, number: int, phase: Phase, **changes: Any) -> str:
    record = store.create(make_record(number, wave="w1", phase=phase, **changes))
    host.statuses[record.migration_id] = "Running"
    return record.migration_id


# -- start by hand -------------------------------------------------------------------------------


def _started_state(call: Call) -> WorkflowState:
    # The SDK JSON-encodes the input it is given; the orchestration reads it back as a WorkflowState.
    return WorkflowState.model_validate(json.loads(call.body))


def test_start_runs_migrate_instance_with_the_migration_id_and_the_request(
    store: TableStore, durable_host: RecordingDurableHost, call: Caller
) -> None:
    event = _request_event(1)
    body = _body(call("api_start_migration", "POST", "migrations", body=json.dumps(event)), 202)

    migration_id = instance(1).migration_id
    assert body == {"migration_id": migration_id, "action": "start", "signal": MIGRATE_INSTANCE,
                    "phase": None, "status_url": f"/api/migrations/{migration_id}"}  # fmt: skip
    [start] = durable_host.writes()
    assert start.path == f"orchestrators/{MIGRATE_INSTANCE}/{migration_id}"
    state = _started_state(start)
    assert state.request == MigrationRequested.model_validate(event).data
    assert state.approval_required is False


def test_a_start_in_an_approval_wave_requires_approval(
    store: TableStore, durable_host: RecordingDurableHost, call: Caller
) -> None:
    event = _request_event(7, wave=APPROVAL_WAVE)
    _body(call("api_start_migration", "POST", "migrations", body=json.dumps(event)), 202)
    assert _started_state(durable_host.writes()[0]).approval_required is True


@pytest.mark.parametrize(
    ("body", "mentions"),
    [
        ("{not json", "not valid JSON"),
        ("[1, 2]", "JSON object"),
        (
            json.dumps(
                {
                    **_request_event(2),
                    "type": "io.aws2azure.migration.FailoverRequested.v1",
                    "data": {"instance": instance(2).model_dump(), "requested_by": "operator", "source_stopped": True},
                }
            ),
            "MigrationRequested",
        ),
        (json.dumps(_request_event(2, private_ip="999.1.1.1")), "private_ip"),
        (json.dumps({**_request_event(2), "subject": "i-00000000000000099"}), "subject"),
        (json.dumps({**_request_event(2), "type": "something.else"}), "unknown event type"),
        ("", "JSON"),
    ],
)
def test_a_bad_start_request_is_400_and_starts_nothing(
    store: TableStore, durable_host: RecordingDurableHost, call: Caller, body: str, mentions: str
) -> None:
    error = _body(call("api_start_migration", "POST", "migrations", body=body), 400)["error"]
    assert mentions in error["message"]
    assert durable_host.writes() == []


def test_a_late_duplicate_of_a_request_is_409_and_starts_nothing(
    store: TableStore, durable_host: RecordingDurableHost, call: Caller
) -> None:
    store.create(make_record(3, phase=Phase.REPLICATING))  # request_id req-3, its orchestration gone
    error = _body(call("api_start_migration", "POST", "migrations", body=json.dumps(_request_event(3))), 409)
    assert error["error"]["code"] == "NotStarted"
    assert "late duplicate" in error["error"]["message"]
    assert durable_host.writes() == []


def test_start_is_409_while_an_orchestration_runs_even_without_a_record(
    store: TableStore, durable_host: RecordingDurableHost, call: Caller
) -> None:
    durable_host.statuses[instance(4).migration_id] = "Pending"
    error = _body(call("api_start_migration", "POST", "migrations", body=json.dumps(_request_event(4))), 409)
    assert error["error"]["code"] == "NotStarted"
    assert "already running" in error["error"]["message"]
    assert durable_host.writes() == []


def test_a_migrated_instance_is_not_started_again(
    store: TableStore, durable_host: RecordingDurableHost, call: Caller
) -> None:
    store.create(make_record(8, phase=Phase.MIGRATED))
    event = _request_event(8, request_id="req-8-again")
    assert _body(call("api_start_migration", "POST", "migrations", body=json.dumps(event)), 409)["error"]
    assert durable_host.writes() == []


def test_a_cancelled_migration_can_be_requested_again(
    store: TableStore, durable_host: RecordingDurableHost, call: Caller
) -> None:
    store.create(make_record(5, phase=Phase.CANCELLED))
    durable_host.statuses[instance(5).migration_id] = "Completed"
    event = _request_event(5, request_id="req-5-again")
    _body(call("api_start_migration", "POST", "migrations", body=json.dumps(event)), 202)
    assert _started_state(durable_host.writes()[0]).request.request_id == "req-5-again"


def test_a_start_the_host_refuses_is_502_with_a_correlation_id(
    store: TableStore, durable_host: RecordingDurableHost, call: Caller
) -> None:
    durable_host.refuse_starts = True
    durable_host.statuses[instance(6).migration_id] = "Completed"
    response = call("api_start_migration", "POST", "migrations", body=json.dumps(_request_event(6)))
    # Completed is not running, so the refusal is the host's own: reported, not hidden as a 500.
    assert _body(response, 502)["error"]["correlation_id"]


# -- cutover -------------------------------------------------------------------------------------


def test_cutover_raises_failover_requested_with_the_event_data(
    store: TableStore, durable_host: RecordingDurableHost, call: Caller
) -> None:
    migration_id = _running(store, durable_host, 10, Phase.AWAITING_CUTOVER)

    body = _body(_signal(call, "cutover", migration_id, {"source_stopped": True, "reason": "window moved"}), 202)

    assert body["signal"] == EVENT_FAILOVER_REQUESTED
    assert body["phase"] == "AwaitingCutover"
    [raised] = durable_host.writes()
    assert raised.path == f"instances/{migration_id}/raiseEvent/{EVENT_FAILOVER_REQUESTED}"
    assert json.loads(raised.body) == {"instance": instance(10).model_dump(), "requested_by": "operator",
                                       "source_stopped": True, "reason": "window moved"}  # fmt: skip


def test_cutover_with_no_body_uses_the_defaults(
    store: TableStore, durable_host: RecordingDurableHost, call: Caller
) -> None:
    migration_id = _running(store, durable_host, 11, Phase.READY_FOR_CUTOVER)
    _body(_signal(call, "cutover", migration_id), 202)
    assert json.loads(durable_host.writes()[0].body)["source_stopped"] is False


FAILOVER_ASKED = {"failover_requested_at": datetime(2026, 3, 2, tzinfo=UTC)}


@pytest.mark.parametrize(
    "case",
    [
        (Phase.MIGRATED, {}, "AlreadyMigrated"),
        (Phase.FAILING_OVER, {}, "FailoverAlreadyRequested"),
        (Phase.AWAITING_CUTOVER, FAILOVER_ASKED, "FailoverAlreadyRequested"),
        (Phase.AWAITING_CUTOVER, {"cutover_plan": "w1-plan-1"}, "WaveOwnsCutover"),
        (Phase.FAILED, {}, "NotCuttable"),
        (Phase.CANCELLED, {}, "NotCuttable"),
    ],
)
def test_cutover_is_409_when_the_state_forbids_it(
    store: TableStore, durable_host: RecordingDurableHost, call: Caller, case: tuple[Phase, dict[str, Any], str]
) -> None:
    phase, changes, code = case
    migration_id = _running(store, durable_host, 12, phase, **changes)
    assert _body(_signal(call, "cutover", migration_id), 409)["error"]["code"] == code
    assert durable_host.writes() == []


@pytest.mark.parametrize(
    ("body", "mentions"),
    [
        ({"source_stoped": True}, "source_stoped"),
        ({"source_stopped": "perhaps"}, "source_stopped"),
        ({"reason": "x" * 600}, "reason"),
        ("{", "not valid JSON"),
    ],
)
def test_a_malformed_cutover_body_is_400(
    store: TableStore, durable_host: RecordingDurableHost, call: Caller, body: object, mentions: str
) -> None:
    migration_id = _running(store, durable_host, 13, Phase.AWAITING_CUTOVER)
    assert mentions in _body(_signal(call, "cutover", migration_id, body), 400)["error"]["message"]
    assert durable_host.writes() == []


def test_signals_to_an_unknown_migration_are_404_and_to_a_malformed_id_400(
    store: TableStore, durable_host: RecordingDurableHost, call: Caller
) -> None:
    for action in ("cutover", "approve", "cancel", "retry"):
        assert _body(_signal(call, action, instance(404).migration_id), 404)["error"]["code"] == "MigrationNotFound"
        assert _body(_signal(call, action, "i-123"), 400)["error"]["code"] == "InvalidInput"
    assert durable_host.writes() == []


def test_a_signal_with_no_running_orchestration_is_409(
    store: TableStore, durable_host: RecordingDurableHost, call: Caller
) -> None:
    migration_id = _running(store, durable_host, 14, Phase.AWAITING_CUTOVER)
    durable_host.statuses[migration_id] = "Terminated"
    error = _body(_signal(call, "cutover", migration_id), 409)["error"]
    assert error["code"] == "OrchestrationNotRunning"
    assert "Terminated" in error["message"]
    del durable_host.statuses[migration_id]
    assert _body(_signal(call, "cutover", migration_id), 409)["error"]["code"] == "OrchestrationNotRunning"


def test_an_unreachable_durable_host_is_503(store: TableStore, call: Caller) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    migration_id = store.create(make_record(15, phase=Phase.REPLICATING)).migration_id
    client_json = json.dumps({"taskHubName": "aws2azure", "creationUrls": {}, "managementUrls": {},
                              "rpcBaseUrl": f"http://127.0.0.1:{port}/runtime/webhooks/durabletask/"})  # fmt: skip
    response = call("api_cancel", "POST", "x", route={"migration_id": migration_id}, client_json=client_json)
    assert _body(response, 503)["error"]["code"] == "Unavailable"


# -- approve, cancel, retry ------------------------------------------------------------------------


def test_approve_raises_approved(store: TableStore, durable_host: RecordingDurableHost, call: Caller) -> None:
    migration_id = _running(store, durable_host, 20, Phase.READY_FOR_CUTOVER)
    assert _body(_signal(call, "approve", migration_id, {"reason": "change board ok"}), 202)["signal"] == "Approved"
    [raised] = durable_host.writes()
    assert raised.path.endswith(f"/raiseEvent/{EVENT_APPROVED}")
    assert json.loads(raised.body) == {"requested_by": "operator", "reason": "change board ok"}


def test_approving_a_finished_migration_is_409(
    store: TableStore, durable_host: RecordingDurableHost, call: Caller
) -> None:
    migration_id = _running(store, durable_host, 21, Phase.MIGRATED)
    assert _body(_signal(call, "approve", migration_id), 409)["error"]["code"] == "NothingToApprove"


def test_cancel_before_failover_raises_cancel_requested(
    store: TableStore, durable_host: RecordingDurableHost, call: Caller
) -> None:
    migration_id = _running(store, durable_host, 30, Phase.REPLICATING)
    _body(_signal(call, "cancel", migration_id, {"reason": "wrong wave"}), 202)
    [raised] = durable_host.writes()
    assert raised.path.endswith(f"/raiseEvent/{EVENT_CANCEL_REQUESTED}")
    assert json.loads(raised.body) == {"instance": instance(30).model_dump(), "requested_by": "operator",
                                       "reason": "wrong wave"}  # fmt: skip


@pytest.mark.parametrize("phase", [Phase.FAILING_OVER, Phase.COMMITTING, Phase.COMPLETING, Phase.MIGRATED])
def test_cancel_after_failover_started_is_409_and_says_why(
    store: TableStore, durable_host: RecordingDurableHost, call: Caller, phase: Phase
) -> None:
    migration_id = _running(store, durable_host, 31, phase)
    error = _body(_signal(call, "cancel", migration_id), 409)["error"]
    assert error["code"] == "FailoverStarted"
    assert "ASR must never cancel a migration failover" in error["message"]
    assert durable_host.writes() == []


def test_cancelling_an_ended_migration_is_409(
    store: TableStore, durable_host: RecordingDurableHost, call: Caller
) -> None:
    migration_id = _running(store, durable_host, 32, Phase.CANCELLED)
    assert _body(_signal(call, "cancel", migration_id), 409)["error"]["code"] == "AlreadyEnded"


def test_retry_of_a_migration_whose_orchestration_still_runs_is_409_and_sends_nothing(
    store: TableStore, durable_host: RecordingDurableHost, call: Caller
) -> None:
    """A retry means one thing (a new orchestration): one still running has not given up, and resumes itself."""
    migration_id = _running(store, durable_host, 40, Phase.FAILED)
    error = _body(_signal(call, "retry", migration_id, {"reason": "quota raised"}), 409)["error"]
    assert error["code"] == "StillRunning"
    assert "resumes by itself" in error["message"]
    assert durable_host.writes() == []


def test_retry_restarts_an_orchestration_that_ended_with_the_original_request(
    store: TableStore, durable_host: RecordingDurableHost, call: Caller
) -> None:
    migration_id = _running(store, durable_host, 41, Phase.FAILED, target_size="Standard_D4s_v5")
    durable_host.statuses[migration_id] = "Completed"

    assert _body(_signal(call, "retry", migration_id), 202)["signal"] == MIGRATE_INSTANCE

    [start] = durable_host.writes()
    assert start.path == f"orchestrators/{MIGRATE_INSTANCE}/{migration_id}"
    request = _started_state(start).request
    assert request.request_id == "req-41"
    assert request.target_size == "Standard_D4s_v5"
    assert request.wave == "w1"


@pytest.mark.parametrize("phase", [Phase.REPLICATING, Phase.MIGRATED, Phase.CANCELLED])
def test_retry_of_a_migration_that_did_not_fail_is_409(
    store: TableStore, durable_host: RecordingDurableHost, call: Caller, phase: Phase
) -> None:
    migration_id = _running(store, durable_host, 42, phase)
    error = _body(_signal(call, "retry", migration_id), 409)["error"]
    assert error["code"] == "NotFailed"
    assert phase.value in error["message"]


# -- wave cutover ------------------------------------------------------------------------------------


def _cut_over_wave(call: Caller, wave: str, body: object = None) -> func.HttpResponse:
    raw = None if body is None else json.dumps(body)
    return call("api_cut_over_wave", "POST", f"waves/{wave}/cutover", route={"wave": wave}, body=raw)


def test_a_wave_cutover_starts_migrate_wave_which_stops_the_sources_unless_an_operator_did(
    store: TableStore, durable_host: RecordingDurableHost, call: Caller
) -> None:
    _running(store, durable_host, 60, Phase.AWAITING_CUTOVER)
    started = _body(_cut_over_wave(call, "w1", {}), 202)
    assert started == {"wave": "w1", "orchestration_id": "wave-w1", "status": "started", "at": None}
    [start] = durable_host.writes()
    assert start.path == "orchestrators/migrate_wave/wave-w1"
    state = json.loads(start.body)
    assert (state["wave"], state["stop_sources"]) == ("w1", True)  # the AWS side stops them, ASR cannot
    durable_host.statuses.pop("wave-w1", None)
    durable_host.calls.clear()
    _body(_cut_over_wave(call, "w1", {"source_stopped": True}), 202)
    [again] = durable_host.writes()
    assert json.loads(again.body)["stop_sources"] is False  # an operator stopped them and said so


def test_a_wave_cutover_answers_errors_like_every_other_route(
    store: TableStore, durable_host: RecordingDurableHost, call: Caller
) -> None:
    _running(store, durable_host, 61, Phase.AWAITING_CUTOVER)
    assert _body(_cut_over_wave(call, "no-such-wave", {"source_stopped": True}), 404)["error"]["code"] == "WaveNotFound"
    bad = _body(_cut_over_wave(call, "w1", {"source_stopped": True, "surprise": 1}), 400)["error"]
    assert bad["code"] == "InvalidInput"
    assert any("surprise" in problem for problem in bad["problems"])
    durable_host.statuses["wave-w1"] = "Running"
    assert _body(_cut_over_wave(call, "w1", {"source_stopped": True}), 409)["error"]["code"] == "WaveCutoverRunning"
    assert durable_host.writes() == []


def test_a_wave_cutover_can_be_scheduled_for_the_waves_own_window(
    store: TableStore, durable_host: RecordingDurableHost, call: Caller
) -> None:
    _running(store, durable_host, 62, Phase.AWAITING_CUTOVER)
    now = datetime.now(UTC)
    for when, words in ((now - timedelta(minutes=5), "has passed"), (now + timedelta(days=120), "90 days")):
        refused = _body(_cut_over_wave(call, "w1", {"at": when.isoformat()}), 400)["error"]
        assert refused["code"] == "InvalidInput"
        assert words in refused["message"]
    naive = _body(_cut_over_wave(call, "w1", {"at": "2030-01-01T02:00:00"}), 400)["error"]
    assert any("timezone" in problem for problem in naive["problems"])
    assert durable_host.writes() == []  # nothing started by a refused request
    at = (now + timedelta(days=2)).replace(microsecond=0)
    started = _body(_cut_over_wave(call, "w1", {"at": at.isoformat()}), 202)
    assert datetime.fromisoformat(started["at"]) == at
    [start] = durable_host.writes()
    assert datetime.fromisoformat(json.loads(start.body)["cutover_at"]) == at


# -- resuming a suspended ASR job ----------------------------------------------------------------------


def test_resume_calls_asr_for_the_job_the_migration_waits_on_and_refuses_when_there_is_none(
    store: TableStore, durable_host: RecordingDurableHost, call: Caller
) -> None:
    from functions import bootstrap
    from tests.fakes import FakeAsr, ManualClock

    asr = FakeAsr()
    asr.jobs["job-9"] = AsrJob(job_id="job-9", state="Suspended", display_name="Commit", verdict="waiting_for_operator")
    waiting = _running(store, durable_host, 70, Phase.COMMITTING, current_job_id="job-9")
    idle = _running(store, durable_host, 71, Phase.REPLICATING)
    settings = bootstrap.services().settings
    bootstrap.configure(lambda: bootstrap.Services(settings, store=store, asr=asr, clock=ManualClock()))
    resume = functools.partial(call, "api_resume", "POST")
    resumed = _body(resume(f"migrations/{waiting}/resume", route={"migration_id": waiting}), 200)
    assert (resumed["job_id"], resumed["state"]) == ("job-9", "InProgress")
    assert asr.writes == [("ResumeJob", "job-9")]
    assert "AsrJobResumed" in [e.kind for e in store.list_events(waiting)]
    again = _body(resume(f"migrations/{waiting}/resume", route={"migration_id": waiting}), 409)["error"]
    assert again["code"] == "JobNotSuspended"  # ASR's refusal, said as it is
    nothing = _body(resume(f"migrations/{idle}/resume", route={"migration_id": idle}), 409)["error"]
    assert nothing["code"] == "NothingToResume"
    assert asr.writes == [("ResumeJob", "job-9")]


# -- rollback before commit (docs/ROLLBACK.md) -------------------------------------------------------


@pytest.mark.parametrize("phase", [Phase.VALIDATING, Phase.FAILING_OVER])
def test_rollback_of_a_running_failover_raises_rollback_requested(
    store: TableStore, durable_host: RecordingDurableHost, call: Caller, phase: Phase
) -> None:
    from functions.names import EVENT_ROLLBACK_REQUESTED

    migration_id = _running(store, durable_host, 60 + list(Phase).index(phase), phase)
    accepted = _body(_signal(call, "rollback", migration_id, {"reason": "the app does not answer"}), 202)
    assert accepted["action"] == "rollback"
    assert accepted["signal"] == EVENT_ROLLBACK_REQUESTED
    [raised] = durable_host.writes()
    assert raised.path.endswith(f"/raiseEvent/{EVENT_ROLLBACK_REQUESTED}")
    assert json.loads(raised.body) == {"requested_by": "operator", "reason": "the app does not answer"}


def test_rollback_of_a_failed_migration_after_its_failover_starts_one_that_rolls_back(
    store: TableStore, durable_host: RecordingDurableHost, call: Caller
) -> None:
    from migration.records import CutoverTimeline

    failed_over = CutoverTimeline(failover_done_at=datetime(2026, 3, 1, 12, tzinfo=UTC))
    migration_id = _running(store, durable_host, 70, Phase.FAILED, protected_item_name="item-70",
                            timeline=failed_over)  # fmt: skip
    durable_host.statuses[migration_id] = "Completed"

    assert _body(_signal(call, "rollback", migration_id, {"reason": "gate off"}), 202)["signal"] == MIGRATE_INSTANCE
    [start] = durable_host.writes()
    assert start.path == f"orchestrators/{MIGRATE_INSTANCE}/{migration_id}"
    kept = store.get(migration_id).rollback
    assert kept is not None
    assert kept.reason == "gate off"


@pytest.mark.parametrize("phase", [Phase.COMMITTING, Phase.COMPLETING, Phase.MIGRATED])
def test_rollback_after_the_commit_is_409_and_says_why(
    store: TableStore, durable_host: RecordingDurableHost, call: Caller, phase: Phase
) -> None:
    migration_id = _running(store, durable_host, 80 + list(Phase).index(phase), phase)
    error = _body(_signal(call, "rollback", migration_id), 409)["error"]
    assert error["code"] == "AlreadyCommitted"
    assert "commit ended ASR's failover: the Azure VM is the machine now" in error["message"]
    assert durable_host.writes() == []


@pytest.mark.parametrize("phase", [Phase.REPLICATING, Phase.AWAITING_CUTOVER])
def test_rollback_before_any_failover_is_409_and_says_cancel_instead(
    store: TableStore, durable_host: RecordingDurableHost, call: Caller, phase: Phase
) -> None:
    migration_id = _running(store, durable_host, 90 + list(Phase).index(phase), phase)
    error = _body(_signal(call, "rollback", migration_id), 409)["error"]
    assert error["code"] == "NotFailedOver"
    assert "cancel it instead" in error["message"]
    assert durable_host.writes() == []


def test_retry_of_a_rolled_back_migration_starts_it_again(
    store: TableStore, durable_host: RecordingDurableHost, call: Caller
) -> None:
    migration_id = _running(store, durable_host, 99, Phase.ROLLED_BACK)
    durable_host.statuses[migration_id] = "Completed"
    assert _body(_signal(call, "retry", migration_id), 202)["signal"] == MIGRATE_INSTANCE
