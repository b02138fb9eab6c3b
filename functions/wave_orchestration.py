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

from functions import names
from functions.bootstrap import services
from functions.dispatch import runtime_status
from migration.outcome import Outcome, capture
from migration.tags import WAVE_PATTERN
from migration.waves import RecoveryPlanSpec, WaveCutover, WavePlan

bp = df.Blueprint()
CRASH_RETRY = df.RetryOptions(first_retry_interval_in_milliseconds=15_000, max_number_of_attempts=3)
JOB_POLL = timedelta(minutes=5)
MAX_STEP_ATTEMPTS = 8
Task = Any


def _wave_cutover() -> WaveCutover:
    runtime = services()
    return WaveCutover(runtime.store, runtime.asr, runtime.clock)


class WaveMigration:
    def __init__(self, context: df.DurableOrchestrationContext) -> None:
        self.context = context
        state: dict[str, Any] = context.get_input()
        self.wave: str = state["wave"]
        self.plan = WavePlan.model_validate(state["plan"]) if state.get("plan") else None
        self.index: int = state.get("index", 0)
        self.results: list[dict[str, Any]] = state.get("results", [])

    @property
    def now(self) -> datetime:
        now: datetime = self.context.current_utc_datetime
        return now

    def _step(self, activity: str, payload: dict[str, Any]) -> Generator[Task, Any, Outcome]:
        outcome = Outcome(ok=False)
        for attempt in range(MAX_STEP_ATTEMPTS):
            raw = yield self.context.call_activity_with_retry(activity, CRASH_RETRY, payload, expected_type=dict)
            outcome = Outcome.model_validate(raw)
            if outcome.ok or outcome.error is None or not outcome.error.retryable:
                return outcome
            wait = outcome.error.retry_after_seconds or 30 * 2**attempt
            yield self.context.create_timer(self.now + timedelta(seconds=wait))
        return outcome

    def _watch(self, job_id: str) -> Generator[Task, Any, Outcome]:
        while True:
            yield self.context.create_timer(self.now + JOB_POLL)
            outcome = yield from self._step("get_wave_job", {"job_id": job_id})
            if not outcome.ok or outcome.value["finished"]:
                return outcome

    def run(self) -> Generator[Task, Any, dict[str, Any]]:
        if self.plan is None:
            claimed = yield from self._step("claim_wave", {"wave": self.wave})
            if not claimed.ok:
                return {"wave": self.wave, "error": claimed.error.message if claimed.error else "claim failed"}
            self.plan = WavePlan.model_validate(claimed.value)
        if self.index < len(self.plan.plans):
            spec = self.plan.plans[self.index]
            self.results.append((yield from self._cut_over(spec)))
            self.context.continue_as_new({"wave": self.wave, "plan": self.plan.model_dump(mode="json"),
                                          "index": self.index + 1, "results": self.results})  # fmt: skip
            return {"wave": self.wave, "continued": True}
        return {
            "wave": self.wave,
            "plans": self.results,
            "left_out": [member.model_dump(mode="json") for member in self.plan.left_out],
        }

    def _cut_over(self, spec: RecoveryPlanSpec) -> Generator[Task, Any, dict[str, Any]]:
        plan = spec.model_dump(mode="json")
        for operation in ("start_plan_failover", "start_plan_commit"):
            started = yield from self._step(operation, {"plan": plan})
            outcome = started if not started.ok else (yield from self._watch(started.value["job_id"]))
            failed = not outcome.ok or outcome.value.get("state") != "Succeeded"
            if failed:
                detail = outcome.error.message if outcome.error else "; ".join(outcome.value.get("errors") or [])
                reason = f"recovery plan {spec.name}: {operation.removeprefix('start_plan_')} failed: {detail}"
                yield from self._step("release_plan", {"plan": plan, "reason": reason})
                yield self.context.call_activity_with_retry(
                    "notify_plan_members", CRASH_RETRY, {"plan": plan, "failed": True, "reason": reason}
                )
                return {"plan": spec.name, "members": len(spec.members), "outcome": "Failed", "reason": reason}
        yield self.context.call_activity_with_retry("notify_plan_members", CRASH_RETRY, {"plan": plan})
        return {"plan": spec.name, "members": len(spec.members), "outcome": "Committed"}


@bp.orchestration_trigger(context_name="context", orchestration=names.MIGRATE_WAVE, input_type=dict)
def migrate_wave(context: df.DurableOrchestrationContext) -> Generator[Task, Any, dict[str, Any]]:
    result = yield from WaveMigration(context).run()
    return result


@bp.activity_trigger(input_name="payload", activity="claim_wave")
def claim_wave(payload: dict[str, Any]) -> dict[str, Any]:
    return capture(lambda: _wave_cutover().claim(payload["wave"]))


@bp.activity_trigger(input_name="payload", activity="start_plan_failover")
def start_plan_failover(payload: dict[str, Any]) -> dict[str, Any]:
    spec = RecoveryPlanSpec.model_validate(payload["plan"])
    return capture(lambda: {"job_id": _wave_cutover().start_plan_failover(spec)})


@bp.activity_trigger(input_name="payload", activity="start_plan_commit")
def start_plan_commit(payload: dict[str, Any]) -> dict[str, Any]:
    spec = RecoveryPlanSpec.model_validate(payload["plan"])
    return capture(lambda: {"job_id": _wave_cutover().start_plan_commit(spec)})


@bp.activity_trigger(input_name="payload", activity="release_plan")
def release_plan(payload: dict[str, Any]) -> dict[str, Any]:
    spec = RecoveryPlanSpec.model_validate(payload["plan"])
    return capture(lambda: _wave_cutover().release_plan(spec, payload["reason"]))


@bp.activity_trigger(input_name="payload", activity="get_wave_job")
def get_wave_job(payload: dict[str, Any]) -> dict[str, Any]:
    return capture(lambda: _wave_cutover().get_job_state(payload["job_id"]))


@bp.activity_trigger(input_name="payload", activity="notify_plan_members")
@bp.durable_client_input(client_name="client")
async def notify_plan_members(payload: dict[str, Any], client: df.DurableOrchestrationClient) -> int:
    spec = RecoveryPlanSpec.model_validate(payload["plan"])
    event = names.EVENT_PLAN_CUTOVER_FAILED if payload.get("failed") else names.EVENT_PLAN_CUTOVER_DONE
    data = {"plan": spec.name, "reason": payload.get("reason", "")}
    for member in spec.members:
        await client.raise_event(member.migration_id, event, data)
    return len(spec.members)


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
    if await runtime_status(client, instance_id) in ("Pending", "Running", "ContinuedAsNew"):
        return _error(409, "WaveCutoverRunning", f"wave {wave!r} is already being cut over")
    await client.start_new(names.MIGRATE_WAVE, instance_id, {"wave": wave})
    body = {"wave": wave, "orchestration_id": instance_id, "status": "started"}
    return func.HttpResponse(json.dumps(body), status_code=202, mimetype="application/json")


def _error(status: int, code: str, message: str) -> func.HttpResponse:
    return func.HttpResponse(json.dumps({"error": {"code": code, "message": message}}), status_code=status,
                             mimetype="application/json")  # fmt: skip
