"""migrate_wave: cut a wave over together; migrate_plan: one recovery plan's failover and commit.

``migrate_wave`` claims the wave's ready members and marks "stop requested" on their records; the AWS side
reads that (status sync) and stops the sources. As the sources report stopped (FailoverRequested with
``source_stopped``, recorded on the member's timeline), the wave puts them into recovery plans of at most 100
machines and starts one ``migrate_plan`` sub-orchestration per plan: the plans fail over **in parallel**
(at most ``max_parallel_plans`` at once, and every ASR write under the app's one write budget). Members whose
source does not stop within the bound are left out with the reason and keep replicating.

Bounded history: while it waits for stops the wave polls the store once a ``poll_seconds`` (one activity and
one timer); it continues as new every ``POLLS_PER_EXECUTION`` polls while no plan runs, and the waiting is
bounded by ``stop_bound_seconds``. Each plan's job watching lives in its own sub-orchestration.

``sequential`` (WAVE_SEQUENTIAL_PLANS) keeps the old behaviour for comparison: every source stops first, then
one plan after another. Started by ``POST /api/waves/{wave}/cutover`` (functions/api/blueprint.py), now or at
the wave's own cutover window (``at``): until then it only waits on a durable timer.
"""

from __future__ import annotations

from collections.abc import Generator
from datetime import datetime, timedelta
from typing import Any

import azure.durable_functions as df
from pydantic import BaseModel, ConfigDict

from functions import names
from functions.bootstrap import services
from functions.step_runner import Task, run_step
from migration import contracts as c
from migration.errors import MigrationError, TransientCloudError
from migration.lifecycle import VALIDATION_BOUND, VALIDATION_RECHECK, Phase, describe, plan_gate
from migration.monitoring import DOWNTIME_JOB_POLL, DOWNTIME_SHORT_POLLS
from migration.outcome import Outcome
from migration.ports import AsrJob
from migration.waves import (
    RECOVERY_PLAN_LIMIT,
    LeaveOut,
    LeftOut,
    PlanAssignment,
    PlanMember,
    RecoveryPlanSpec,
    WaveCutover,
    WaveMembers,
    WaveState,
    plan_name,
)

bp = df.Blueprint()
MIGRATE_PLAN = "migrate_plan"
# A plan's failover or commit job is read every minute for its usual length (migration.monitoring), then, for a
# job that runs much longer, every LONG_JOB_POLL.
LONG_JOB_POLL = timedelta(minutes=15)
POLLS_PER_EXECUTION = 30
# Durable timers in Python apps are limited to six days (Learn, "Timers in Durable Functions", Timer
# limitations): a wave scheduled further ahead waits in steps of at most this.
LONGEST_TIMER = timedelta(days=3)


def _wave_cutover() -> WaveCutover:
    runtime = services()
    return WaveCutover(runtime.store, runtime.asr, runtime.clock, outbox=runtime.outbox)


class PlanRun(BaseModel):
    model_config = ConfigDict(extra="forbid")
    wave: str
    plan: RecoveryPlanSpec
    # The validation gate between the plan's failover and its commit (docs/VALIDATION.md).
    validation_bound_seconds: int = int(VALIDATION_BOUND.total_seconds())
    validation_recheck_seconds: int = int(VALIDATION_RECHECK.total_seconds())


def job_poll_delay(checks: int) -> timedelta:
    """A short poll while the cutover's job runs, a long one for a job far past its usual duration."""
    return DOWNTIME_JOB_POLL if checks < DOWNTIME_SHORT_POLLS else LONG_JOB_POLL


class PlanMigration:
    """One recovery plan: create it and fail it over once, watch the job, commit, tell the members."""

    def __init__(self, context: df.DurableOrchestrationContext) -> None:
        self.context = context
        self.run_input = PlanRun.model_validate(context.get_input())

    @property
    def now(self) -> datetime:
        now: datetime = self.context.current_utc_datetime
        return now

    def _watch(self, job_id: str) -> Generator[Task, Any, Outcome[AsrJob]]:
        checks = 0
        while True:
            yield self.context.create_timer(self.now + job_poll_delay(checks))
            checks += 1
            outcome = yield from run_step(self.context, c.GET_WAVE_JOB, c.AsrJobRef(job_id=job_id))
            if outcome.value is None or outcome.value.finished:
                return outcome

    def _validate(self, plan: c.PlanRef) -> Generator[Task, Any, str]:
        """Look at every member's VM until all pass ("") or one fails or the bound passes (why)."""
        run, started = self.run_input, self.now
        bound = timedelta(seconds=run.validation_bound_seconds)
        while True:
            looked = yield from run_step(self.context, c.VALIDATE_PLAN, plan)
            if looked.value is None:
                return f"could not look at the members' VMs: {describe(looked.error)}"
            value = looked.value
            verdict, why = plan_gate(value.members, value.errors, value.retryable, started=started, now=self.now,
                                     bound=bound)  # fmt: skip
            if verdict == "commit":
                return ""
            if verdict == "fail":
                return why
            wake = min(self.now + timedelta(seconds=run.validation_recheck_seconds), started + bound)
            yield self.context.create_timer(wake)

    def run(self) -> Generator[Task, Any, dict[str, Any]]:
        spec = self.run_input.plan
        plan = c.PlanRef(plan=spec)
        for operation, activity in (("failover", c.START_PLAN_FAILOVER), ("commit", c.START_PLAN_COMMIT)):
            step = operation
            started = yield from run_step(self.context, activity, plan)
            if started.value is None:
                detail = describe(started.error)
            else:
                watched = yield from self._watch(started.value.job_id)
                job = watched.value
                if job is not None and job.state == "Succeeded":
                    if operation == "commit":
                        continue
                    # Commit is the point of no return: every member's VM is checked first.
                    gate = yield from self._validate(plan)
                    if not gate:
                        continue
                    detail = f"{gate}; the plan was NOT committed (each member is validated again on its own)"
                    step = "validation"
                else:
                    detail = describe(watched.error) if job is None else "; ".join(job.errors) or job.note or job.state
            reason = f"recovery plan {spec.name}: {step} failed: {detail}"
            yield from run_step(self.context, c.RELEASE_PLAN, c.PlanRelease(plan=spec, reason=reason))
            yield from run_step(
                self.context, c.NOTIFY_PLAN_MEMBERS, c.PlanNotice(plan=spec, failed=True, reason=reason)
            )
            return {"plan": spec.name, "members": len(spec.members), "outcome": "Failed", "reason": reason}
        yield from run_step(self.context, c.NOTIFY_PLAN_MEMBERS, c.PlanNotice(plan=spec))
        return {"plan": spec.name, "members": len(spec.members), "outcome": "Committed"}


class WaveMigration:
    def __init__(self, context: df.DurableOrchestrationContext) -> None:
        self.context = context
        self.state = WaveState.model_validate(context.get_input())
        self.children: list[Task] = []

    @property
    def now(self) -> datetime:
        now: datetime = self.context.current_utc_datetime
        return now

    def run(self) -> Generator[Task, Any, dict[str, Any]]:
        state = self.state
        while not state.claimed and state.cutover_at is not None and self.now < state.cutover_at:
            yield self.context.create_timer(min(state.cutover_at, self.now + LONGEST_TIMER))
        if not state.claimed:
            claimed = yield from run_step(
                self.context, c.CLAIM_WAVE, c.WaveRef(wave=state.wave, stop_sources=state.stop_sources)
            )
            if claimed.value is None:
                return {"wave": state.wave, "error": describe(claimed.error)}
            state.claimed, state.started_at = True, self.now
            state.waiting, state.left_out = claimed.value.members, claimed.value.left_out
        polls = 0
        while state.waiting or state.ready:
            if polls >= POLLS_PER_EXECUTION and not self.children:
                state.executions += 1
                self.context.continue_as_new(state.model_dump(mode="json"))
                return {"wave": state.wave, "continued": True}
            polls += 1
            if state.waiting:
                yield from self._collect()
            yield from self._make_plans()
            if state.waiting or state.ready:
                yield from self._pause()
        results: list[dict[str, Any]] = []
        if self.children:
            results = list((yield self.context.task_all(self.children)))
        return {
            "wave": state.wave,
            "plans": results,
            "left_out": [member.model_dump(mode="json") for member in state.left_out],
        }

    def _pause(self) -> Generator[Task, Any, None]:
        """One poll's wait, with the running plans: the Python SDK hands a task to the runtime only when it is
        yielded, so a plan made since the last wait starts now, not with the last plan; one ending cuts it short."""
        timer = self.context.create_timer(self.now + timedelta(seconds=self.state.poll_seconds))
        running = [task for task in self.children if not task.is_completed]
        if not running:
            yield timer
            return
        winner = yield self.context.task_any([timer, *running])
        if winner is not timer and not timer.is_completed:
            timer.cancel()

    def _collect(self) -> Generator[Task, Any, None]:
        state = self.state
        report = yield from run_step(
            self.context, c.COLLECT_STOPPED, WaveMembers(wave=state.wave, members=state.waiting)
        )
        if report.value is None:
            return  # the store could not be read (its retries spent): look again at the next poll
        gone = {m.migration_id for m in report.value.left_out}
        stopped = [m for m in report.value.stopped if m.migration_id not in gone]
        if stopped and not state.ready:
            state.ready_since = self.now
        moved = {m.migration_id for m in stopped} | gone
        state.ready += stopped
        state.waiting = [m for m in state.waiting if m.migration_id not in moved]
        state.left_out += report.value.left_out
        if (
            state.waiting
            and state.started_at
            and self.now >= state.started_at + timedelta(seconds=state.stop_bound_seconds)
        ):
            minutes = state.stop_bound_seconds / 60
            reason = (f"the source did not report stopped within {minutes:g} min of the wave's cutover; it keeps "
                      "replicating: check the instance (aws2azure:reason) and cut it over again")  # fmt: skip
            yield from run_step(self.context, c.LEAVE_OUT, LeaveOut(wave=state.wave, members=state.waiting,
                                                                     reason=reason))  # fmt: skip
            state.left_out += [_left(m, reason) for m in state.waiting]
            state.waiting = []

    def _make_plans(self) -> Generator[Task, Any, None]:
        state = self.state
        while state.ready:
            full = len(state.ready) >= RECOVERY_PLAN_LIMIT
            gathered = state.ready_since is not None and self.now >= state.ready_since + timedelta(
                seconds=state.gather_seconds
            )
            if state.sequential:
                if state.waiting:
                    return  # the old path: every source stops before the first plan
            elif not (full or gathered or not state.waiting):
                return
            members, state.ready = state.ready[:RECOVERY_PLAN_LIMIT], state.ready[RECOVERY_PLAN_LIMIT:]
            state.ready_since = self.now if state.ready else None
            spec = RecoveryPlanSpec(name=plan_name(state.wave, state.plans_made), members=members)
            state.plans_made += 1
            assigned = yield from run_step(self.context, c.ASSIGN_PLAN, PlanAssignment(wave=state.wave, plan=spec))
            if assigned.value is None:
                reason = f"could not put it in recovery plan {spec.name}: {describe(assigned.error)}"
                yield from run_step(self.context, c.LEAVE_OUT, LeaveOut(wave=state.wave, members=members,
                                                                         reason=reason))  # fmt: skip
                state.left_out += [_left(m, reason) for m in members]
                continue
            yield from self._launch(spec)

    def _launch(self, spec: RecoveryPlanSpec) -> Generator[Task, Any, None]:
        state = self.state
        child = self.context.call_sub_orchestrator(
            MIGRATE_PLAN, PlanRun(wave=state.wave, plan=spec).model_dump(mode="json"),
            f"{names.wave_orchestration_id(state.wave)}:{spec.name}",
        )  # fmt: skip
        self.children.append(child)
        if state.sequential:
            yield child  # one plan after another
            return
        running = [task for task in self.children if not task.is_completed]
        while len(running) >= state.max_parallel_plans:
            yield self.context.task_any(running)
            running = [task for task in self.children if not task.is_completed]


def _left(member: PlanMember, reason: str) -> LeftOut:
    return LeftOut(migration_id=member.migration_id, phase=Phase.AWAITING_CUTOVER, reason=reason)


@bp.orchestration_trigger(context_name="context", orchestration=names.MIGRATE_WAVE, input_type=dict)
def migrate_wave(context: df.DurableOrchestrationContext) -> Generator[Task, Any, dict[str, Any]]:
    result = yield from WaveMigration(context).run()
    return result


@bp.orchestration_trigger(context_name="context", orchestration=MIGRATE_PLAN, input_type=dict)
def migrate_plan(context: df.DurableOrchestrationContext) -> Generator[Task, Any, dict[str, Any]]:
    result = yield from PlanMigration(context).run()
    return result


@bp.activity_trigger(input_name="payload", activity=c.CLAIM_WAVE.name)
def claim_wave(payload: dict[str, Any]) -> dict[str, Any]:
    return c.CLAIM_WAVE.run(payload, lambda ref: _wave_cutover().claim(ref.wave, stop_sources=ref.stop_sources))


@bp.activity_trigger(input_name="payload", activity=c.COLLECT_STOPPED.name)
def collect_stopped(payload: dict[str, Any]) -> dict[str, Any]:
    return c.COLLECT_STOPPED.run(payload, lambda ref: _wave_cutover().collect_stopped(ref.wave, ref.members))


@bp.activity_trigger(input_name="payload", activity=c.LEAVE_OUT.name)
def leave_out_of_wave(payload: dict[str, Any]) -> dict[str, Any]:
    return c.LEAVE_OUT.run(
        payload, lambda ref: c.Released(members=_wave_cutover().leave_out(ref.wave, ref.members, ref.reason))
    )


@bp.activity_trigger(input_name="payload", activity=c.ASSIGN_PLAN.name)
def assign_plan(payload: dict[str, Any]) -> dict[str, Any]:
    return c.ASSIGN_PLAN.run(payload, lambda ref: _wave_cutover().assign_plan(ref.wave, ref.plan))


@bp.activity_trigger(input_name="payload", activity=c.START_PLAN_FAILOVER.name)
def start_plan_failover(payload: dict[str, Any]) -> dict[str, Any]:
    return c.START_PLAN_FAILOVER.run(
        payload, lambda ref: c.PlanJob(job_id=_wave_cutover().start_plan_failover(ref.plan))
    )


@bp.activity_trigger(input_name="payload", activity=c.VALIDATE_PLAN.name)
def validate_plan(payload: dict[str, Any]) -> dict[str, Any]:
    return c.VALIDATE_PLAN.run(payload, lambda ref: _validate_members(ref.plan))


def _validate_members(plan: RecoveryPlanSpec) -> c.PlanValidation:
    """One look at each member's VM (the same step as a lone migration's gate, recorded on each record)."""
    steps = services().steps
    found = c.PlanValidation(members={})
    for member in plan.members:
        try:
            health = steps.validate_failover(member.migration_id, audit=True)
        except MigrationError as exc:
            found.errors[member.migration_id] = str(exc)
            found.retryable[member.migration_id] = isinstance(exc, TransientCloudError)
            continue
        found.members[member.migration_id] = health
    return found


@bp.activity_trigger(input_name="payload", activity=c.START_PLAN_COMMIT.name)
def start_plan_commit(payload: dict[str, Any]) -> dict[str, Any]:
    return c.START_PLAN_COMMIT.run(payload, lambda ref: c.PlanJob(job_id=_wave_cutover().start_plan_commit(ref.plan)))


@bp.activity_trigger(input_name="payload", activity=c.RELEASE_PLAN.name)
def release_plan(payload: dict[str, Any]) -> dict[str, Any]:
    return c.RELEASE_PLAN.run(
        payload, lambda release: c.Released(members=_wave_cutover().release_plan(release.plan, release.reason))
    )


@bp.activity_trigger(input_name="payload", activity=c.GET_WAVE_JOB.name)
def get_wave_job(payload: dict[str, Any]) -> dict[str, Any]:
    return c.GET_WAVE_JOB.run(payload, lambda ref: _wave_cutover().get_job(ref.job_id))


@bp.activity_trigger(input_name="payload", activity=c.NOTIFY_PLAN_MEMBERS.name)
@bp.durable_client_input(client_name="client")
async def notify_plan_members(payload: dict[str, Any], client: df.DurableOrchestrationClient) -> dict[str, Any]:
    notice = c.PlanNotice.model_validate(payload)
    event = names.EVENT_PLAN_CUTOVER_FAILED if notice.failed else names.EVENT_PLAN_CUTOVER_DONE
    data = {"plan": notice.plan.name, "reason": notice.reason}
    for member in notice.plan.members:
        await client.raise_event(member.migration_id, event, data)
    return {"ok": True, "value": c.Notified(members=len(notice.plan.members)).model_dump(mode="json"), "error": None}
