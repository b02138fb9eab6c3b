"""The migration phases and the one table of allowed transitions."""

from __future__ import annotations

from enum import StrEnum

from migration.errors import InvalidTransition


class Phase(StrEnum):
    REQUESTED = "Requested"
    NOT_READY = "NotReady"
    INSTALLING_AGENT = "InstallingAgent"
    AWAITING_DISCOVERY = "AwaitingDiscovery"
    ENABLING_REPLICATION = "EnablingReplication"
    REPLICATING = "Replicating"
    READY_FOR_CUTOVER = "ReadyForCutover"
    TEST_FAILOVER = "TestFailover"
    AWAITING_CUTOVER = "AwaitingCutover"
    FAILING_OVER = "FailingOver"
    COMMITTING = "Committing"
    COMPLETING = "Completing"
    MIGRATED = "Migrated"
    FAILED = "Failed"
    CANCELLED = "Cancelled"


P = Phase

# Cancel is accepted only before failover starts: ASR must never cancel a migration failover.
_CANCELLABLE = frozenset(
    {
        P.REQUESTED,
        P.NOT_READY,
        P.INSTALLING_AGENT,
        P.AWAITING_DISCOVERY,
        P.ENABLING_REPLICATION,
        P.REPLICATING,
        P.READY_FOR_CUTOVER,
        P.TEST_FAILOVER,
        P.AWAITING_CUTOVER,
    }
)

ALLOWED_TRANSITIONS: dict[Phase, frozenset[Phase]] = {
    P.REQUESTED: frozenset(
        {P.NOT_READY, P.INSTALLING_AGENT, P.AWAITING_DISCOVERY, P.ENABLING_REPLICATION, P.FAILED, P.CANCELLED}
    ),
    # The Mobility service is installed through SSM, then the appliance has to discover the machine.
    P.INSTALLING_AGENT: frozenset({P.AWAITING_DISCOVERY, P.FAILED, P.CANCELLED, P.NOT_READY}),
    P.AWAITING_DISCOVERY: frozenset({P.ENABLING_REPLICATION, P.FAILED, P.CANCELLED}),
    # A NotReady instance is re-checked when its owner fixes it and tags it again.
    P.NOT_READY: frozenset({P.REQUESTED, P.CANCELLED}),
    P.ENABLING_REPLICATION: frozenset({P.REPLICATING, P.FAILED, P.CANCELLED}),
    P.REPLICATING: frozenset({P.READY_FOR_CUTOVER, P.FAILED, P.CANCELLED}),
    P.READY_FOR_CUTOVER: frozenset({P.TEST_FAILOVER, P.AWAITING_CUTOVER, P.FAILED, P.CANCELLED}),
    P.TEST_FAILOVER: frozenset({P.AWAITING_CUTOVER, P.FAILED, P.CANCELLED}),
    # Replication can degrade while the window is awaited; the monitor then goes back to Replicating.
    P.AWAITING_CUTOVER: frozenset({P.FAILING_OVER, P.REPLICATING, P.FAILED, P.CANCELLED}),
    P.FAILING_OVER: frozenset({P.COMMITTING, P.FAILED}),
    P.COMMITTING: frozenset({P.COMPLETING, P.FAILED}),
    P.COMPLETING: frozenset({P.MIGRATED, P.FAILED}),
    P.MIGRATED: frozenset(),
    # A Failed migration is retried from where ASR says it stands (a replicated item resumes
    # monitoring, a failed-over one goes on to commit), so nothing already done is done twice.
    P.FAILED: frozenset(
        {
            P.REQUESTED,
            P.ENABLING_REPLICATION,
            P.REPLICATING,
            P.READY_FOR_CUTOVER,
            P.AWAITING_CUTOVER,
            P.FAILING_OVER,
            P.COMMITTING,
            P.COMPLETING,
        }
    ),
    # A cancelled migration's replication was disabled: a new request starts from the beginning.
    P.CANCELLED: frozenset({P.REQUESTED}),
}

TERMINAL_PHASES = frozenset({P.MIGRATED, P.FAILED, P.CANCELLED, P.NOT_READY})
FAILOVER_STARTED_PHASES = frozenset({P.FAILING_OVER, P.COMMITTING, P.COMPLETING, P.MIGRATED})


def can_transition(current: Phase, requested: Phase) -> bool:
    return requested in ALLOWED_TRANSITIONS[current]


def ensure_transition(current: Phase | str, requested: Phase | str) -> Phase:
    """Return ``requested`` as a Phase if the move from ``current`` is allowed, else raise.

    Re-entering the same phase is allowed: progress updates within a phase are not transitions.
    """
    src, dst = Phase(current), Phase(requested)
    if src is dst or can_transition(src, dst):
        return dst
    raise InvalidTransition(src.value, dst.value)


def is_cancellable(phase: Phase | str) -> bool:
    return Phase(phase) in _CANCELLABLE
