"""The lifecycle's decisions, as pure functions: state + what happened -> state + commands."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from migration import lifecycle as lc
from migration.contracts import Registered, ReplicationSnapshot
from migration.lifecycle import Finish, Note, Phase, Record, Sleep, Stage, WorkflowState
from migration.outcome import StepError
from migration.ports import AsrJob

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
