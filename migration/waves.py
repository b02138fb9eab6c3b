"""Cutting a wave over together with ASR recovery plans.

The wave's ready members (replicated, awaiting cutover, failover not started) are claimed, put
into recovery plans of at most 100 machines (ASR's limit), failed over and committed plan by
plan; members that are not ready are reported, not dragged along. A claimed member's own
orchestration then only completes its migration.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from migration.errors import NotFound, PreconditionFailed
from migration.lifecycle import Phase, ensure_transition
from migration.ports import AsrGateway, AsrJob, Clock, MigrationStore
from migration.records import MigrationEvent, MigrationRecord

logger = logging.getLogger("aws2azure.waves")
RECOVERY_PLAN_LIMIT = 100
UNPLANNED_FAILOVER = "UnplannedFailover"
READY_PHASES = frozenset({Phase.AWAITING_CUTOVER})
SAVE_ATTEMPTS = 8


class PlanMember(BaseModel):
    migration_id: str
    protected_item_name: str


class RecoveryPlanSpec(BaseModel):
    name: str
    members: list[PlanMember]


class LeftOut(BaseModel):
    migration_id: str
    phase: Phase
    reason: str


class WavePlan(BaseModel):
    wave: str
    plans: list[RecoveryPlanSpec]
    left_out: list[LeftOut]


class WaveState(BaseModel):
    """What migrate_wave carries across continue_as_new: one recovery plan per execution."""

    model_config = ConfigDict(extra="forbid")

    wave: str
    plan: WavePlan | None = None
    index: int = 0
    results: list[dict[str, Any]] = Field(default_factory=list)



def chunked(members: list[PlanMember], size: int) -> Iterator[list[PlanMember]]:
    for start in range(0, len(members), size):
        yield members[start : start + size]


def plan_name(wave: str, index: int) -> str:
    return f"aws2azure-{wave}-{index + 1:03d}"


class WaveCutover:
    def __init__(self, store: MigrationStore, asr: AsrGateway, clock: Clock, *,
                 plan_size: int = RECOVERY_PLAN_LIMIT) -> None:  # fmt: skip
        if not 1 <= plan_size <= RECOVERY_PLAN_LIMIT:
            raise ValueError(f"a recovery plan holds 1 to {RECOVERY_PLAN_LIMIT} machines")
        self.store, self.asr, self.clock, self.plan_size = store, asr, clock, plan_size

    def _members(self, wave: str) -> list[MigrationRecord]:
        records: list[MigrationRecord] = []
        continuation: str | None = None
        while True:
            page = self.store.list(wave=wave, continuation=continuation, page_size=200)
            records.extend(page.items)
            continuation = page.continuation
            if continuation is None:
                return sorted(records, key=lambda r: r.migration_id)

    def _update(self, migration_id: str, **fields: object) -> MigrationRecord:
        for _ in range(SAVE_ATTEMPTS):
            record = self.store.get(migration_id)
            if "phase" in fields:
                ensure_transition(record.phase, fields["phase"])  # type: ignore[arg-type]
            for key, value in fields.items():
                setattr(record, key, value)
            record.updated_at = self.clock.now()
            try:
                return self.store.update(record)
            except PreconditionFailed:
                continue
        raise PreconditionFailed(f"{migration_id}: too many concurrent updates", code="Contention")

    def _log(self, record: MigrationRecord, kind: str, message: str, **details: object) -> None:
        self.store.append_event(MigrationEvent(migration_id=record.migration_id, at=self.clock.now(), kind=kind,
                                               phase=record.phase, message=message, details=details))  # fmt: skip

    def _not_failover_ready(self, item: str) -> str | None:
        """Why ASR would refuse to fail ``item`` over now, or None when it would accept it.

        One member that ASR no longer has (deleted out of band) or cannot fail over would fail the whole
        recovery plan, and with it every other member's cutover: such a member stays out."""
        try:
            state = self.asr.get_replication_state(item)
        except NotFound:
            return f"ASR has no replicated item {item} any more (deleted outside aws2azure?)"
        if UNPLANNED_FAILOVER not in state.allowed_operations:
            offered = ", ".join(sorted(state.allowed_operations)) or "none"
            return f"ASR does not offer failover for {item} now (allowed operations: {offered})"
        return None

    def claim(self, wave: str) -> WavePlan:
        """Choose the members to cut over and mark them as the wave's; idempotent (a rerun keeps claims)."""
        ready: list[PlanMember] = []
        left_out: list[LeftOut] = []
        for record in self._members(wave):
            claimed = record.cutover_plan is not None
            eligible = record.phase in READY_PHASES and record.failover_requested_at is None
            if record.protected_item_name and (claimed or eligible):
                refusal = None if claimed else self._not_failover_ready(record.protected_item_name)
                if refusal is None:
                    ready.append(
                        PlanMember(migration_id=record.migration_id, protected_item_name=record.protected_item_name)
                    )
                    continue
                left_out.append(LeftOut(migration_id=record.migration_id, phase=record.phase, reason=refusal))
                self._log(record, "LeftOutOfWave", f"not cut over with wave {wave}: {refusal}")
            elif record.phase not in (Phase.MIGRATED, Phase.CANCELLED):
                why = record.reason or f"not ready for cutover ({record.phase.value})"
                left_out.append(LeftOut(migration_id=record.migration_id, phase=record.phase, reason=why))
                self._log(record, "LeftOutOfWave", f"not cut over with wave {wave}: {why}")
        plans = [RecoveryPlanSpec(name=plan_name(wave, i), members=chunk)
                 for i, chunk in enumerate(chunked(ready, self.plan_size))]  # fmt: skip
        for plan in plans:
            for member in plan.members:
                record = self._update(member.migration_id, cutover_plan=plan.name)
                self._log(record, "ClaimedByWave", f"cut over with wave {wave} in recovery plan {plan.name}")
        logger.info("wave %s: %d in %d plans, %d left out", wave, len(ready), len(plans), len(left_out))
        return WavePlan(wave=wave, plans=plans, left_out=left_out)

    def start_plan_failover(self, plan: RecoveryPlanSpec) -> str:
        """Create the plan and fail it over, once: members that carry the plan's job are not sent again."""
        current = [self.store.get(m.migration_id) for m in plan.members]
        started = {r.current_job_id for r in current if r.phase is Phase.FAILING_OVER and r.current_job_id}
        if len(started) == 1 and all(r.failover_requested_at for r in current):
            return started.pop()
        self.asr.create_recovery_plan(plan.name, [m.protected_item_name for m in plan.members])
        now = self.clock.now()
        for record in current:
            self._update(record.migration_id, failover_requested_at=record.failover_requested_at or now)
        job_id = self.asr.begin_recovery_plan_failover(plan.name)
        for record in current:
            moved = self._update(record.migration_id, phase=Phase.FAILING_OVER, current_job_id=job_id,
                                 reason=f"failing over with recovery plan {plan.name}")  # fmt: skip
            self._log(moved, "AsrJobStarted", f"recovery plan {plan.name} failover", job_id=job_id)
        return job_id

    def start_plan_commit(self, plan: RecoveryPlanSpec) -> str:
        job_id = self.asr.begin_recovery_plan_commit(plan.name)
        for member in plan.members:
            moved = self._update(member.migration_id, phase=Phase.COMMITTING, current_job_id=job_id,
                                 reason=f"committing with recovery plan {plan.name}")  # fmt: skip
            self._log(moved, "AsrJobStarted", f"recovery plan {plan.name} commit", job_id=job_id)
        return job_id

    def release_plan(self, plan: RecoveryPlanSpec, reason: str) -> list[str]:
        """A plan failed: its members leave it, Failed with ASR's reason, and each orchestration is told.

        Each member then resumes from what ASR says of its own item: one that did fail over goes on to
        commit alone; one that did not waits for its next cutover. Nobody waits for a plan that is over.
        Returns the members released (all of them; a rerun releases none twice)."""
        released: list[str] = []
        for member in plan.members:
            record = self.store.get(member.migration_id)
            if record.cutover_plan == plan.name:
                # The plan's failover request is spent. Where ASR still offers failover (the item did not
                # fail over), a later cutover is a new request, not a repeat of this one.
                retryable = self._not_failover_ready(member.protected_item_name) is None
                requested_at = None if retryable else record.failover_requested_at
                record = self._update(member.migration_id, phase=Phase.FAILED, reason=reason, cutover_plan=None,
                                      failover_requested_at=requested_at)  # fmt: skip
                self._log(record, "PhaseChanged", f"-> Failed: {reason}")
                self._log(record, "ReleasedFromPlan", f"left recovery plan {plan.name}; resuming from ASR's state")
            released.append(member.migration_id)
        return released

    def get_job(self, job_id: str) -> AsrJob:
        return self.asr.get_job(job_id)
