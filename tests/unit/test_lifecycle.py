"""The lifecycle's decisions, as pure functions: state + what happened -> state + commands."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from migration import lifecycle as lc
from migration.contracts import Registered, ReplicationSnapshot
from migration.lifecycle import Finish, Note, Phase, Record, Sleep, Stage, WorkflowState
from migration.outcome import StepError
from migration.ports import AsrJob, VmHealth

NOW = datetime(2026, 12, 1, 22, tzinfo=UTC)
REQUEST = {"instance": {"account_id": "123456789012", "region": "eu-west-1", "instance_id": "i-0123456789abcdef0"},
           "private_ip": "10.0.1.15", "os_family": "linux", "request_id": "r-1"}  # fmt: skip


def state(**fields: object) -> WorkflowState:
    return WorkflowState.model_validate({"request": REQUEST, **fields})


def snapshot(**fields: object) -> ReplicationSnapshot:
    base = {"protection_state": "Protecting", "replication_health": "Normal", "progress_percent": 40,
            "ready_for_cutover": False, "failed_over": False, "health_errors": []}  # fmt: skip
    return ReplicationSnapshot.model_validate(base | fields)


def test_every_phase_group_agrees_with_the_transition_table() -> None:
    assert frozenset(Phase) == lc.ACTIVE_PHASES | lc.TERMINAL_PHASES
    assert not lc.CANCELLABLE_PHASES & lc.FAILOVER_STARTED_PHASES
    # Nothing may move from a failover-started phase back to before the failover.
    for phase in lc.FAILOVER_STARTED_PHASES:
        assert not lc.ALLOWED_TRANSITIONS[phase] & lc.CANCELLABLE_PHASES
    # The stages that count as "failover started" are exactly those whose phase does.
    assert {lc.STAGE_PHASE[s] for s in lc.FAILOVER_STARTED_STAGES} <= lc.FAILOVER_STARTED_PHASES
    assert Stage.FAILOVER in lc.FAILOVER_STARTED_STAGES
    assert Stage.AWAIT_CUTOVER not in lc.FAILOVER_STARTED_STAGES


def test_a_restart_resumes_watching_the_job_its_record_names() -> None:
    s = state()
    registered = Registered(migration_id="m", phase=Phase.FAILING_OVER, protected_item_name="item",
                            current_job_id="job-7", new_request=False)  # fmt: skip
    assert lc.after_register(s, registered, None, NOW).commands == []
    assert (s.stage, s.job_id) == (Stage.WATCH_FAILOVER, "job-7")


def test_a_machine_that_cannot_be_enabled_ends_not_ready_with_the_reason() -> None:
    s = state(stage=Stage.ENABLE)
    error = StepError(kind="precondition", message="Windows 2003 is not supported")
    [command] = lc.after_start(s, None, error, NOW).commands
    assert command == Finish(Phase.NOT_READY, "not ready for replication: Windows 2003 is not supported")
    assert s.stage is Stage.DONE


def test_a_claimed_member_waits_for_its_wave() -> None:
    s = state(stage=Stage.FAILOVER, cutover={"instance": REQUEST["instance"], "requested_by": "schedule",
                                             "source_stopped": True})  # fmt: skip
    error = StepError(kind="precondition", message="cut over with its wave", code=lc.CLAIMED_BY_WAVE)
    [command] = lc.after_start(s, None, error, NOW).commands
    assert isinstance(command, Note)
    assert (s.stage, s.cutover) == (Stage.AWAIT_CUTOVER, None)


@pytest.mark.parametrize("job_state", ["NotStarted", "InProgress", "Suspended"])
def test_an_unfinished_job_is_watched_again(job_state: str) -> None:
    s = state(stage=Stage.WATCH_COMMIT, job_id="j")
    assert lc.after_job(s, AsrJob(job_id="j", state=job_state), None).commands == []
    assert (s.stage, s.job_checks) == (Stage.WATCH_COMMIT, 1)


def test_a_failover_job_is_read_every_minute_for_its_usual_length_other_jobs_at_the_floor() -> None:
    """The source is stopped while the failover runs: a 5-minute poll would add up to 5 minutes of downtime."""

    def delays(stage: Stage, checks: range) -> list[timedelta]:
        waits = []
        for done in checks:
            [sleep] = lc.watch_job(state(stage=stage, job_id="j", job_checks=done), NOW).commands
            assert isinstance(sleep, Sleep)
            waits.append(sleep.until - NOW)
        return waits

    assert delays(Stage.WATCH_FAILOVER, range(1)) == [timedelta(minutes=5)]  # no failover is over sooner
    assert set(delays(Stage.WATCH_FAILOVER, range(1, 20))) == {timedelta(minutes=1)}
    assert delays(Stage.WATCH_FAILOVER, range(20, 21)) >= [timedelta(minutes=5)]  # a slow job: back to the pace
    assert min(delays(Stage.WATCH_COMMIT, range(5))) == timedelta(minutes=5)  # after the VM runs: no downtime


def test_a_failed_job_asr_offers_no_restart_for_ends_failed_with_asr_s_errors() -> None:
    s = state(stage=Stage.WATCH_FAILOVER, job_id="j")
    job = AsrJob(job_id="j", state="Failed", display_name="Failover", errors=("28031: no VM",))
    assert lc.after_job(s, job, None).commands == [
        Finish(Phase.FAILED, "ASR job Failover Failed: 28031: no VM (ASR offers no restart of this job)")
    ]


def test_a_failed_job_asr_lets_restart_is_restarted_a_bounded_number_of_times() -> None:
    s = state(stage=Stage.WATCH_COMMIT, job_id="j0")
    for attempt in range(1, lc.MAX_JOB_RESTARTS + 1):
        failed = AsrJob(job_id=s.job_id or "", state="Failed", display_name="Commit", restartable=True)
        assert lc.after_job(s, failed, None).commands == []
        assert (s.stage, s.restart_pending, s.job_restarts) == (Stage.WATCH_COMMIT, True, attempt)
        assert lc.after_restart(s, f"j{attempt}", None).commands == []
        assert (s.job_id, s.restart_pending) == (f"j{attempt}", False)
    failed = AsrJob(job_id="j3", state="Failed", display_name="Commit", errors=("28031: x",), restartable=True)
    [finish] = lc.after_job(s, failed, None).commands
    assert isinstance(finish, Finish)
    assert finish.phase is Phase.FAILED
    assert "restarted 3 times" in finish.reason
    assert "28031" in finish.reason


def test_a_restart_that_asr_refuses_ends_failed_with_the_refusal() -> None:
    s = state(stage=Stage.WATCH_ENABLE, job_id="j", restart_pending=True, job_restarts=1)
    refusal = StepError(kind="precondition", message="ASR does not offer Restart", code="JobNotRestartable")
    [finish] = lc.after_restart(s, None, refusal).commands
    assert isinstance(finish, Finish)
    assert "JobNotRestartable" in finish.reason


def test_a_succeeded_job_resets_the_restart_count() -> None:
    s = state(stage=Stage.WATCH_COMMIT, job_id="j", job_restarts=2)
    lc.after_job(s, AsrJob(job_id="j", state="Succeeded"), None)
    assert (s.stage, s.job_restarts) == (Stage.COMPLETE, 0)


def test_a_transient_failure_to_look_at_health_while_waiting_is_not_a_failure() -> None:
    s = state(stage=Stage.AWAIT_CUTOVER)
    assert lc.after_health_check(s, False, StepError(kind="throttled", message="429")).commands == []
    [finish] = lc.after_health_check(s, False, StepError(kind="permanent", message="gone")).commands
    assert isinstance(finish, Finish)


def test_the_last_job_ends_migrated() -> None:
    s = state(stage=Stage.WATCH_COMPLETE, job_id="j")
    assert lc.after_job(s, AsrJob(job_id="j", state="Succeeded"), None).commands == [Finish(Phase.MIGRATED, "")]


def test_a_replication_that_can_be_cut_over_records_it_and_waits_or_tests_first() -> None:
    plain, tested = state(stage=Stage.MONITOR), state(stage=Stage.MONITOR, request=REQUEST | {"test_failover": True})
    for s, expected in ((plain, Stage.AWAIT_CUTOVER), (tested, Stage.TEST_FAILOVER)):
        assert lc.after_observation(s, snapshot(ready_for_cutover=True), None, NOW).commands == [
            Record(Phase.READY_FOR_CUTOVER)
        ]
        assert s.stage is expected


def test_a_stalled_unhealthy_replication_fails_and_a_healthy_one_sleeps() -> None:
    s = state(stage=Stage.MONITOR, last_progress=40, no_progress_since=NOW - timedelta(hours=13),
              replication_started_at=NOW - timedelta(days=1))  # fmt: skip
    [command] = lc.after_observation(
        s, snapshot(replication_health="Critical", health_errors=["x"]), None, NOW
    ).commands
    assert isinstance(command, Finish)
    assert command.phase is Phase.FAILED
    assert "stalled at 40%" in command.reason
    healthy = state(stage=Stage.MONITOR, replication_started_at=NOW - timedelta(days=1))
    [sleep] = lc.after_observation(healthy, snapshot(progress_percent=50), None, NOW).commands
    assert isinstance(sleep, Sleep)
    assert sleep.until > NOW


def test_the_cutover_window_wakes_the_wait_and_is_remembered() -> None:
    window = NOW + timedelta(hours=2)
    s = state(stage=Stage.AWAIT_CUTOVER, request=REQUEST | {"cutover_at": window.isoformat()})
    record, sleep = lc.await_cutover(s, NOW).commands
    assert record == Record(Phase.AWAITING_CUTOVER, f"waiting for the cutover window at {window.isoformat()}")
    assert sleep == Sleep(window, "window")
    assert lc.on_timer(s, "window").commands == []
    assert s.window_reached


def test_cancel_is_refused_once_the_failover_has_started() -> None:
    s = state(stage=Stage.WATCH_FAILOVER)
    payload = {"instance": REQUEST["instance"], "requested_by": "operator", "reason": "oops"}
    [note] = lc.on_event(s, lc.EVENT_CANCEL, payload).commands
    assert isinstance(note, Note)
    assert note.kind == "CancelRefused"
    assert s.stage is Stage.WATCH_FAILOVER


def test_a_second_failover_request_is_ignored_and_an_unstopped_source_is_not_failed_over() -> None:
    s = state(stage=Stage.AWAIT_CUTOVER)
    stopped = {"instance": REQUEST["instance"], "requested_by": "schedule", "source_stopped": True}
    running = stopped | {"source_stopped": False}
    assert [n.kind for n in lc.on_event(s, lc.EVENT_FAILOVER, running).commands] == ["FailoverDeferred"]  # type: ignore[union-attr]
    assert s.cutover is None
    assert [n.kind for n in lc.on_event(s, lc.EVENT_FAILOVER, stopped).commands] == ["FailoverRequested"]  # type: ignore[union-attr]
    assert [n.kind for n in lc.on_event(s, lc.EVENT_FAILOVER, stopped).commands] == ["DuplicateIgnored"]  # type: ignore[union-attr]


def test_a_failed_plan_sends_its_member_back_to_asr_s_state() -> None:
    s = state(stage=Stage.AWAIT_CUTOVER)
    [note] = lc.on_event(s, lc.EVENT_PLAN_FAILED, {"plan": "p1", "reason": "28031"}).commands
    assert isinstance(note, Note)
    assert "28031" in note.message
    assert s.stage is Stage.MONITOR


# -- the validation gate between failover and commit ---------------------------------------------------

VM = "/subscriptions/s/resourceGroups/target/providers/Microsoft.Compute/virtualMachines/i-0123456789abcdef0"


def vm(power: str = "running", agent: str | None = "Ready", provisioning: str = "succeeded") -> VmHealth:
    return VmHealth.judge(VM, provisioning_state=provisioning, power_state=power, agent_status=agent)


def test_the_failover_job_s_success_leads_to_the_gate_not_the_commit() -> None:
    s = state(stage=Stage.WATCH_FAILOVER, job_id="job-f")
    assert lc.after_job(s, AsrJob(job_id="job-f", state="Succeeded"), None).commands == []
    assert s.stage is Stage.VALIDATE
    assert Stage.VALIDATE in lc.FAILOVER_STARTED_STAGES
    assert Phase.VALIDATING in lc.FAILOVER_STARTED_PHASES
    assert not lc.is_cancellable(Phase.VALIDATING)
    assert lc.ALLOWED_TRANSITIONS[Phase.VALIDATING] == {Phase.COMMITTING, Phase.ROLLING_BACK, Phase.FAILED}


def test_a_vm_that_runs_with_a_ready_agent_passes_and_is_committed() -> None:
    s = state(stage=Stage.VALIDATE)
    [note] = lc.after_validation(s, vm(), None, NOW).commands
    assert isinstance(note, Note)
    assert note.kind == "ValidationPassed"
    assert s.stage is Stage.COMMIT


def test_a_vm_still_starting_is_looked_at_again_after_a_short_pause() -> None:
    s = state(stage=Stage.VALIDATE)
    [sleep] = lc.after_validation(s, vm(power="starting", agent=None), None, NOW).commands
    assert sleep == Sleep(NOW + lc.VALIDATION_RECHECK, "validate")
    assert s.stage is Stage.VALIDATE
    assert s.validation_started_at == NOW
    # A VM not found yet, or an agent not Ready yet, is a wait too.
    [sleep] = lc.after_validation(s, VmHealth.not_found(VM), None, NOW + timedelta(minutes=1)).commands
    assert isinstance(sleep, Sleep)
    [sleep] = lc.after_validation(s, vm(agent="Not Ready"), None, NOW + timedelta(minutes=2)).commands
    assert isinstance(sleep, Sleep)
    assert s.validation_looks == 3


def test_past_the_bound_the_migration_fails_with_the_findings_and_nothing_is_committed() -> None:
    s = state(
        stage=Stage.VALIDATE,
        validation_started_at=NOW,
        validation_bound_seconds=1200,
        rollback_on_failed_validation=False,
    )
    note, finish = lc.after_validation(s, vm(agent="Not Ready"), None, NOW + timedelta(minutes=20)).commands
    assert isinstance(note, Note)
    assert note.kind == "ValidationFailed"
    assert "the VM agent is Not Ready" in note.message
    assert isinstance(finish, Finish)
    assert finish.phase is Phase.FAILED
    assert "within 20 min" in finish.reason
    assert "NOT committed" in finish.reason
    assert "aws2azure retry" in finish.reason
    assert "roll the failover back by hand" in finish.reason
    assert s.stage is Stage.DONE


def test_the_last_look_before_the_bound_falls_on_the_bound() -> None:
    s = state(stage=Stage.VALIDATE, validation_started_at=NOW, validation_bound_seconds=90,
              validation_recheck_seconds=60)  # fmt: skip
    [sleep] = lc.after_validation(s, vm(power="starting", agent=None), None, NOW + timedelta(seconds=60)).commands
    assert sleep == Sleep(NOW + timedelta(seconds=90), "validate")


def test_a_stopped_or_failed_vm_fails_at_once() -> None:
    for health in (vm(power="stopped"), vm(power="deallocated"), vm(provisioning="failed")):
        s = state(stage=Stage.VALIDATE, rollback_on_failed_validation=False)
        note, finish = lc.after_validation(s, health, None, NOW).commands
        assert isinstance(note, Note)
        assert note.kind == "ValidationFailed"
        assert isinstance(finish, Finish)
        assert finish.phase is Phase.FAILED
        assert "within" not in finish.reason


def test_a_permanent_error_reading_the_vm_fails_without_a_commit() -> None:
    s = state(stage=Stage.VALIDATE, rollback_on_failed_validation=False)
    error = StepError(kind="permanent", message="AuthorizationFailed")
    _, finish = lc.after_validation(s, None, error, NOW).commands
    assert isinstance(finish, Finish)
    assert finish.phase is Phase.FAILED
    assert "AuthorizationFailed" in finish.reason


def test_a_retry_of_a_failed_over_item_is_validated_before_the_commit() -> None:
    s = state(stage=Stage.MONITOR)
    assert lc.after_observation(s, snapshot(failed_over=True), None, NOW).commands == []
    assert s.stage is Stage.VALIDATE
    s = state()
    registered = Registered(migration_id="m", phase=Phase.VALIDATING, protected_item_name="item",
                            current_job_id="job-f", new_request=False)  # fmt: skip
    lc.after_register(s, registered, None, NOW)
    assert s.stage is Stage.VALIDATE


def test_the_verdict_from_the_instance_view_codes() -> None:
    assert vm().passed
    assert vm().findings == ()
    assert vm(power="starting").verdict == "pending"
    assert vm(provisioning="creating").verdict == "pending"
    stopped = vm(power="stopped", agent=None)
    assert stopped.verdict == "failed"
    assert "the VM is not running (PowerState/stopped)" in stopped.findings


def test_a_recovery_plan_commits_only_when_every_member_passes() -> None:
    bound = timedelta(minutes=20)
    ok, starting, stopped = vm(), vm(power="starting", agent=None), vm(power="stopped")
    assert lc.plan_gate({"a": ok, "b": ok}, {}, {}, started=NOW, now=NOW, bound=bound) == ("commit", "")
    assert lc.plan_gate({"a": ok, "b": starting}, {}, {}, started=NOW, now=NOW, bound=bound) == ("wait", "")
    verdict, why = lc.plan_gate({"a": ok, "b": starting}, {}, {}, started=NOW, now=NOW + bound, bound=bound)
    assert verdict == "fail"
    assert "b: " in why
    assert "not ready within 20 min" in why
    verdict, why = lc.plan_gate({"a": ok, "b": stopped}, {}, {}, started=NOW, now=NOW, bound=bound)
    assert verdict == "fail"
    assert "PowerState/stopped" in why
    assert lc.plan_gate({"a": ok}, {"b": "503"}, {"b": True}, started=NOW, now=NOW, bound=bound)[0] == "wait"
    assert lc.plan_gate({"a": ok}, {"b": "403"}, {"b": False}, started=NOW, now=NOW, bound=bound)[0] == "fail"


# -- rollback before commit (docs/ROLLBACK.md) ------------------------------------------------------


def _notes(decision: lc.Decision) -> list[Note]:
    assert all(isinstance(command, Note) for command in decision.commands), decision.commands
    return [command for command in decision.commands if isinstance(command, Note)]


def _stage(s: WorkflowState) -> Stage:
    return s.stage  # read through a call: mypy does not keep an earlier narrowing of the attribute


def _refusal(phase: Phase, *, failover_done: bool, committed: bool) -> tuple[str, str]:
    refused = lc.rollback_refusal(phase, failover_done=failover_done, committed=committed)
    assert refused is not None
    return refused


def test_a_failed_gate_starts_the_rollback_and_never_the_commit() -> None:
    s = state(stage=Stage.VALIDATE)
    failed, started = lc.after_validation(s, vm(power="stopped"), None, NOW).commands
    assert isinstance(failed, Note)
    assert failed.kind == "ValidationFailed"
    assert isinstance(started, Note)
    assert started.kind == "RollbackStarted"
    assert "PowerState/stopped" in started.message
    assert s.stage is Stage.ROLLBACK
    assert s.rollback is not None
    assert s.rollback.requested_by == "validation gate"
    assert lc.STAGE_PHASE[Stage.ROLLBACK] is Phase.ROLLING_BACK
    assert Stage.ROLLBACK in lc.FAILOVER_STARTED_STAGES  # never cancelled, never a second failover


def test_the_rollback_disables_protection_then_deletes_the_vm_then_ends_rolled_back() -> None:
    s = state(stage=Stage.ROLLBACK, rollback={"requested_by": "operator", "reason": "app broken"})
    assert lc.after_start(s, "job-d", None, NOW).commands == []
    assert s.stage is Stage.WATCH_ROLLBACK
    (disabled,) = _notes(lc.after_job(s, AsrJob(job_id="job-d", state="Succeeded"), None))
    assert isinstance(disabled, Note)
    assert disabled.kind == "ProtectionDisabled"
    assert _stage(s) is Stage.REMOVE_VM
    (sleep,) = lc.after_remove_vm(s, False, None, NOW).commands
    assert isinstance(sleep, Sleep)
    note, finish = lc.after_remove_vm(s, True, None, NOW).commands
    assert isinstance(note, Note)
    assert note.kind == "RolledBack"
    assert isinstance(finish, Finish)
    assert finish.phase is Phase.ROLLED_BACK
    assert "app broken" in finish.reason
    assert "aws2azure retry" in finish.reason


def test_an_item_already_gone_goes_straight_to_the_vm() -> None:
    s = state(stage=Stage.ROLLBACK)
    (note,) = _notes(lc.after_start(s, None, None, NOW))
    assert isinstance(note, Note)
    assert note.kind == "ProtectionDisabled"
    assert s.stage is Stage.REMOVE_VM


def test_a_rollback_request_while_validating_rolls_back_and_one_while_failing_over_waits_for_the_job() -> None:
    s = state(stage=Stage.VALIDATE)
    (note,) = _notes(lc.on_event(s, lc.EVENT_ROLLBACK, {"requested_by": "operator", "reason": "no"}))
    assert note.kind == "RollbackStarted"
    assert s.stage is Stage.ROLLBACK
    s = state(stage=Stage.WATCH_FAILOVER, job_id="job-f")
    (held,) = _notes(lc.on_event(s, lc.EVENT_ROLLBACK, {"requested_by": "operator"}))
    assert held.kind == "RollbackRequested"
    assert s.stage is Stage.WATCH_FAILOVER
    (started,) = _notes(lc.after_job(s, AsrJob(job_id="job-f", state="Succeeded"), None))
    assert started.kind == "RollbackStarted"
    assert _stage(s) is Stage.ROLLBACK


def test_a_rollback_is_refused_after_the_commit_and_before_any_failover() -> None:
    for stage in (Stage.COMMIT, Stage.WATCH_COMMIT, Stage.WATCH_COMPLETE):
        s = state(stage=stage)
        (note,) = _notes(lc.on_event(s, lc.EVENT_ROLLBACK, {"requested_by": "operator"}))
        assert note.kind == "RollbackRefused"
        assert "commit ended ASR's failover" in note.message
        assert s.stage is stage
        assert s.rollback is None
    s = state(stage=Stage.AWAIT_CUTOVER)
    (note,) = _notes(lc.on_event(s, lc.EVENT_ROLLBACK, {"requested_by": "operator"}))
    assert note.kind == "RollbackRefused"
    assert "cancel instead" in note.message
    assert _refusal(Phase.MIGRATED, failover_done=True, committed=True)[0] == "AlreadyCommitted"
    assert _refusal(Phase.COMMITTING, failover_done=True, committed=False)[0] == "AlreadyCommitted"
    assert _refusal(Phase.FAILED, failover_done=True, committed=True)[0] == "AlreadyCommitted"
    code, words = _refusal(Phase.AWAITING_CUTOVER, failover_done=False, committed=False)
    assert code == "NotFailedOver"
    assert "cancel" in words
    assert _refusal(Phase.FAILED, failover_done=False, committed=False)[0] == "NotFailedOver"
    assert lc.rollback_refusal(Phase.VALIDATING, failover_done=True, committed=False) is None
    assert lc.rollback_refusal(Phase.FAILED, failover_done=True, committed=False) is None


def test_a_rollback_asked_for_an_ended_migration_starts_in_the_rollback_stage() -> None:
    s = state()
    registered = Registered(migration_id="m", phase=Phase.FAILED, protected_item_name="item", new_request=True,
                            rollback={"requested_by": "operator", "reason": "r"})  # fmt: skip
    (note,) = _notes(lc.after_register(s, registered, None, NOW))
    assert note.kind == "RollbackStarted"
    assert s.stage is Stage.ROLLBACK


def test_rolled_back_is_an_end_from_which_a_retry_starts_again_from_requested() -> None:
    assert Phase.ROLLED_BACK in lc.TERMINAL_PHASES
    assert lc.ALLOWED_TRANSITIONS[Phase.ROLLED_BACK] == {Phase.REQUESTED}
    assert lc.ALLOWED_TRANSITIONS[Phase.ROLLING_BACK] == {Phase.ROLLED_BACK, Phase.FAILED}
    s = state()
    registered = Registered(migration_id="m", phase=Phase.REQUESTED, new_request=True)
    lc.after_register(s, registered, None, NOW)
    assert s.stage is Stage.ENABLE  # the ASR item is gone: enable runs again
