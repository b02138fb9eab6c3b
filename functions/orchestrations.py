"""The migrate_instance orchestration: one per EC2 instance, from request to Migrated.

It decides nothing itself: the lifecycle (migration/lifecycle.py) decides, from the WorkflowState and
what just happened, and this class carries the commands out. Deterministic by construction: it only
calls activities, creates durable timers, waits for external events and reads
``context.current_utc_datetime``; ``continue_as_new`` keeps history bounded however long replication takes.
"""

from __future__ import annotations

import json
from collections.abc import Generator
from datetime import datetime, timedelta
from typing import Any

import azure.durable_functions as df

from functions import names
from functions.step_runner import RetryClock, Task, run_step, still_retrying
from migration import contracts as c
from migration import lifecycle
from migration.lifecycle import (
    EPISODES_PER_EXECUTION,
    INSTANCE_EVENTS,
    JOB_STAGES,
    WATCH_STAGES,
    CheckHealth,
    Command,
    Decision,
    Finish,
    Note,
    Record,
    Sleep,
    Stage,
    WorkflowState,
)
from migration.outcome import Outcome

bp = df.Blueprint()
Flow = Generator[Task, Any, None]
# Audit and phase writes (Table Storage) retry within the execution, bounded by the time budget and this count.
COMMAND_MAX_ATTEMPTS = 64


class _StillRetrying(Exception):
    """A stage's activity met only transient errors for a whole execution's attempts: continue as new."""


class InstanceMigration:
    """One execution of migrate_instance."""

    def __init__(self, context: df.DurableOrchestrationContext) -> None:
        self.context = context
        self.state = WorkflowState.model_validate(context.get_input())
        self.events = {name: self._wait_for(name) for name in INSTANCE_EVENTS}

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
            try:
                yield from self._run_stage()
            except _StillRetrying:
                # The same stage runs its activity again in a fresh execution, against the same deadline
                # (state.retrying_since), so one long retry sequence never grows one history without bound.
                self.state.executions += 1
                self.context.continue_as_new(self.state.model_dump(mode="json"))
                return {"continued": True, "stage": self.state.stage.value, "retrying": True}
        self._publish_status()
        return {"migration_id": self.migration_id, "outcome": self.state.outcome}

    def _absorb_events(self) -> Flow:
        for name in INSTANCE_EVENTS:
            if self.events[name].is_completed:
                payload = _event_payload(self.events[name].result)
                self.events[name] = self._wait_for(name)
                yield from self._carry_out(lifecycle.on_event(self.state, name, payload))

    def _run_stage(self) -> Flow:
        stage, ref = self.state.stage, c.MigrationRef(migration_id=self.migration_id)
        job_ref = c.JobRef(migration_id=self.migration_id, job_id=self.state.job_id or "")
        if stage is Stage.REGISTER:
            registered = yield from self._stage_step(c.REGISTER, self.state.request)
            decision = lifecycle.after_register(self.state, registered.value, registered.error, self.now)
        elif stage is Stage.MONITOR:
            observe = c.ObserveRequest(migration_id=self.migration_id)
            observed = yield from self._stage_step(c.OBSERVE_REPLICATION, observe)
            decision = lifecycle.after_observation(self.state, observed.value, observed.error, self.now)
        elif stage is Stage.AWAIT_CUTOVER:
            decision = lifecycle.await_cutover(self.state, self.now)
        elif stage is Stage.ROLLBACK:
            rollback = self.state.rollback or lifecycle.RollbackRequest()
            started = yield from self._stage_step(c.START_ROLLBACK, c.RollbackStart(migration_id=self.migration_id,
                                                                                     request=rollback))  # fmt: skip
            job_id = started.value.job_id if started.value is not None else None
            decision = lifecycle.after_start(self.state, job_id, started.error, self.now)
        elif stage is Stage.REMOVE_VM:
            removed = yield from self._stage_step(c.REMOVE_FAILED_OVER_VM, ref)
            gone = removed.value.gone if removed.value is not None else None
            decision = lifecycle.after_remove_vm(self.state, gone, removed.error, self.now)
        elif stage is Stage.VALIDATE:
            looked = yield from self._stage_step(c.VALIDATE_FAILOVER, ref)
            decision = lifecycle.after_validation(self.state, looked.value, looked.error, self.now)
        elif stage in WATCH_STAGES and self.state.restart_pending:
            restarted = yield from self._stage_step(c.RESTART_JOB, job_ref)
            new_job = restarted.value.job_id if restarted.value is not None else None
            decision = lifecycle.after_restart(self.state, new_job, restarted.error)
        elif stage in WATCH_STAGES:
            woke_by_event = yield from self._carry_out(lifecycle.watch_job(self.state, self.now))
            if woke_by_event:
                return
            job = yield from self._stage_step(c.GET_JOB, job_ref)
            decision = lifecycle.after_job(self.state, job.value, job.error)
        elif stage in JOB_STAGES:
            started = yield from self._stage_step(c.STARTERS[stage], ref)
            job_id = started.value.job_id if started.value is not None else None
            decision = lifecycle.after_start(self.state, job_id, started.error, self.now)
        else:  # pragma: no cover - every stage is handled above
            raise AssertionError(f"unhandled stage {stage}")
        yield from self._carry_out(decision)

    # -- carrying out commands ------------------------------------------------------------------

    def _carry_out(self, decision: Decision) -> Generator[Task, Any, bool]:
        """Run the decision's commands in order; True if an external event cut a Sleep short."""
        for command in decision.commands:
            woke_by_event = yield from self._command(command)
            if woke_by_event:
                return True
        return False

    def _command(self, command: Command) -> Generator[Task, Any, bool]:
        if isinstance(command, Note):
            yield from self._step(c.LOG_EVENT, c.AuditNote(migration_id=self.migration_id, kind=command.kind,
                                                          message=command.message))  # fmt: skip
        elif isinstance(command, Record):
            recorded = yield from self._record(command.phase, command.reason)
            if not recorded.ok:
                raise RuntimeError(
                    f"could not record phase {command.phase.value}: {lifecycle.describe(recorded.error)}"
                )
        elif isinstance(command, Finish):
            recorded = yield from self._record(command.phase, command.reason)
            self.state.stage = Stage.DONE
            why = "" if recorded.ok else f" (not recorded: {lifecycle.describe(recorded.error)})"
            self.state.outcome = command.phase.value + why
        elif isinstance(command, Sleep):
            woke_by_event = yield from self._sleep(command.until)
            if woke_by_event:
                return True
            yield from self._carry_out(lifecycle.on_timer(self.state, command.purpose))
        elif isinstance(command, CheckHealth):
            request = c.ObserveRequest(migration_id=self.migration_id, phase=command.phase)
            observed = yield from self._step(c.OBSERVE_REPLICATION, request)
            yield from self._carry_out(lifecycle.after_health_check(self.state, observed.ok, observed.error))
        return False

    def _sleep(self, until: datetime) -> Generator[Task, Any, bool]:
        """A durable timer that an external event can cut short; True if an event woke us.

        Every event is waited for at every sleep, so a late duplicate is seen and recorded as ignored.
        """
        timer = self.context.create_timer(until)
        winner = yield self.context.task_any([timer, *self.events.values()])
        if winner is timer:
            return False
        if not timer.is_completed:
            timer.cancel()
        return True

    @property
    def _clock(self) -> RetryClock:
        return RetryClock(budget=timedelta(seconds=self.state.retry_budget_seconds), since=self.state.retrying_since)

    def _stage_step(self, activity: c.Activity[c.In, c.Out], value: c.In) -> Generator[Task, Any, Outcome[c.Out]]:
        """The stage's own activity (ASR): retried on the time budget; past an execution's attempts, continue as
        new (raises _StillRetrying) before any decision has been taken, so nothing is half done."""
        clock, started = self._clock, self.now
        outcome = yield from run_step(self.context, activity, value, clock)
        if still_retrying(outcome, clock, self.now):
            self.state.retrying_since = self.state.retrying_since or started
            raise _StillRetrying
        self.state.retrying_since = None
        return outcome

    def _step(self, activity: c.Activity[c.In, c.Out], value: c.In) -> Generator[Task, Any, Outcome[c.Out]]:
        """A command's activity (audit, phase, a health look): retried within the execution on the time budget."""
        outcome = yield from run_step(self.context, activity, value, self._clock, max_attempts=COMMAND_MAX_ATTEMPTS)
        return outcome

    def _record(self, phase: lifecycle.Phase, reason: str) -> Generator[Task, Any, Outcome[c.Done]]:
        outcome = yield from self._step(c.RECORD_PHASE, c.PhaseRecord(migration_id=self.migration_id, phase=phase,
                                                                       reason=reason))  # fmt: skip
        return outcome

    def _publish_status(self) -> None:
        self.context.set_custom_status({
            "migration_id": self.migration_id, "stage": self.state.stage.value,
            "progress_percent": self.state.last_progress, "job_id": self.state.job_id,
            "outcome": self.state.outcome, "executions": self.state.executions,
        })  # fmt: skip


def _event_payload(raw: Any) -> Any:
    """The event's data as sent. The Python Durable client JSON-encodes ``event_data`` and then posts it
    as JSON again, so on Azure (and on the local host) a dict arrives as its JSON text
    (azure-functions-durable-python#295)."""
    if isinstance(raw, str):
        try:
            return json.loads(raw)
        except ValueError:
            return raw
    return raw


@bp.orchestration_trigger(context_name="context", orchestration=names.MIGRATE_INSTANCE, input_type=dict)
def migrate_instance(context: df.DurableOrchestrationContext) -> Generator[Task, Any, dict[str, Any]]:
    result = yield from InstanceMigration(context).run()
    return result
