"""Reconcile: tag events are best-effort, so find instances tagged for migration that intake never saw.

An instance with a migrate tag and no status tag is re-sent to intake as the Tag Change event it
would have received. The event id is derived from the instance and its request tags, so two runs that
find the same instance before intake has tagged it are one request to intake's idempotency.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from aws_lambda.models.inventory import TaggedInstance
from aws_lambda.models.outcomes import ReconcileOutcome
from aws_lambda.models.tag_change import tag_change_event
from aws_lambda.observability import count, logger
from aws_lambda.ports import Clock, InstanceInventory, IntakeInvoker
from migration.errors import MigrationError
from migration.tags import MIGRATE, REQUEST_TAGS, STATUS, parse_bool

_RECONCILE_NAMESPACE = uuid.UUID("0d6f3c1e-9a57-4b8e-8a1f-3e2b7c9d4f10")


@dataclass(frozen=True)
class ReconcileDependencies:
    inventory: InstanceInventory
    invoker: IntakeInvoker
    clock: Clock
    max_per_run: int


def _missed(tagged: TaggedInstance) -> bool:
    if STATUS in tagged.tags:
        return False
    try:
        return parse_bool(MIGRATE, tagged.tags[MIGRATE])
    except ValueError:
        return True  # intake will tag it NotReady with the reason, which is what the owner needs to see


def reconcile_event_id(tagged: TaggedInstance) -> str:
    request = ";".join(f"{k}={tagged.tags[k]}" for k in sorted(REQUEST_TAGS) if k in tagged.tags)
    return str(uuid.uuid5(_RECONCILE_NAMESPACE, f"{tagged.instance.migration_id}:{request}"))


def reconcile(deps: ReconcileDependencies) -> ReconcileOutcome:
    missed = [t for t in deps.inventory.list_tagged(MIGRATE) if _missed(t)]
    now = deps.clock.now()
    rerun: list[str] = []
    skipped: dict[str, str] = {}
    for tagged in missed[: deps.max_per_run]:
        event = tag_change_event(
            event_id=reconcile_event_id(tagged),
            instance=tagged.instance,
            tags=tagged.tags,
            changed_tag_keys=[MIGRATE],
            version=0,
            time=now.strftime("%Y-%m-%dT%H:%M:%SZ"),
        )
        try:
            deps.invoker.invoke(event)
        except MigrationError as exc:
            skipped[tagged.instance.instance_id] = str(exc)
            continue
        rerun.append(tagged.instance.instance_id)
    count("ReconcileReruns", len(rerun))
    outcome = ReconcileOutcome(rerun=rerun, skipped=skipped, left_for_next_run=max(0, len(missed) - deps.max_per_run))
    logger.info("reconcile done", extra=outcome.model_dump())
    return outcome
