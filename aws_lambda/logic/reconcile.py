"""Reconcile: tag events are best-effort, so repair what a lost one leaves.

- An instance with a migrate tag and no status tag: intake never saw it.
- An instance with a migration in flight whose migrate tag is gone (or false) while the Azure record is
  still cancellable: the removal was lost, so the cancel never reached Azure.
- An instance whose ``cutover-at`` tag differs from both the Azure record and its cutover schedule: the
  change was lost, so the schedule still fires at the old time.

Each is re-sent to intake as the Tag Change event it would have received (intake decides, as for a live
event). The event id is derived from the instance and its request tags, so two runs that find the same
instance before intake has acted are one request to intake's idempotency.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from aws_lambda.logic.intake import current_phase
from aws_lambda.models.inventory import TaggedInstance
from aws_lambda.models.outcomes import ReconcileOutcome
from aws_lambda.models.tag_change import tag_change_event
from aws_lambda.observability import count, logger
from aws_lambda.ports import Clock, CutoverScheduler, InstanceInventory, IntakeInvoker, StatusApi
from migration.errors import MigrationError, NotFound
from migration.lifecycle import FAILOVER_STARTED_PHASES, TERMINAL_PHASES, Phase, is_cancellable
from migration.tags import CUTOVER_AT, MIGRATE, REQUEST_TAGS, STATUS, parse_bool, parse_utc_time

_RECONCILE_NAMESPACE = uuid.UUID("0d6f3c1e-9a57-4b8e-8a1f-3e2b7c9d4f10")


@dataclass(frozen=True)
class ReconcileDependencies:
    inventory: InstanceInventory
    invoker: IntakeInvoker
    clock: Clock
    max_per_run: int
    status_api: StatusApi | None = None
    schedules: CutoverScheduler | None = None


def _wants(tags: dict[str, str]) -> bool | None:
    try:
        return parse_bool(MIGRATE, tags.get(MIGRATE, "false"))
    except ValueError:
        return None


def _missed(tagged: TaggedInstance) -> bool:
    if STATUS in tagged.tags or MIGRATE not in tagged.tags:
        return False
    # A garbled value is re-run too: intake tags it NotReady with the reason, which the owner needs to see.
    return _wants(tagged.tags) is not False


def _in_flight(tagged: TaggedInstance) -> Phase | None:
    phase = current_phase(tagged.tags)
    if phase is None or phase in TERMINAL_PHASES or phase in FAILOVER_STARTED_PHASES:
        return None
    return phase


def reconcile_event_id(tagged: TaggedInstance, kind: str = "") -> str:
    request = ";".join(f"{k}={tagged.tags[k]}" for k in sorted(REQUEST_TAGS) if k in tagged.tags)
    return str(uuid.uuid5(_RECONCILE_NAMESPACE, f"{tagged.instance.migration_id}:{kind}{request}"))


def _lost_change(tagged: TaggedInstance, deps: ReconcileDependencies) -> str | None:
    """The request tag whose change intake never acted on, judged against the Azure record."""
    if deps.status_api is None or _in_flight(tagged) is None:
        return None
    try:
        record = deps.status_api.get_migration(tagged.instance.migration_id)
    except NotFound:
        return None  # Azure has not picked the request up yet
    if _wants(tagged.tags) is False:
        return MIGRATE if is_cancellable(record.phase) and record.phase is not Phase.NOT_READY else None
    try:
        wanted = parse_utc_time(CUTOVER_AT, tagged.tags[CUTOVER_AT]) if tagged.tags.get(CUTOVER_AT) else None
    except ValueError:
        return None
    if wanted == record.cutover_at or deps.schedules is None:
        return None
    # Azure keeps the window it was first told; the schedule is what fires the cutover, so judge by it.
    if deps.schedules.scheduled_at(tagged.instance) != wanted:
        return CUTOVER_AT
    return None


def reconcile(deps: ReconcileDependencies) -> ReconcileOutcome:
    by_id: dict[str, TaggedInstance] = {t.instance.instance_id: t for t in deps.inventory.list_tagged(MIGRATE)}
    for tagged in deps.inventory.list_tagged(STATUS):
        by_id.setdefault(tagged.instance.instance_id, tagged)
    now = deps.clock.now()
    work: list[tuple[TaggedInstance, str]] = []
    skipped: dict[str, str] = {}
    for tagged in by_id.values():
        if _missed(tagged):
            work.append((tagged, MIGRATE + "+"))
            continue
        try:
            changed = _lost_change(tagged, deps)
        except MigrationError as exc:
            skipped[tagged.instance.instance_id] = str(exc)
            continue
        if changed is not None:
            work.append((tagged, changed))
    rerun: list[str] = []
    repaired: dict[str, str] = {}
    for tagged, changed in work[: deps.max_per_run]:
        key = changed.rstrip("+")
        event = tag_change_event(
            event_id=reconcile_event_id(tagged, "" if changed.endswith("+") else key + ":"),
            instance=tagged.instance,
            tags=tagged.tags,
            changed_tag_keys=[key],
            version=0,
            time=now.strftime("%Y-%m-%dT%H:%M:%SZ"),
        )
        try:
            deps.invoker.invoke(event)
        except MigrationError as exc:
            skipped[tagged.instance.instance_id] = str(exc)
            continue
        if changed.endswith("+"):
            rerun.append(tagged.instance.instance_id)
        else:
            repaired[tagged.instance.instance_id] = "cancel" if key == MIGRATE else "cutover-at"
    count("ReconcileReruns", len(rerun) + len(repaired))
    outcome = ReconcileOutcome(
        rerun=rerun, repaired=repaired, skipped=skipped, left_for_next_run=max(0, len(work) - deps.max_per_run)
    )
    logger.info("reconcile done", extra=outcome.model_dump())
    return outcome
