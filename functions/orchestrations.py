"""The migrate_instance orchestration: one per EC2 instance, from request to Migrated.

Deterministic by construction: it only calls activities, creates durable timers, waits for
external events and reads ``context.current_utc_datetime``. All ASR and storage work happens in
activities (functions/activities.py), each an idempotent step of migration.steps. Every decision
is taken from the WorkflowState it carries, so ``continue_as_new`` keeps history bounded however
long replication takes.
"""

from __future__ import annotations

import json
from collections.abc import Generator
from datetime import datetime, timedelta
from typing import Any

import azure.durable_functions as df

from functions import names
from migration.events import CancelRequestedData, FailoverRequestedData
from migration.monitoring import PollPolicy, is_stalled, job_poll_delay, next_replication_poll
from migration.outcome import Outcome
from migration.phases import Phase
from migration.steps import CLAIMED_BY_WAVE
from migration.workflow import JOB_STAGES, WATCH_STAGES, Stage, WorkflowState

bp = df.Blueprint()

# Activities that crash (a bug, a lost worker) are retried by the SDK; our own errors come back as
# an Outcome and are handled below by type.
CRASH_RETRY = df.RetryOptions(first_retry_interval_in_milliseconds=15_000, max_number_of_attempts=3)
MAX_STEP_ATTEMPTS = 8
TRANSIENT_BACKOFF = timedelta(seconds=30)
# Episodes per execution before continue_as_new: each costs about 8 history events.
EPISODES_PER_EXECUTION = 24
AWAIT_RECHECK = timedelta(hours=6)

Task = Any  # the SDK's TaskBase; it has no public type stubs
Flow = Generator[Task, Any, None]
_NOT_READY_ERRORS = frozenset({"not_found", "precondition"})


class InstanceMigration:
    """One execution of migrate_instance."""

    def __init__(self, context: df.DurableOrchestrationContext) -> None:
        self.context = context
        self.state = WorkflowState.model_validate(context.get_input())
        self.policy = PollPolicy(
            floor=timedelta(seconds=self.state.poll_floor_seconds),
            ceiling=timedelta(seconds=max(self.state.poll_ceiling_seconds, self.state.poll_floor_seconds)),
        )
        self.cancel_event = self._wait_for(names.EVENT_CANCEL_REQUESTED)
        self.failover_event = self._wait_for(names.EVENT_FAILOVER_REQUESTED)
        self.approve_event = self._wait_for(names.EVENT_APPROVED)
        self.plan_done_event = self._wait_for(names.EVENT_PLAN_CUTOVER_DONE)
        self.plan_failed_event = self._wait_for(names.EVENT_PLAN_CUTOVER_FAILED)

    def _wait_for(self, event_name: str) -> Task:
        # Payloads are validated on arrival (pydantic), not decoded into a type by the SDK.
        return self.context.wait_for_external_event(event_name, expected_type=object)

    def _done(self) -> bool:
        return self.state.stage is Stage.DONE

    @property
    def now(self) -> datetime:
        now: datetime = self.context.current_utc_datetime
        return now

    @property
    def migration_id(self) -> str:
        return self.state.migration_id

    def run(self) -> Generator[Task, Any, dict[str, Any]]:
        episodes = 0
        while self.state.stage is not Stage.DONE:
            # Events first, so none that has arrived is left behind by continue_as_new.
            yield from self._absorb_events()
            if self._done():
                break
            if episodes >= EPISODES_PER_EXECUTION:
                self.state.executions += 1
                self.context.continue_as_new(self.state.model_dump(mode="json"))
                return {"continued": True, "stage": self.state.stage.value}
            episodes += 1
            self._publish_status()
            yield from self._run_stage()
        self._publish_status()
        return {"migration_id": self.migration_id, "outcome": self.state.outcome}

    # -- events -----------------------------------------------------------------------------

    def _absorb_events(self) -> Flow:
        """Act on external events that have arrived, whatever the orchestration is doing."""
        if self.cancel_event.is_completed:
            payload = _event_payload(self.cancel_event.result)
            self.cancel_event = self._wait_for(names.EVENT_CANCEL_REQUESTED)
            yield from self._on_cancel(payload)
        if self.failover_event.is_completed:
            payload = _event_payload(self.failover_event.result)
            self.failover_event = self._wait_for(names.EVENT_FAILOVER_REQUESTED)
            yield from self._on_failover_request(payload)
        if self.plan_done_event.is_completed:
            payload = _event_payload(self.plan_done_event.result)
            self.plan_done_event = self._wait_for(names.EVENT_PLAN_CUTOVER_DONE)
            if self.state.stage not in (Stage.COMPLETE, Stage.WATCH_COMPLETE, Stage.DONE):
                # The wave's recovery plan failed over and committed this instance: complete it.
                self.state.stage, self.state.job_id = Stage.COMPLETE, None
                plan = payload.get("plan") if isinstance(payload, dict) else None
                yield from self._note("PlanCutoverDone", f"failed over and committed with recovery plan {plan}")
        if self.plan_failed_event.is_completed:
            payload = _event_payload(self.plan_failed_event.result)
            self.plan_failed_event = self._wait_for(names.EVENT_PLAN_CUTOVER_FAILED)
            if self.state.stage in (Stage.AWAIT_CUTOVER, Stage.FAILOVER):
                # The wave's plan failed and released this member: resume from ASR's own state (a member
                # that failed over commits alone; one that did not waits for its next cutover).
                self.state.stage, self.state.job_id, self.state.cutover = Stage.MONITOR, None, None
                detail = payload if isinstance(payload, dict) else {}
                yield from self._note(
                    "PlanCutoverFailed",
                    f"recovery plan {detail.get('plan')} failed ({detail.get('reason') or 'no reason'}); "
                    "resuming from ASR's state",
                )
        if self.approve_event.is_completed:
            self.approve_event = self._wait_for(names.EVENT_APPROVED)
            if not self.state.approved:
                self.state.approved = True
                yield from self._note("Approved", "cutover approved by an operator")

    def _on_cancel(self, payload: Any) -> Flow:
        try:
            request = CancelRequestedData.model_validate(payload)
        except ValueError as exc:
            yield from self._note("EventRejected", f"CancelRequested ignored, invalid payload: {exc}")
            return
        if self.state.stage in (Stage.CANCEL, Stage.WATCH_CANCEL, Stage.DONE):
            return
        if self.state.stage in _FAILOVER_STARTED:
            yield from self._note(
                "CancelRefused",
                "cancel refused: the failover has started, and ASR must never cancel a migration failover",
            )
            return
        self.state.cancel = request
        self.state.stage = Stage.CANCEL
        yield from self._note("CancelRequested", f"cancel requested by {request.requested_by}: {request.reason}")

    def _on_failover_request(self, payload: Any) -> Flow:
        try:
            request = FailoverRequestedData.model_validate(payload)
        except ValueError as exc:
            yield from self._note("EventRejected", f"FailoverRequested ignored, invalid payload: {exc}")
            return
        if self.state.cutover is not None or self.state.stage in _FAILOVER_STARTED:
            yield from self._note(
                "DuplicateIgnored",
                f"FailoverRequested from {request.requested_by} ignored: the cutover was already requested",
            )
            return
        if not request.source_stopped:
            yield from self._note(
                "FailoverDeferred",
                f"FailoverRequested from {request.requested_by} not acted on: the source instance is not "
                "confirmed stopped (the cutover Lambda stops it first)",
            )
            return
        self.state.cutover = request
        yield from self._note("FailoverRequested", f"cutover requested by {request.requested_by}")

    # -- stages -----------------------------------------------------------------------------

    def _run_stage(self) -> Flow:
        stage = self.state.stage
        if stage is Stage.REGISTER:
            yield from self._register()
        elif stage is Stage.MONITOR:
            yield from self._monitor()
        elif stage is Stage.AWAIT_CUTOVER:
            yield from self._await_cutover()
        elif stage in WATCH_STAGES:
            yield from self._watch_job(after=WATCH_STAGES[stage])
        elif stage in JOB_STAGES:
            yield from self._start_job(stage)
        else:  # pragma: no cover - every stage is handled above
            raise AssertionError(f"unhandled stage {stage}")

    def _register(self) -> Flow:
        outcome = yield from self._step("register", self.state.request.model_dump(mode="json"))
        if not outcome.ok:
            yield from self._fail(f"could not record the request: {_describe(outcome)}")
            return
        registered = outcome.value
        phase, job_id = Phase(registered["phase"]), registered.get("current_job_id")
        if registered.get("protected_item_name") is None:
            self.state.stage = Stage.ENABLE
        elif phase is Phase.ENABLING_REPLICATION and job_id:
            self.state.stage, self.state.job_id = Stage.WATCH_ENABLE, job_id
        elif phase in _PHASE_WATCH and job_id:
            self.state.stage, self.state.job_id = _PHASE_WATCH[phase], job_id
        else:
            self.state.stage = Stage.MONITOR
        self.state.replication_started_at = self.state.replication_started_at or self.now

    def _start_job(self, stage: Stage) -> Flow:
        activity = _STARTERS[stage]
        outcome = yield from self._step(activity, {"migration_id": self.migration_id})
        if not outcome.ok:
            error = outcome.error
            if stage is Stage.ENABLE and error is not None and error.kind in _NOT_READY_ERRORS:
                yield from self._finish(Phase.NOT_READY, f"not ready for replication: {error.message}")
                return
            if stage is Stage.FAILOVER and error is not None and error.code == CLAIMED_BY_WAVE:
                # The wave cuts this instance over; wait for its PlanCutoverDone.
                self.state.stage, self.state.cutover = Stage.AWAIT_CUTOVER, None
                yield from self._note("FailoverDeferred", error.message)
                return
            yield from self._fail(f"{activity} failed: {_describe(outcome)}")
            return
        if stage is Stage.CANCEL and not outcome.value:
            yield from self._finish(Phase.CANCELLED, self._cancel_reason())
            return
        watch, _ = JOB_STAGES[stage]
        self.state.stage, self.state.job_id, self.state.job_checks = watch, outcome.value["job_id"], 0
        if stage is Stage.ENABLE:
            self.state.replication_started_at = self.now

    def _watch_job(self, *, after: Stage) -> Flow:
        delay = job_poll_delay(self.policy, checks_so_far=self.state.job_checks)
        woke_by_event = yield from self._sleep(self.now + delay)
        if woke_by_event:
            return
        self.state.job_checks += 1
        outcome = yield from self._step("get_job", {"migration_id": self.migration_id, "job_id": self.state.job_id})
        if not outcome.ok:
            yield from self._fail(f"could not read ASR job {self.state.job_id}: {_describe(outcome)}")
            return
        job = outcome.value
        if job["state"] in ("NotStarted", "InProgress", "Suspended"):
            return
        if job["state"] != "Succeeded":
            errors = "; ".join(job.get("errors") or []) or "no error details"
            yield from self._fail(f"ASR job {job.get('display_name') or job['job_id']} {job['state']}: {errors}")
            return
        watched = self.state.stage
        self.state.stage, self.state.job_id = after, None
        if watched is Stage.WATCH_TEST_CLEANUP:
            self.state.test_failover_done = True
        if after is Stage.DONE:
            if watched is Stage.WATCH_CANCEL:
                yield from self._finish(Phase.CANCELLED, self._cancel_reason())
            else:
                yield from self._finish(Phase.MIGRATED, "")

    def _monitor(self) -> Flow:
        outcome = yield from self._step("observe_replication", {"migration_id": self.migration_id})
        if not outcome.ok:
            yield from self._fail(f"could not read replication state: {_describe(outcome)}")
            return
        snapshot = outcome.value
        if snapshot["failed_over"]:
            self.state.stage = Stage.COMMIT
            return
        if snapshot["ready_for_cutover"]:
            yield from self._record(Phase.READY_FOR_CUTOVER)
            wants_test = self.state.request.test_failover and not self.state.test_failover_done
            self.state.stage = Stage.TEST_FAILOVER if wants_test else Stage.AWAIT_CUTOVER
            return
        self.state.note_progress(self.now, snapshot["progress_percent"])
        unhealthy = snapshot["replication_health"] == "Critical"
        if unhealthy and is_stalled(self.policy, now=self.now, no_progress_since=self.state.no_progress_since):
            errors = "; ".join(snapshot["health_errors"]) or "no health error reported"
            yield from self._fail(
                f"replication stalled at {snapshot['progress_percent'] or 0}% for "
                f"{self.policy.stall_timeout} with health Critical ({errors}); check the replication appliance "
                "and the source's connectivity to it, then retry"
            )
            return
        started = self.state.replication_started_at or self.now
        delay = next_replication_poll(self.policy, now=self.now, started_at=started,
                                      progress_percent=snapshot["progress_percent"])  # fmt: skip
        yield from self._sleep(self.now + delay)

    def _await_cutover(self) -> Flow:
        if self.state.cutover is not None and (self.state.approved or not self.state.approval_required):
            self.state.stage = Stage.FAILOVER
            return
        yield from self._record(Phase.AWAITING_CUTOVER, self._waiting_reason())
        cutover_at = self.state.request.cutover_at
        wake = self.now + AWAIT_RECHECK
        window_timer = cutover_at is not None and not self.state.window_reached and cutover_at < wake
        if window_timer and cutover_at is not None:
            wake = max(cutover_at, self.now)
        woke_by_event = yield from self._sleep(wake)
        if not woke_by_event and window_timer:
            self.state.window_reached = True
        elif not woke_by_event:
            # A long wait: look at replication health again, so the status stays true.
            outcome = yield from self._step(
                "observe_replication",
                {"migration_id": self.migration_id, "phase": Phase.AWAITING_CUTOVER.value},
            )
            if not outcome.ok:
                yield from self._fail(f"could not read replication state: {_describe(outcome)}")

    def _waiting_reason(self) -> str:
        if self.state.cutover is not None:
            return "cutover requested; waiting for the wave's approval"
        if self.state.window_reached:
            return ("cutover window reached; waiting for the AWS cutover to stop the source and confirm "
                    "(aws2azure cutover, or the schedule)")  # fmt: skip
        if self.state.request.cutover_at is not None:
            return f"waiting for the cutover window at {self.state.request.cutover_at.isoformat()}"
        return "waiting for a cutover request (no window set)"

    def _cancel_reason(self) -> str:
        cancel = self.state.cancel
        return f"cancelled by {cancel.requested_by}: {cancel.reason}".rstrip(": ") if cancel else "cancelled"

    # -- building blocks ----------------------------------------------------------------------

    def _sleep(self, until: datetime) -> Generator[Task, Any, bool]:
        """A durable timer that an external event can cut short; True if an event woke us.

        Every event is waited for at every sleep, so a late duplicate is seen and recorded as ignored.
        """
        timer = self.context.create_timer(until)
        waiting = [timer, self.cancel_event, self.approve_event, self.failover_event, self.plan_done_event,
                   self.plan_failed_event]  # fmt: skip
        winner = yield self.context.task_any(waiting)
        if winner is timer:
            return False
        if not timer.is_completed:
            timer.cancel()
        return True

    def _step(self, activity: str, payload: dict[str, Any]) -> Generator[Task, Any, Outcome]:
        """Run one activity; wait out throttling (Retry-After) and transient errors, durably."""
        outcome = Outcome(ok=False)
        for attempt in range(MAX_STEP_ATTEMPTS):
            try:
                raw = yield self.context.call_activity_with_retry(activity, CRASH_RETRY, payload, expected_type=dict)
            except Exception as exc:  # the activity crashed on every attempt: a bug or a lost dependency
                return Outcome.model_validate(
                    {"ok": False, "error": {"kind": "permanent", "message": f"{activity} crashed: {exc}"}}
                )
            outcome = Outcome.model_validate(raw)
            if outcome.ok or outcome.error is None or not outcome.error.retryable:
                return outcome
            if attempt + 1 < MAX_STEP_ATTEMPTS:
                wait = outcome.error.retry_after_seconds
                delay = timedelta(seconds=wait) if wait else TRANSIENT_BACKOFF * (2**attempt)
                yield self.context.create_timer(self.now + delay)
        return outcome

    def _record(self, phase: Phase, reason: str = "") -> Flow:
        outcome = yield from self._step(
            "record_phase", {"migration_id": self.migration_id, "phase": phase.value, "reason": reason}
        )
        if not outcome.ok:
            raise RuntimeError(f"could not record phase {phase.value}: {_describe(outcome)}")

    def _note(self, kind: str, message: str) -> Flow:
        yield from self._step("log_event", {"migration_id": self.migration_id, "kind": kind, "message": message})

    def _fail(self, reason: str) -> Flow:
        yield from self._finish(Phase.FAILED, reason)

    def _finish(self, phase: Phase, reason: str) -> Flow:
        outcome = yield from self._step(
            "record_phase", {"migration_id": self.migration_id, "phase": phase.value, "reason": reason}
        )
        self.state.stage = Stage.DONE
        self.state.outcome = phase.value if outcome.ok else f"{phase.value} (not recorded: {_describe(outcome)})"

    def _publish_status(self) -> None:
        self.context.set_custom_status({
            "migration_id": self.migration_id, "stage": self.state.stage.value,
            "progress_percent": self.state.last_progress, "job_id": self.state.job_id,
            "outcome": self.state.outcome, "executions": self.state.executions,
        })  # fmt: skip


_FAILOVER_STARTED = frozenset(
    {
        Stage.FAILOVER,
        Stage.WATCH_FAILOVER,
        Stage.COMMIT,
        Stage.WATCH_COMMIT,
        Stage.COMPLETE,
        Stage.WATCH_COMPLETE,
    }
)
_STARTERS = {
    Stage.ENABLE: "start_replication",
    Stage.TEST_FAILOVER: "start_test_failover",
    Stage.TEST_CLEANUP: "start_test_failover_cleanup",
    Stage.FAILOVER: "start_failover",
    Stage.COMMIT: "start_commit",
    Stage.COMPLETE: "start_complete_migration",
    Stage.CANCEL: "start_disable_replication",
}
_PHASE_WATCH = {
    Phase.FAILING_OVER: Stage.WATCH_FAILOVER,
    Phase.COMMITTING: Stage.WATCH_COMMIT,
    Phase.COMPLETING: Stage.WATCH_COMPLETE,
}


def _event_payload(raw: Any) -> Any:
    """The event's data as sent. The Python Durable client JSON-encodes ``event_data`` and then posts it
    as JSON again, so on Azure (and on the local host) a dict arrives as its JSON text."""
    if isinstance(raw, str):
        try:
            return json.loads(raw)
        except ValueError:
            return raw
    return raw


def _describe(outcome: Outcome) -> str:
    if outcome.error is None:
        return "unknown error"
    return f"{outcome.error.message}" + (f" ({outcome.error.code})" if outcome.error.code else "")


@bp.orchestration_trigger(context_name="context", orchestration=names.MIGRATE_INSTANCE, input_type=dict)
def migrate_instance(context: df.DurableOrchestrationContext) -> Generator[Task, Any, dict[str, Any]]:
    result = yield from InstanceMigration(context).run()
    return result
