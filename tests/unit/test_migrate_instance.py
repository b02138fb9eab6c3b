"""migrate_instance, replayed from history through the real Durable Functions SDK.

The activities' answers come from a small scripted world (ASR jobs take ten minutes, initial
replication takes a given time); the orchestrator under test is the real one.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from devstack.replay import PendingActivity, Replay, orchestrator_handle
from functions import names
from functions.orchestrations import bp
from migration.lifecycle import WorkflowState

START = datetime(2026, 11, 26, 8, 0, tzinfo=UTC)
INSTANCE = {"account_id": "123456789012", "region": "eu-west-1", "instance_id": "i-0123456789abcdef0"}
JOB_TIME = timedelta(minutes=10)
HANDLE = orchestrator_handle(bp, names.MIGRATE_INSTANCE)


def request(**overrides: Any) -> dict[str, Any]:
    data = {"instance": INSTANCE, "private_ip": "10.0.1.15", "os_family": "linux", "request_id": "r-1"}
    data.update(overrides)
    return WorkflowState.model_validate({"request": data}).model_dump(mode="json")


def ok(**value: Any) -> dict[str, Any]:
    return {"ok": True, "value": value}


def error(kind: str, message: str, retry_after: float | None = None) -> dict[str, Any]:
    return {
        "ok": False,
        "value": {},
        "error": {"kind": kind, "message": message, "retry_after_seconds": retry_after},
    }


@dataclass
class World:
    """What ASR and the store would answer, as a function of the replay's clock."""

    replication_time: timedelta = timedelta(days=3)
    jobs: dict[str, tuple[datetime, str]] = field(default_factory=dict)
    replication_started: datetime | None = None
    failed_over: bool = False
    phases: list[tuple[str, str]] = field(default_factory=list)
    notes: list[tuple[str, str]] = field(default_factory=list)
    job_outcome: dict[str, str] = field(default_factory=dict)
    stall_at: int | None = None
    overrides: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    register_answer: dict[str, Any] | None = None
    # The validation gate's looks at the failed-over VM, in order ("passed" once they run out).
    vm_looks: list[str] = field(default_factory=list)

    def start_job(self, name: str, now: datetime) -> dict[str, Any]:
        job_id = f"job-{name}-{len(self.jobs)}"
        self.jobs[job_id] = (now, self.job_outcome.get(name, "Succeeded"))
        return ok(job_id=job_id, protected_item_name="item-1")

    def progress(self, now: datetime) -> int:
        assert self.replication_started is not None
        share = (now - self.replication_started) / self.replication_time
        value = min(100, int(share * 100))
        return min(value, self.stall_at) if self.stall_at is not None else value

    def __call__(self, activity: PendingActivity, replay: Replay) -> dict[str, Any]:
        queued = self.overrides.get(activity.name)
        if queued:
            return queued.pop(0)
        now, payload = replay.now, activity.input
        match activity.name:
            case "register":
                return self.register_answer or ok(migration_id="m", phase="Requested", new_request=True)
            case "start_replication":
                self.replication_started = now
                return self.start_job("enable", now)
            case "get_job":
                started, outcome = self.jobs[payload["job_id"]]
                if now - started < JOB_TIME:
                    return ok(job_id=payload["job_id"], state="InProgress")
                if outcome == "Succeeded" and "failover" in payload["job_id"]:
                    self.failed_over = True
                return ok(job_id=payload["job_id"], state=outcome, errors=[] if outcome == "Succeeded" else
                          ["70094: the replication appliance lost contact with the source"])  # fmt: skip
            case "observe_replication":
                progress = self.progress(now)
                ready = progress >= 100 and now - self.replication_started >= self.replication_time  # type: ignore[operator]
                return ok(protection_state="Protected" if ready else "InitialReplicationInProgress",
                          replication_health="Critical" if self.stall_at is not None else "Normal",
                          progress_percent=progress, ready_for_cutover=ready and not self.failed_over,
                          failed_over=self.failed_over,
                          health_errors=["NoProgress"] if self.stall_at is not None else [])  # fmt: skip
            case "validate_failover":
                verdict = self.vm_looks.pop(0) if self.vm_looks else "passed"
                findings = [] if verdict == "passed" else [f"the VM is not running (PowerState/{verdict})"]
                return ok(vm_id="/subscriptions/s/resourceGroups/t/providers/Microsoft.Compute/virtualMachines/i-1",
                          provisioning_state="succeeded", power_state="running" if verdict == "passed" else "starting",
                          agent_status="Ready", verdict="passed" if verdict == "passed" else
                          "failed" if verdict == "stopped" else "pending", findings=findings)  # fmt: skip
            case "remove_failed_over_vm":
                return ok(vm_id="/subscriptions/s/resourceGroups/t/providers/Microsoft.Compute/virtualMachines/i-1",
                          gone=True)  # fmt: skip
            case "record_phase":
                self.phases.append((payload["phase"], payload["reason"]))
                return ok()
            case "log_event":
                self.notes.append((payload["kind"], payload["message"]))
                return ok()
            case name if name.startswith("start_"):
                return self.start_job(name.removeprefix("start_"), now)
        raise AssertionError(f"unexpected activity {activity.name}")


def failover_event(stopped: bool = True, by: str = "schedule") -> dict[str, Any]:
    return {"instance": INSTANCE, "requested_by": by, "source_stopped": stopped}


def raise_when(condition: Any, name: str, payload: Any, *, times: int = 1) -> Any:
    """A hook that raises an external event (``times`` deliveries) once ``condition(replay)`` holds."""
    fired = {"done": False}

    def hook(replay: Replay) -> None:
        if not fired["done"] and condition(replay):
            fired["done"] = True
            for _ in range(times):
                replay.raise_event(name, payload)

    return hook


def awaiting(world: World) -> Any:
    return lambda replay: any(phase == "AwaitingCutover" for phase, _ in world.phases)


def calls(replay: Replay) -> Counter[str]:
    return Counter(name for name, _ in replay.calls)


def test_happy_path_ends_migrated_after_one_failover_commit_and_completion() -> None:
    world = World()
    replay = Replay(HANDLE, request(), START)
    output = replay.run(world, before_episode=raise_when(awaiting(world), names.EVENT_FAILOVER_REQUESTED,
                                                         failover_event()))  # fmt: skip
    assert output["outcome"] == "Migrated"
    made = calls(replay)
    assert made["start_replication"] == 1
    assert made["start_failover"] == 1
    assert made["start_commit"] == 1
    assert made["start_complete_migration"] == 1
    assert [p for p, _ in world.phases] == ["ReadyForCutover", "AwaitingCutover", "Migrated"]


def test_a_three_day_replication_is_watched_with_few_asr_reads_and_bounded_history() -> None:
    world = World(replication_time=timedelta(days=3))
    replay = Replay(HANDLE, request(), START)
    replay.run(world, before_episode=raise_when(awaiting(world), names.EVENT_FAILOVER_REQUESTED, failover_event()))
    made = calls(replay)
    # A fixed 5-minute poll would read about 860 times; the adaptive one a handful.
    assert made["observe_replication"] <= 20
    assert made["get_job"] <= 12
    assert replay.max_history <= 300


def test_a_long_replication_continues_as_new_and_keeps_each_history_small() -> None:
    world = World(replication_time=timedelta(days=40))
    replay = Replay(HANDLE, request(), START)
    replay.run(world, before_episode=raise_when(awaiting(world), names.EVENT_FAILOVER_REQUESTED, failover_event()))
    assert replay.executions >= 2
    assert replay.max_history <= 300
    assert calls(replay)["start_replication"] == 1
    assert replay.output["outcome"] == "Migrated"


def test_failover_requested_three_times_fails_over_once() -> None:
    world = World()
    replay = Replay(HANDLE, request(), START)
    thrice = raise_when(awaiting(world), names.EVENT_FAILOVER_REQUESTED, failover_event(), times=3)
    replay.run(world, before_episode=thrice)
    assert calls(replay)["start_failover"] == 1
    # The SDK keeps the latest of the events that arrived with no waiter; it is seen and ignored.
    assert [kind for kind, _ in world.notes].count("DuplicateIgnored") >= 1
    assert replay.output["outcome"] == "Migrated"


def test_an_early_failover_request_is_remembered_until_replication_is_ready() -> None:
    world = World()
    replay = Replay(HANDLE, request(), START)
    early = raise_when(lambda r: world.replication_started is not None, names.EVENT_FAILOVER_REQUESTED,
                       failover_event(by="operator"))  # fmt: skip
    replay.run(world, before_episode=early)
    assert replay.output["outcome"] == "Migrated"
    assert calls(replay)["start_failover"] == 1


def test_a_failover_request_without_a_stopped_source_is_deferred() -> None:
    world = World()
    replay = Replay(HANDLE, request(), START)
    unstopped = raise_when(awaiting(world), names.EVENT_FAILOVER_REQUESTED, failover_event(stopped=False))
    stopped = raise_when(lambda r: any(k == "FailoverDeferred" for k, _ in world.notes),
                         names.EVENT_FAILOVER_REQUESTED, failover_event())  # fmt: skip

    def both(r: Replay) -> None:
        unstopped(r)
        stopped(r)

    replay.run(world, before_episode=both)
    assert "FailoverDeferred" in [k for k, _ in world.notes]
    assert calls(replay)["start_failover"] == 1


def test_cancel_before_failover_disables_replication_and_ends_cancelled() -> None:
    world = World()
    replay = Replay(HANDLE, request(), START)
    cancel = {"instance": INSTANCE, "requested_by": "tag-removed", "reason": "tag removed"}
    replay.run(world, before_episode=raise_when(lambda r: world.replication_started is not None,
                                                names.EVENT_CANCEL_REQUESTED, cancel))  # fmt: skip
    assert replay.output["outcome"] == "Cancelled"
    made = calls(replay)
    assert made["start_disable_replication"] == 1
    assert made["start_failover"] == 0
    assert world.phases[-1] == ("Cancelled", "cancelled by tag-removed: tag removed")


def test_cancel_after_failover_started_is_refused_and_the_migration_completes() -> None:
    world = World()
    replay = Replay(HANDLE, request(), START)
    cancel = {"instance": INSTANCE, "requested_by": "operator", "reason": "cold feet"}
    failover = raise_when(awaiting(world), names.EVENT_FAILOVER_REQUESTED, failover_event())
    late_cancel = raise_when(lambda r: calls(r)["start_failover"] == 1, names.EVENT_CANCEL_REQUESTED, cancel)

    def both(r: Replay) -> None:
        failover(r)
        late_cancel(r)

    replay.run(world, before_episode=both)
    assert replay.output["outcome"] == "Migrated"
    assert any(kind == "CancelRefused" and "never cancel a migration failover" in msg for kind, msg in world.notes)


def test_throttling_waits_exactly_the_retry_after_and_tries_again() -> None:
    world = World(overrides={"start_replication": [error("throttled", "429 Too Many Requests", retry_after=137)]})
    replay = Replay(HANDLE, request(), START)
    replay.episode()
    replay.complete_activity(replay.activities[0], world(replay.activities[0], replay))  # register
    replay.episode()
    replay.complete_activity(replay.activities[0], world(replay.activities[0], replay))  # throttled
    replay.episode()
    assert [t.fire_at - START for t in replay.timers] == [timedelta(seconds=137)]
    replay.fire_next_timer()
    replay.episode()
    assert [a.name for a in replay.activities] == ["start_replication"]


def test_a_failed_asr_job_fails_the_migration_with_asr_s_reason() -> None:
    world = World(job_outcome={"enable": "Failed"})
    replay = Replay(HANDLE, request(), START)
    replay.run(world)
    phase, reason = world.phases[-1]
    assert phase == "Failed"
    assert "70094" in reason
    assert replay.output["outcome"] == "Failed"


def test_an_undiscovered_machine_is_not_ready_with_the_reason() -> None:
    world = World(overrides={"start_replication": [error("not_found", "no discovered machine has IP 10.0.1.15")]})
    replay = Replay(HANDLE, request(), START)
    replay.run(world)
    assert world.phases[-1][0] == "NotReady"
    assert "10.0.1.15" in world.phases[-1][1]


def test_transient_errors_are_retried_on_a_time_budget_not_an_attempt_count() -> None:
    # 40 answers of 503 in a row (hours of back-off): more than one execution's attempts, well within 6 h.
    world = World(overrides={"start_replication": [error("transient", "503 from ASR")] * 40})
    replay = Replay(HANDLE, request(), START)
    output = replay.run(world, before_episode=raise_when(awaiting(world), names.EVENT_FAILOVER_REQUESTED,
                                                         failover_event()))  # fmt: skip
    assert calls(replay)["start_replication"] == 41
    assert output["outcome"] == "Migrated"
    # The retries continued as new every few attempts: no execution's history grew with them.
    assert replay.executions > 5
    assert replay.max_history < 400


def test_transient_errors_past_the_retry_budget_give_up_with_a_failed_phase() -> None:
    # Throttled with Retry-After 10 min, without end: the 6 h budget is spent after about 36 attempts.
    world = World(overrides={"start_replication": [error("throttled", "429 from ASR", retry_after=600)] * 500})
    replay = Replay(HANDLE, request(), START)
    replay.run(world)
    assert 30 <= calls(replay)["start_replication"] <= 37
    assert replay.now - START <= timedelta(hours=6)
    assert world.phases[-1][0] == "Failed"
    assert "429" in world.phases[-1][1]
    assert "retry budget" in world.phases[-1][1]


def test_a_stalled_replication_fails_with_an_actionable_reason() -> None:
    world = World(stall_at=42)
    replay = Replay(HANDLE, request(), START)
    replay.run(world)
    phase, reason = world.phases[-1]
    assert phase == "Failed"
    assert "stalled at 42%" in reason
    assert "appliance" in reason


def test_a_window_that_opens_without_a_stopped_source_keeps_waiting_and_says_why() -> None:
    world = World()
    cutover_at = START + timedelta(days=4)
    replay = Replay(HANDLE, request(cutover_at=cutover_at.isoformat()), START)
    late = raise_when(lambda r: r.now >= cutover_at + timedelta(hours=1), names.EVENT_FAILOVER_REQUESTED,
                      failover_event())  # fmt: skip
    replay.run(world, before_episode=late)
    reasons = [reason for phase, reason in world.phases if phase == "AwaitingCutover"]
    assert any("window reached" in reason for reason in reasons)
    assert replay.output["outcome"] == "Migrated"


def test_test_failover_runs_and_cleans_up_before_cutover() -> None:
    world = World()
    replay = Replay(HANDLE, request(test_failover=True), START)
    replay.run(world, before_episode=raise_when(awaiting(world), names.EVENT_FAILOVER_REQUESTED, failover_event()))
    order = [name for name, _ in replay.calls if name.startswith("start_")]
    assert order == [
        "start_replication", "start_test_failover", "start_test_failover_cleanup",
        "start_failover", "start_commit", "start_complete_migration",
    ]  # fmt: skip


def test_an_approval_gate_holds_the_failover_until_approved() -> None:
    world = World()
    state = request()
    state["approval_required"] = True
    replay = Replay(HANDLE, state, START)
    failover = raise_when(awaiting(world), names.EVENT_FAILOVER_REQUESTED, failover_event())
    approve = raise_when(lambda r: r.now >= START + timedelta(days=5), names.EVENT_APPROVED, {"by": "ops"})

    def both(r: Replay) -> None:
        failover(r)
        approve(r)

    replay.run(world, before_episode=both)
    reasons = [reason for phase, reason in world.phases if phase == "AwaitingCutover"]
    assert any("approval" in reason for reason in reasons)
    assert replay.output["outcome"] == "Migrated"


def test_a_retry_after_failover_resumes_at_commit_without_failing_over_again() -> None:
    world = World(failed_over=True, replication_started=START,
                  register_answer=ok(migration_id="m", phase="Failed", protected_item_name="item-1",
                                     new_request=True))  # fmt: skip
    replay = Replay(HANDLE, request(), START)
    replay.run(world)
    made = calls(replay)
    assert made["start_failover"] == 0
    assert made["start_replication"] == 0
    assert made["start_commit"] == 1
    assert replay.output["outcome"] == "Migrated"


@pytest.mark.parametrize("payload", [{"nonsense": True}, "just a string"])
def test_a_malformed_event_payload_is_logged_and_ignored(payload: Any) -> None:
    world = World()
    replay = Replay(HANDLE, request(), START)
    bad = raise_when(lambda r: world.replication_started is not None, names.EVENT_FAILOVER_REQUESTED, payload)
    good = raise_when(awaiting(world), names.EVENT_FAILOVER_REQUESTED, failover_event())

    def both(r: Replay) -> None:
        bad(r)
        good(r)

    replay.run(world, before_episode=both)
    assert any(kind == "EventRejected" for kind, _ in world.notes)
    assert replay.output["outcome"] == "Migrated"


def test_a_member_claimed_by_its_wave_waits_for_the_plan_and_then_completes() -> None:
    message = "cut over with its wave in recovery plan p1"
    claimed = {"ok": False, "value": {}, "error": {"kind": "precondition", "code": "ClaimedByWave", "message": message}}
    world = World(overrides={"start_failover": [claimed]})
    replay = Replay(HANDLE, request(), START)
    failover = raise_when(awaiting(world), names.EVENT_FAILOVER_REQUESTED, failover_event())
    plan_done = raise_when(lambda r: any(k == "FailoverDeferred" for k, _ in world.notes),
                           names.EVENT_PLAN_CUTOVER_DONE, {"plan": "p1"})  # fmt: skip

    def both(r: Replay) -> None:
        failover(r)
        plan_done(r)

    replay.run(world, before_episode=both)
    made = calls(replay)
    assert made["start_commit"] == 0
    assert made["start_complete_migration"] == 1
    assert replay.output["outcome"] == "Migrated"


def test_a_member_whose_plan_failed_is_told_and_cuts_over_alone_when_asked_again() -> None:
    """A failed plan releases its members: each resumes from ASR's state instead of waiting forever."""
    message = "cut over with its wave in recovery plan p1"
    claimed = {"ok": False, "value": {}, "error": {"kind": "precondition", "code": "ClaimedByWave", "message": message}}
    world = World(overrides={"start_failover": [claimed]})
    replay = Replay(HANDLE, request(), START)
    first = raise_when(awaiting(world), names.EVENT_FAILOVER_REQUESTED, failover_event())
    released = {"plan": "p1", "reason": "28031: a VM failed"}
    plan_failed = raise_when(lambda r: any(k == "FailoverDeferred" for k, _ in world.notes),
                             names.EVENT_PLAN_CUTOVER_FAILED, released)  # fmt: skip
    # After the release the member is back awaiting its cutover; the operator asks again.
    second = raise_when(lambda r: any(k == "PlanCutoverFailed" for k, _ in world.notes) and awaiting(world)(r),
                        names.EVENT_FAILOVER_REQUESTED, failover_event())  # fmt: skip

    def events(r: Replay) -> None:
        first(r)
        plan_failed(r)
        second(r)

    replay.run(world, before_episode=events)
    notes = [kind for kind, _ in world.notes]
    assert "PlanCutoverFailed" in notes
    assert any("28031" in text for kind, text in world.notes if kind == "PlanCutoverFailed")
    made = calls(replay)
    assert made["start_failover"] == 2  # the refused (claimed) attempt, then its own failover
    assert made["start_commit"] == 1
    assert replay.output["outcome"] == "Migrated"


def test_an_event_payload_sent_as_json_text_is_understood() -> None:
    """The Python Durable client double-encodes event data; the orchestrator decodes it."""
    world = World()
    replay = Replay(HANDLE, request(), START)
    as_text = raise_when(awaiting(world), names.EVENT_FAILOVER_REQUESTED, json.dumps(failover_event()))
    replay.run(world, before_episode=as_text)
    assert calls(replay)["start_failover"] == 1
    assert replay.output["outcome"] == "Migrated"


def test_the_poll_floor_comes_from_the_settings_the_orchestration_started_with() -> None:
    from functions.dispatch import initial_state
    from functions.settings import FunctionSettings
    from migration.events import MigrationRequestedData

    settings = FunctionSettings.from_environment({
        "STATE_STORAGE": "UseDevelopmentStorage=true", "ASR_SUBSCRIPTION_ID": "s", "ASR_RESOURCE_GROUP": "rg",
        "ASR_VAULT_NAME": "v", "TARGET_RESOURCE_GROUP_ID": "t", "TARGET_NETWORK_ID": "n",
        "TARGET_DEFAULT_SUBNET": "s", "POLL_FLOOR_SECONDS": "60", "APPROVAL_REQUIRED_WAVES": "w1, w2",
        "ASR_CACHE_STORAGE_ACCOUNT_ID": "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Storage/storageAccounts/c",  # noqa: E501
    })  # fmt: skip
    data = MigrationRequestedData.model_validate(request()["request"] | {"wave": "w2"})
    state = initial_state(data, settings)
    assert (state.poll_floor_seconds, state.approval_required) == (60, True)
    replay = Replay(HANDLE, state.model_dump(mode="json"), START)
    world = World()
    replay.episode()
    replay.complete_activity(replay.activities[0], world(replay.activities[0], replay))  # register
    replay.episode()
    replay.complete_activity(replay.activities[0], world(replay.activities[0], replay))  # enable replication
    replay.episode()
    assert [t.fire_at - START for t in replay.timers] == [timedelta(seconds=60)]


def test_the_gate_looks_again_while_the_vm_starts_then_commits() -> None:
    world = World(vm_looks=["starting", "starting"])
    replay = Replay(HANDLE, request(), START)
    output = replay.run(world, before_episode=raise_when(awaiting(world), names.EVENT_FAILOVER_REQUESTED,
                                                         failover_event()))  # fmt: skip
    assert output["outcome"] == "Migrated"
    assert calls(replay)["validate_failover"] == 3
    assert calls(replay)["start_commit"] == 1
    assert "ValidationPassed" in {kind for kind, _ in world.notes}


def test_a_vm_that_fails_the_gate_is_never_committed_and_is_rolled_back() -> None:
    world = World(vm_looks=["stopped"])
    replay = Replay(HANDLE, request(), START)
    output = replay.run(world, before_episode=raise_when(awaiting(world), names.EVENT_FAILOVER_REQUESTED,
                                                         failover_event()))  # fmt: skip
    assert output["outcome"] == "RolledBack"
    assert calls(replay)["start_commit"] == 0
    assert calls(replay)["start_rollback"] == 1
    assert calls(replay)["remove_failed_over_vm"] == 1
    assert world.phases[-1][0] == "RolledBack"
    assert "rolled back before commit" in world.phases[-1][1]
    assert any(kind == "ValidationFailed" and "PowerState/stopped" in message for kind, message in world.notes)
    kinds = [kind for kind, _ in world.notes]
    assert kinds.index("RollbackStarted") < kinds.index("ProtectionDisabled") < kinds.index("RolledBack")
