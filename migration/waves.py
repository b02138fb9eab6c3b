"""Cutting a wave over together with ASR recovery plans.

The wave's ready members (replicated, awaiting cutover, failover not started) are claimed and their
records say "stop requested"; the AWS side (status sync) reads that and stops the sources. Members join
recovery plans of at most 100 machines (ASR's limit) as their sources report stopped, and the plans fail
over in parallel; members that are not ready, or whose source did not stop in its bound, are left out
with a reason and keep replicating. A claimed member's own orchestration then only completes its migration.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import datetime, timedelta

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from migration.errors import InvalidInput, NotFound, PreconditionFailed
from migration.lifecycle import Phase, ensure_transition
from migration.notifications import NotificationOutbox, queue_phase_change
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


class WaveClaim(BaseModel):
    """The members a wave cutover claimed (their sources to stop), and those it left out."""

    wave: str
    members: list[PlanMember]
    left_out: list[LeftOut]


class WaveMembers(BaseModel):
    model_config = ConfigDict(extra="forbid")
    wave: str
    members: list[PlanMember]


class StopReport(BaseModel):
    """Of the members still waiting: the ones whose source reported stopped, and the ones no longer eligible."""

    stopped: list[PlanMember]
    left_out: list[LeftOut]


class LeaveOut(BaseModel):
    model_config = ConfigDict(extra="forbid")
    wave: str
    members: list[PlanMember]
    reason: str


class PlanAssignment(BaseModel):
    model_config = ConfigDict(extra="forbid")
    wave: str
    plan: RecoveryPlanSpec


class WaveState(BaseModel):
    """What migrate_wave carries across continue_as_new (only while no plan runs)."""

    model_config = ConfigDict(extra="forbid")

    wave: str
    # The wave asks the AWS side to stop its sources (False: an operator stopped them and said so).
    stop_sources: bool = True
    # The comparison path: every source stopped first, then one plan after another (WAVE_SEQUENTIAL_PLANS).
    sequential: bool = False
    max_parallel_plans: int = Field(default=10, ge=1)
    # How long a source may take to report stopped (status sync's interval + the AWS side's stop bound).
    stop_bound_seconds: int = Field(default=1800, ge=60)
    # How long stopped members wait for more to fill their plan before it starts without them.
    gather_seconds: int = Field(default=60, ge=0)
    poll_seconds: int = Field(default=60, ge=10)
    # The wave's own cutover window: nothing is claimed or stopped before it (None: now).
    cutover_at: AwareDatetime | None = None
    claimed: bool = False
    started_at: AwareDatetime | None = None
    waiting: list[PlanMember] = Field(default_factory=list)  # claimed, source not reported stopped yet
    ready: list[PlanMember] = Field(default_factory=list)  # stopped, not in a plan yet
    ready_since: AwareDatetime | None = None
    plans_made: int = 0
    left_out: list[LeftOut] = Field(default_factory=list)
    executions: int = 0


# How far ahead a wave's cutover may be scheduled; further out, the plan (and the replication health it relies
# on) is better decided nearer the time.
LONGEST_WAVE_SCHEDULE = timedelta(days=90)


def check_wave_window(at: datetime | None, now: datetime) -> None:
    """A wave's cutover window must lie ahead, and not too far: refused with what to do instead."""
    if at is None:
        return
    when, today = at.astimezone(now.tzinfo).isoformat(), now.isoformat(timespec="seconds")
    if at <= now:
        raise InvalidInput(f"the wave's cutover time {when} has passed (it is {today}): leave 'at' out to cut the "
                           "wave over now, or give a time ahead")  # fmt: skip
    if at > now + LONGEST_WAVE_SCHEDULE:
        raise InvalidInput(f"the wave's cutover time {when} is more than {LONGEST_WAVE_SCHEDULE.days} days ahead "
                           f"(it is {today}): schedule it nearer the time")  # fmt: skip


def claim_marker(wave: str) -> str:
    """``cutover_plan`` of a claimed member whose source has not stopped yet: the wave owns its cutover."""
    return f"aws2azure-{wave}-stopping"


def chunked(members: list[PlanMember], size: int) -> Iterator[list[PlanMember]]:
    for start in range(0, len(members), size):
        yield members[start : start + size]


def plan_name(wave: str, index: int) -> str:
    return f"aws2azure-{wave}-{index + 1:03d}"


class WaveCutover:
    def __init__(self, store: MigrationStore, asr: AsrGateway, clock: Clock, *,
                 plan_size: int = RECOVERY_PLAN_LIMIT, outbox: NotificationOutbox | None = None) -> None:  # fmt: skip
        if not 1 <= plan_size <= RECOVERY_PLAN_LIMIT:
            raise ValueError(f"a recovery plan holds 1 to {RECOVERY_PLAN_LIMIT} machines")
        self.store, self.asr, self.clock, self.plan_size = store, asr, clock, plan_size
        self.outbox = outbox

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
            fields, target = dict(fields), None
            if "phase" in fields:
                target = ensure_transition(record.phase, fields.pop("phase"))  # type: ignore[arg-type]
                record.enter_phase(target, self.clock.now(), str(fields.get("reason", "")))
            for key, value in fields.items():
                setattr(record, key, value)
            record.updated_at = self.clock.now()
            try:
                saved = self.store.update(record)
            except PreconditionFailed:
                continue
            if target is not None:
                queue_phase_change(self.outbox, saved, target)
            return saved
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

    def claim(self, wave: str, *, stop_sources: bool = True) -> WaveClaim:
        """Choose the members to cut over and mark them as the wave's: "stop requested" (the AWS side reads it and
        stops the source), or, when an operator stopped them, stopped already. Idempotent: a rerun keeps claims."""
        ready: list[PlanMember] = []
        left_out: list[LeftOut] = []
        marker = claim_marker(wave)
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
        now = self.clock.now()
        for member in ready:
            record = self.store.get(member.migration_id)
            if record.cutover_plan is not None:
                continue  # claimed by an earlier run of this claim
            timeline = record.timeline.model_copy()
            timeline.stop_requested_at = timeline.stop_requested_at or now
            if not stop_sources:
                timeline.source_stopped_at = timeline.source_stopped_at or now
            why = f"cutover with wave {wave}: sources stopped by an operator"
            if stop_sources:
                why = f"cutover with wave {wave}: stop requested; fails over in a recovery plan once the source stopped"
            record = self._update(member.migration_id, cutover_plan=marker, timeline=timeline, reason=why)
            self._log(record, "ClaimedByWave", why, stop_requested=stop_sources)
        logger.info("wave %s: %d claimed, %d left out", wave, len(ready), len(left_out))
        return WaveClaim(wave=wave, members=ready, left_out=left_out)

    def collect_stopped(self, wave: str, members: list[PlanMember]) -> StopReport:
        """Which of ``members`` have reported their source stopped (earliest first); which may no longer be cut
        over (cancelled, failed, claimed away). One wave listing, not a read per member."""
        wanted = {m.migration_id: m for m in members}
        stopped: list[tuple[datetime, PlanMember]] = []
        left_out: list[LeftOut] = []
        for record in self._members(wave):
            member = wanted.get(record.migration_id)
            if member is None:
                continue
            if record.cutover_plan != claim_marker(wave) or record.phase not in READY_PHASES:
                why = f"no longer waiting for the wave's cutover ({record.phase.value}: {record.reason or 'no reason'})"
                left_out.append(LeftOut(migration_id=record.migration_id, phase=record.phase, reason=why))
                continue
            if record.timeline.source_stopped_at is not None:
                stopped.append((record.timeline.source_stopped_at, member))
        return StopReport(stopped=[m for _, m in sorted(stopped, key=lambda x: x[0])], left_out=left_out)

    def leave_out(self, wave: str, members: list[PlanMember], reason: str) -> list[str]:
        """Members the wave will not cut over: unclaimed, with the reason; they keep replicating and can be cut
        over later. The failover was never requested for them."""
        released: list[str] = []
        for member in members:
            record = self.store.get(member.migration_id)
            if record.cutover_plan == claim_marker(wave):
                record = self._update(member.migration_id, cutover_plan=None, reason=reason)
            self._log(record, "LeftOutOfWave", f"not cut over with wave {wave}: {reason}")
            released.append(member.migration_id)
        return released

    def assign_plan(self, wave: str, plan: RecoveryPlanSpec) -> RecoveryPlanSpec:
        """Members stopped: they are now the named plan's (idempotent)."""
        for member in plan.members:
            record = self.store.get(member.migration_id)
            if record.cutover_plan == plan.name:
                continue
            record = self._update(member.migration_id, cutover_plan=plan.name,
                                  reason=f"source stopped; failing over with recovery plan {plan.name}")  # fmt: skip
            self._log(record, "ClaimedByWave", f"cut over with wave {wave} in recovery plan {plan.name}")
        return plan

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


def record_source_stopped(store: MigrationStore, migration_id: str, at: datetime) -> MigrationRecord | None:
    """The AWS side reports the source stopped (FailoverRequested(source_stopped), its ``time``): the timeline's
    start of downtime, and for a wave member the signal that it may join a recovery plan. First report wins."""
    for _ in range(SAVE_ATTEMPTS):
        try:
            record = store.get(migration_id)
        except NotFound:
            return None
        if record.timeline.source_stopped_at is not None:
            return record
        record.timeline = record.timeline.model_copy(update={"source_stopped_at": at})
        try:
            return store.update(record)
        except PreconditionFailed:
            continue
    raise PreconditionFailed(f"{migration_id}: too many concurrent updates", code="Contention")
