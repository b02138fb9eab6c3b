"""Wave cutover with recovery plans: the core (against in-memory ports) and migrate_wave (replayed)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from devstack.replay import PendingActivity, Replay, orchestrator_handle
from functions import names
from functions.wave_orchestration import MIGRATE_PLAN, bp
from migration.errors import InvalidInput, PreconditionFailed
from migration.events import MigrationRequestedData
from migration.lifecycle import CLAIMED_BY_WAVE, Phase
from migration.ports import VmHealth
from migration.steps import MigrationSteps
from migration.waves import (
    RecoveryPlanSpec,
    WaveCutover,
    WaveState,
    check_wave_window,
    chunked,
    claim_marker,
    plan_name,
)
from tests.fakes import FakeAsr, InMemoryStore, ManualClock


def build_wave(count: int, *, not_ready: int = 0) -> tuple[InMemoryStore, FakeAsr, ManualClock, MigrationSteps]:
    store, asr, clock = InMemoryStore(), FakeAsr(), ManualClock()
    steps = MigrationSteps(store, asr, clock, default_subnet="workloads")
    for index in range(count + not_ready):
        ip = f"10.0.{index // 250}.{index % 250 + 1}"
        asr.add_machine(ip, name=f"machine-{index}")
        data = MigrationRequestedData.model_validate({
            "instance": {"account_id": "123456789012", "region": "eu-west-1", "instance_id": f"i-{index:017x}"},
            "private_ip": ip, "os_family": "linux", "request_id": f"r-{index}", "wave": "w1",
        })  # fmt: skip
        migration_id = steps.register(data).migration_id
        steps.start_replication(migration_id)
        if index < count:
            asr.protect(f"machine-{index}")
            steps.observe_replication(migration_id)
            steps.record_phase(migration_id, Phase.READY_FOR_CUTOVER)
            steps.record_phase(migration_id, Phase.AWAITING_CUTOVER)
    return store, asr, clock, steps


class Planned:
    """A claim, then every claimed member put in plans of at most 100 (as migrate_wave does once they stopped)."""

    def __init__(self, wave: WaveCutover, *, stop_sources: bool = False) -> None:
        claim = wave.claim("w1", stop_sources=stop_sources)
        self.members, self.left_out = claim.members, claim.left_out
        self.plans = [wave.assign_plan("w1", RecoveryPlanSpec(name=plan_name("w1", i), members=chunk))
                      for i, chunk in enumerate(chunked(claim.members, 100))]  # fmt: skip


def test_ready_members_go_into_plans_of_at_most_100_and_the_rest_are_reported() -> None:
    store, asr, clock, _ = build_wave(230, not_ready=3)
    plan = Planned(WaveCutover(store, asr, clock))
    assert [len(p.members) for p in plan.plans] == [100, 100, 30]
    assert [p.name for p in plan.plans] == [plan_name("w1", i) for i in range(3)]
    assert len(plan.left_out) == 3
    assert all(entry.phase is Phase.ENABLING_REPLICATION for entry in plan.left_out)
    assert all(r.cutover_plan for r in store.records.values() if r.phase is Phase.AWAITING_CUTOVER)


def test_a_wave_that_stops_its_sources_asks_first_and_plans_only_the_stopped() -> None:
    from migration.waves import record_source_stopped

    store, asr, clock, _ = build_wave(3)
    wave = WaveCutover(store, asr, clock)
    claim = wave.claim("w1", stop_sources=True)
    records = [store.get(m.migration_id) for m in claim.members]
    assert {r.cutover_plan for r in records} == {claim_marker("w1")}
    assert all(r.timeline.stop_requested_at and r.timeline.source_stopped_at is None for r in records)
    assert wave.collect_stopped("w1", claim.members).stopped == []
    clock.advance(timedelta(minutes=2))
    record_source_stopped(store, claim.members[1].migration_id, clock.now())
    report = wave.collect_stopped("w1", claim.members)
    assert [m.migration_id for m in report.stopped] == [claim.members[1].migration_id]
    # One whose source never stopped is left out with the reason and keeps replicating, unclaimed.
    wave.leave_out("w1", [claim.members[0]], "the source did not report stopped")
    left = store.get(claim.members[0].migration_id)
    assert (left.cutover_plan, left.phase) == (None, Phase.AWAITING_CUTOVER)
    assert "LeftOutOfWave" in [e.kind for e in store.list_events(left.migration_id)]


def test_the_timeline_gives_the_downtime_from_stopped_to_failover_done() -> None:
    store, asr, clock, _ = build_wave(2)
    wave = WaveCutover(store, asr, clock)
    [spec] = Planned(wave).plans
    stopped_at = clock.now()
    clock.advance(timedelta(minutes=1))
    wave.start_plan_failover(spec)
    clock.advance(timedelta(minutes=12))
    wave.start_plan_commit(spec)
    timeline = store.get(spec.members[0].migration_id).timeline
    assert timeline.source_stopped_at == stopped_at
    assert timeline.failover_started_at == stopped_at + timedelta(minutes=1)
    assert timeline.downtime_seconds() == 13 * 60


def test_claiming_twice_gives_the_same_plans() -> None:
    store, asr, clock, _ = build_wave(5)
    wave = WaveCutover(store, asr, clock)
    assert wave.claim("w1") == wave.claim("w1")
    assert Planned(wave).plans == Planned(wave).plans


def test_a_plan_fails_over_once_and_its_members_cannot_fail_over_alone() -> None:
    store, asr, clock, steps = build_wave(3)
    wave = WaveCutover(store, asr, clock)
    spec = Planned(wave).plans[0]
    first = wave.start_plan_failover(spec)
    again = wave.start_plan_failover(spec)  # an activity rerun
    assert first == again
    assert [op for op, _ in asr.writes].count("RecoveryPlanFailover") == 1
    member = spec.members[0].migration_id
    with pytest.raises(PreconditionFailed) as caught:
        steps.start_failover(member)
    assert caught.value.code == CLAIMED_BY_WAVE
    # The member's own orchestration may still try to record AwaitingCutover: that is not a regression.
    steps.record_phase(member, Phase.AWAITING_CUTOVER)
    assert store.get(member).phase is Phase.FAILING_OVER
    wave.start_plan_commit(spec)
    assert {store.get(m.migration_id).phase for m in spec.members} == {Phase.COMMITTING}


def test_a_failed_plan_releases_its_members_with_the_reason() -> None:
    store, asr, clock, _ = build_wave(2)
    wave = WaveCutover(store, asr, clock)
    spec = Planned(wave).plans[0]
    wave.start_plan_failover(spec)
    released = wave.release_plan(spec, "recovery plan failover failed: 28031")
    assert sorted(released) == sorted(m.migration_id for m in spec.members)
    records = list(store.records.values())
    assert {(r.phase, r.reason) for r in records} == {(Phase.FAILED, "recovery plan failover failed: 28031")}
    # Out of the plan, and (ASR still offers failover: nothing failed over) free to be cut over again.
    assert {(r.cutover_plan, r.failover_requested_at) for r in records} == {(None, None)}
    assert wave.release_plan(spec, "again") == released  # a rerun changes nothing
    assert {r.reason for r in store.records.values()} == {"recovery plan failover failed: 28031"}


def test_a_member_that_failed_over_keeps_its_failover_mark_when_released() -> None:
    store, asr, clock, _ = build_wave(2)
    wave = WaveCutover(store, asr, clock)
    spec = Planned(wave).plans[0]
    wave.start_plan_failover(spec)
    failed_over = spec.members[0]
    asr._set(failed_over.protected_item_name, allowed_operations=frozenset({"Commit", "CompleteMigration"}))
    wave.release_plan(spec, "recovery plan commit failed")
    assert store.get(failed_over.migration_id).failover_requested_at is not None
    assert store.get(spec.members[1].migration_id).failover_requested_at is None


def test_a_member_asr_no_longer_has_is_left_out_and_the_others_are_planned() -> None:
    store, asr, clock, _ = build_wave(4)
    gone = sorted(store.records.values(), key=lambda r: r.migration_id)[1]
    assert gone.protected_item_name is not None
    del asr.items[gone.protected_item_name]  # deleted from the vault out of band
    plan = Planned(WaveCutover(store, asr, clock))
    assert [len(p.members) for p in plan.plans] == [3]
    assert gone.migration_id not in {m.migration_id for m in plan.plans[0].members}
    [left] = plan.left_out
    assert left.migration_id == gone.migration_id
    assert "no replicated item" in left.reason
    assert store.get(gone.migration_id).cutover_plan is None
    assert "LeftOutOfWave" in [e.kind for e in store.list_events(gone.migration_id)]


def test_a_member_asr_cannot_fail_over_now_is_left_out_with_the_operations_it_offers() -> None:
    store, asr, clock, _ = build_wave(2)
    busy = sorted(store.records.values(), key=lambda r: r.migration_id)[0]
    assert busy.protected_item_name is not None
    asr._set(busy.protected_item_name, allowed_operations=frozenset({"DisableProtection"}))
    plan = Planned(WaveCutover(store, asr, clock))
    [left] = plan.left_out
    assert left.migration_id == busy.migration_id
    assert "allowed operations: DisableProtection" in left.reason


PLAN_HANDLE = orchestrator_handle(bp, MIGRATE_PLAN)
START = datetime(2026, 12, 1, 22, tzinfo=UTC)


def plan_payload(name: str, size: int) -> dict[str, Any]:
    members = [{"migration_id": f"m-{name}-{i}", "protected_item_name": f"item-{i}"} for i in range(size)]
    return {"name": name, "members": members}


def healthy(migration_id: str) -> dict[str, Any]:
    return VmHealth.judge(f"vm-{migration_id}", provisioning_state="succeeded", power_state="running",
                          agent_status="Ready").model_dump(mode="json")  # fmt: skip


def plan_answers(failing: bool = False, unhealthy: tuple[str, ...] = ()) -> Any:
    jobs: dict[str, datetime] = {}

    def respond(activity: PendingActivity, replay: Replay) -> Any:
        payload = activity.input
        if activity.name in ("start_plan_failover", "start_plan_commit"):
            job_id = f"{activity.name}-{payload['plan']['name']}"
            jobs[job_id] = replay.now
            return {"ok": True, "value": {"job_id": job_id}}
        if activity.name == "get_wave_job":
            job_id = payload["job_id"]
            done = replay.now - jobs[job_id] >= timedelta(minutes=12)
            failed = failing and "failover" in job_id
            state = ("Failed" if failed else "Succeeded") if done else "InProgress"
            errors = ["28031: a VM failed to start"] if failed else []
            return {"ok": True, "value": {"job_id": job_id, "state": state, "errors": errors}}
        if activity.name == "validate_plan":
            members = {m["migration_id"]: healthy(m["migration_id"]) for m in payload["plan"]["members"]}
            for bad in unhealthy:
                members[bad] = VmHealth.judge(f"vm-{bad}", provisioning_state="succeeded", power_state="stopped",
                                              agent_status=None).model_dump(mode="json")  # fmt: skip
            return {"ok": True, "value": {"members": members}}
        if activity.name == "notify_plan_members":
            return {"ok": True, "value": {"members": len(payload["plan"]["members"])}}
        if activity.name == "release_plan":
            return {"ok": True, "value": {"members": [m["migration_id"] for m in payload["plan"]["members"]]}}
        raise AssertionError(activity.name)

    return respond


def test_a_plan_fails_over_and_commits_watched_by_a_short_poll_with_bounded_history() -> None:
    replay = Replay(PLAN_HANDLE, {"wave": "w1", "plan": plan_payload("p0", 100)}, START)
    output = replay.run(plan_answers())
    assert output["outcome"] == "Committed"
    order = [name for name, _ in replay.calls if name != "get_wave_job"]
    assert order == ["start_plan_failover", "validate_plan", "start_plan_commit", "notify_plan_members"]
    # The 12-minute failover job is seen done within a minute of its end (a 1-minute poll), not 5.
    assert replay.now - START <= timedelta(minutes=12 + 1 + 12 + 1)
    assert replay.max_history < 300


def test_a_failed_plan_releases_only_its_members_with_asrs_reason() -> None:
    replay = Replay(PLAN_HANDLE, {"wave": "w1", "plan": plan_payload("p0", 3)}, START)
    output = replay.run(plan_answers(failing=True))
    assert output["outcome"] == "Failed"
    assert "28031" in output["reason"]
    notified = [payload for name, payload in replay.calls if name == "notify_plan_members"]
    assert [(n["plan"]["name"], n.get("failed", False)) for n in notified] == [("p0", True)]
    assert [name for name, _ in replay.calls].count("release_plan") == 1


WAVE_HANDLE = orchestrator_handle(bp, names.MIGRATE_WAVE)


def test_a_scheduled_wave_waits_for_its_window_in_timers_python_allows_then_claims() -> None:
    at = START + timedelta(days=8, hours=3)
    replay = Replay(WAVE_HANDLE, WaveState(wave="w1", cutover_at=at).model_dump(mode="json"), START)
    claimed_at: list[datetime] = []

    def respond(activity: PendingActivity, replay: Replay) -> Any:
        assert activity.name == "claim_wave", activity.name
        claimed_at.append(replay.now)
        return {"ok": True, "value": {"wave": "w1", "members": [], "left_out": []}}

    fired: list[datetime] = []
    output = replay.run(respond, before_episode=lambda r: fired.append(r.now))
    assert claimed_at == [at]  # nothing claimed, so no source asked to stop, before the window
    assert output["wave"] == "w1"
    steps = [later - earlier for earlier, later in zip([START, *fired], fired, strict=False) if later > earlier]
    assert len(steps) >= 3  # three timers at most 3 days apart
    assert max(steps) <= timedelta(days=6)  # Python's durable timers are limited to six days


@pytest.mark.parametrize(
    ("offset", "words"), [(timedelta(minutes=-1), "has passed"), (timedelta(days=91), "more than 90 days ahead")]
)
def test_a_wave_window_in_the_past_or_too_far_ahead_is_refused_with_what_to_do(offset: timedelta, words: str) -> None:
    with pytest.raises(InvalidInput, match=words):
        check_wave_window(START + offset, START)
    check_wave_window(START + timedelta(hours=1), START)
    check_wave_window(None, START)


def test_a_plan_whose_member_fails_its_gate_is_not_committed_and_is_released_with_the_findings() -> None:
    replay = Replay(PLAN_HANDLE, {"wave": "w1", "plan": plan_payload("p0", 3)}, START)
    output = replay.run(plan_answers(unhealthy=("m-p0-1",)))
    assert output["outcome"] == "Failed"
    assert "m-p0-1" in output["reason"]
    assert "PowerState/stopped" in output["reason"]
    assert "NOT committed" in output["reason"]
    names_called = [name for name, _ in replay.calls]
    assert "start_plan_commit" not in names_called
    assert names_called.count("release_plan") == 1


def test_a_plan_starts_failing_over_while_later_members_are_still_stopping() -> None:
    """The Python SDK schedules a task only when it is yielded: a plan made while other sources still stop must be
    handed to the runtime then, not with the last plan (downtime of the early stoppers)."""
    members = [{"migration_id": f"m-{i}", "protected_item_name": f"item-{i}"} for i in range(150)]
    replay = Replay(WAVE_HANDLE, WaveState(wave="w1").model_dump(mode="json"), START)
    collects = 0
    plan_started_at_collect: list[int] = []

    def respond(activity: PendingActivity, replay: Replay) -> Any:
        nonlocal collects
        payload = activity.input
        if activity.name == "claim_wave":
            return {"ok": True, "value": {"wave": "w1", "members": members, "left_out": []}}
        if activity.name == "collect_stopped":
            collects += 1
            waiting = payload["members"]
            # 100 stop at once; the last 50 only at the sixth look (five minutes later).
            stopped = [m for m in waiting if int(m["migration_id"][2:]) < 100 or collects >= 6]
            return {"ok": True, "value": {"stopped": stopped, "left_out": []}}
        if activity.name == "assign_plan":
            return {"ok": True, "value": payload["plan"]}
        if activity.sub:
            plan_started_at_collect.append(collects)
            return {"plan": payload["plan"]["name"], "members": len(payload["plan"]["members"]),
                    "outcome": "Committed"}  # fmt: skip
        raise AssertionError(activity.name)

    output = replay.run(respond)
    assert [plan["plan"] for plan in output["plans"]] == [plan_name("w1", 0), plan_name("w1", 1)]
    first, second = plan_started_at_collect
    assert first < 6 <= second  # the full plan of 100 started before the last 50 had stopped
