"""migrate_wave: cut a wave over together, recovery plan by recovery plan.

One plan per execution (continue_as_new between plans), so a 1,000-machine wave in ten plans
keeps every history short. Started by ``POST /api/waves/{wave}/cutover``.
"""

from __future__ import annotations

import json
from collections.abc import Generator
from datetime import datetime, timedelta
from typing import Any

import azure.durable_functions as df
import azure.functions as func
from pydantic import BaseModel, ConfigDict, Field

from functions import names
from functions.bootstrap import services
from functions.dispatch import runtime_status
from functions.step_runner import Task, run_step
from migration import contracts as c
from migration.lifecycle import ACTIVE_RUNTIME_STATUSES, describe
from migration.outcome import Outcome
from migration.ports import AsrJob
from migration.tags import WAVE_PATTERN
from migration.waves import RecoveryPlanSpec, WaveCutover, WavePlan

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


class WaveState(BaseModel):
    """What migrate_wave carries across continue_as_new: one recovery plan per execution."""

    model_config = ConfigDict(extra="forbid")

    wave: str
    plan: WavePlan | None = None
    index: int = 0
    results: list[dict[str, Any]] = Field(default_factory=list)


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


@bp.route(route="waves/{wave}/cutover", methods=["POST"], auth_level=func.AuthLevel.FUNCTION)
@bp.durable_client_input(client_name="client")
async def cut_over_wave(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    wave = req.route_params.get("wave", "")
    if not WAVE_PATTERN.fullmatch(wave):
        return _error(400, "InvalidWave", f"{wave!r} is not a wave name")
    try:
        body = json.loads(req.get_body() or b"{}")
    except ValueError:
        return _error(400, "InvalidJson", "the body is not JSON")
    if not isinstance(body, dict) or body.get("source_stopped") is not True:
        return _error(
            409, "SourceNotStopped",
            "stop the wave's EC2 instances first and confirm with {\"source_stopped\": true}: "
            "ASR cannot shut down an AWS source, and failing over a running one loses its latest writes",
        )  # fmt: skip
    if not services().store.list(wave=wave, page_size=1).items:
        return _error(404, "WaveNotFound", f"no migrations in wave {wave!r}")
    instance_id = names.wave_orchestration_id(wave)
    if await runtime_status(client, instance_id) in ACTIVE_RUNTIME_STATUSES:
        return _error(409, "WaveCutoverRunning", f"wave {wave!r} is already being cut over")
    await client.start_new(names.MIGRATE_WAVE, instance_id, {"wave": wave})
    body = {"wave": wave, "orchestration_id": instance_id, "status": "started"}
    return func.HttpResponse(json.dumps(body), status_code=202, mimetype="application/json")


def _error(status: int, code: str, message: str) -> func.HttpResponse:
    return func.HttpResponse(json.dumps({"error": {"code": code, "message": message}}), status_code=status,
                             mimetype="application/json")  # fmt: skip
