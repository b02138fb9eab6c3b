"""migrate_wave: cut a wave over together, recovery plan by recovery plan.

One plan per execution (continue_as_new between plans), so a 1,000-machine wave in ten plans
keeps every history short. Started by ``POST /api/waves/{wave}/cutover`` (functions/api/blueprint.py).
"""

from __future__ import annotations

from collections.abc import Generator
from datetime import datetime, timedelta
from typing import Any

import azure.durable_functions as df

from functions import names
from functions.bootstrap import services
from functions.step_runner import Task, run_step
from migration import contracts as c
from migration.lifecycle import describe
from migration.outcome import Outcome
from migration.ports import AsrJob
from migration.waves import RecoveryPlanSpec, WaveCutover, WaveState

bp = df.Blueprint()
# A recovery plan's jobs are watched at this interval (the instance path's floor).
JOB_POLL = timedelta(minutes=5)


def _wave_cutover() -> WaveCutover:
    runtime = services()
    return WaveCutover(runtime.store, runtime.asr, runtime.clock)


class WaveMigration:
    def __init__(self, context: df.DurableOrchestrationContext) -> None:
        self.context = context
        self.state = WaveState.model_validate(context.get_input())

    @property
    def now(self) -> datetime:
        now: datetime = self.context.current_utc_datetime
        return now

    def _watch(self, job_id: str) -> Generator[Task, Any, Outcome[AsrJob]]:
        while True:
            yield self.context.create_timer(self.now + JOB_POLL)
            outcome = yield from run_step(self.context, c.GET_WAVE_JOB, c.AsrJobRef(job_id=job_id))
            if outcome.value is None or outcome.value.finished:
                return outcome

    def run(self) -> Generator[Task, Any, dict[str, Any]]:
        state = self.state
        if state.plan is None:
            claimed = yield from run_step(self.context, c.CLAIM_WAVE, c.WaveRef(wave=state.wave))
            if claimed.value is None:
                return {"wave": state.wave, "error": describe(claimed.error)}
            state.plan = claimed.value
        if state.index < len(state.plan.plans):
            spec = state.plan.plans[state.index]
            state.results.append((yield from self._cut_over(spec)))
            state.index += 1
            self.context.continue_as_new(state.model_dump(mode="json"))
            return {"wave": state.wave, "continued": True}
        return {
            "wave": state.wave,
            "plans": state.results,
            "left_out": [member.model_dump(mode="json") for member in state.plan.left_out],
        }

    def _cut_over(self, spec: RecoveryPlanSpec) -> Generator[Task, Any, dict[str, Any]]:
        plan = c.PlanRef(plan=spec)
        for operation, activity in (("failover", c.START_PLAN_FAILOVER), ("commit", c.START_PLAN_COMMIT)):
            started = yield from run_step(self.context, activity, plan)
            if started.value is None:
                detail = describe(started.error)
            else:
                watched = yield from self._watch(started.value.job_id)
                job = watched.value
                if job is not None and job.state == "Succeeded":
                    continue
                detail = describe(watched.error) if job is None else "; ".join(job.errors) or job.note or job.state
            reason = f"recovery plan {spec.name}: {operation} failed: {detail}"
            yield from run_step(self.context, c.RELEASE_PLAN, c.PlanRelease(plan=spec, reason=reason))
            yield from run_step(
                self.context, c.NOTIFY_PLAN_MEMBERS, c.PlanNotice(plan=spec, failed=True, reason=reason)
            )
            return {"plan": spec.name, "members": len(spec.members), "outcome": "Failed", "reason": reason}
        yield from run_step(self.context, c.NOTIFY_PLAN_MEMBERS, c.PlanNotice(plan=spec))
        return {"plan": spec.name, "members": len(spec.members), "outcome": "Committed"}


@bp.orchestration_trigger(context_name="context", orchestration=names.MIGRATE_WAVE, input_type=dict)
def migrate_wave(context: df.DurableOrchestrationContext) -> Generator[Task, Any, dict[str, Any]]:
    result = yield from WaveMigration(context).run()
    return result


@bp.activity_trigger(input_name="payload", activity=c.CLAIM_WAVE.name)
def claim_wave(payload: dict[str, Any]) -> dict[str, Any]:
    return c.CLAIM_WAVE.run(payload, lambda ref: _wave_cutover().claim(ref.wave))


@bp.activity_trigger(input_name="payload", activity=c.START_PLAN_FAILOVER.name)
def start_plan_failover(payload: dict[str, Any]) -> dict[str, Any]:
    return c.START_PLAN_FAILOVER.run(
        payload, lambda ref: c.PlanJob(job_id=_wave_cutover().start_plan_failover(ref.plan))
    )


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
