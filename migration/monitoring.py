"""How often to look at a replication: rarely early in a long one, more often near its end.

A naive fixed 5-minute poll costs about 860 ASR reads for a 3-day initial replication. This
policy estimates the finish from the progress rate seen so far and sleeps most of the way there,
bounded by a floor (never faster) and a ceiling (the operator still sees fresh status).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal


@dataclass(frozen=True, slots=True)
class PollPolicy:
    floor: timedelta = timedelta(minutes=5)
    ceiling: timedelta = timedelta(hours=6)
    first_look: timedelta = timedelta(minutes=30)
    # Sleep this share of the predicted remaining time: under 1 so we wake just before the end.
    approach: float = 0.9
    # Replication without progress for this long, while ASR reports it unhealthy, is a failure.
    stall_timeout: timedelta = timedelta(hours=12)

    def clamp(self, delay: timedelta) -> timedelta:
        return max(self.floor, min(self.ceiling, delay))


def next_replication_poll(
    policy: PollPolicy,
    *,
    now: datetime,
    started_at: datetime,
    progress_percent: int | None,
) -> timedelta:
    """The delay until the next look at an initial replication that is not finished yet."""
    elapsed = (now - started_at).total_seconds()
    if not progress_percent or elapsed <= 0:
        return policy.clamp(policy.first_look)
    if progress_percent >= 100:
        # Copying is done; ASR takes a little while to mark the item protected.
        return policy.floor
    rate_per_second = progress_percent / elapsed
    remaining = timedelta(seconds=(100 - progress_percent) / rate_per_second)
    return policy.clamp(remaining * policy.approach)


# While a failover job runs its source is already stopped: each minute between the job's end and our look at it is
# downtime. The job resource says when a job started and ended, not when a running one will end, so after a first
# look at the floor (no failover is over sooner) it is read every minute for the job's usual length (the
# simulator's failover takes ~12 min), then at the slow-job pace. A plan's job (one per 100 machines) is read every
# minute from the start.
DOWNTIME_JOB_POLL = timedelta(minutes=1)
DOWNTIME_SHORT_POLLS = 20


def job_poll_delay(policy: PollPolicy, *, checks_so_far: int, during_downtime: bool = False) -> timedelta:
    """ASR jobs take minutes; look at the floor interval, backing off gently for slow ones (every minute, for a
    while, when the job's end is the end of a downtime)."""
    if during_downtime and 0 < checks_so_far < DOWNTIME_SHORT_POLLS:
        return DOWNTIME_JOB_POLL
    return policy.clamp(policy.floor * (1 + checks_so_far // 3))


def is_stalled(policy: PollPolicy, *, now: datetime, no_progress_since: datetime | None) -> bool:
    return no_progress_since is not None and now - no_progress_since >= policy.stall_timeout


# --------------------------------------------------------------------------------------------------
# ASR job states
# --------------------------------------------------------------------------------------------------
# The SDK's JobProperties (azure-mgmt-recoveryservicessiterecovery 2.0.0, models/_models.py): "state: The status
# of the Job. It is one of these values - NotStarted, InProgress, Succeeded, Failed, Cancelled, Suspended or
# Other." and "stateDescription: ... For Succeeded state, description can be Completed, PartiallySucceeded,
# CompletedWithInformation or Skipped." Every state gets a verdict here, so none is polled until a timeout.

JobVerdict = Literal["running", "waiting_for_operator", "succeeded", "failed", "cancelled"]

# stateDescription values that mean the work is done (the SDK's list for Succeeded).
DONE_DESCRIPTIONS = frozenset({"completed", "completedwithinformation", "skipped", "partiallysucceeded"})
# ASR also reports transitional states while it acts on a request.
TRANSITIONAL_STATES = frozenset({"cancelling", "suspending", "resuming", "restarting"})


@dataclass(frozen=True, slots=True)
class JobClassification:
    verdict: JobVerdict
    # Worth telling an operator even when the job succeeded (PartiallySucceeded, CompletedWithInformation).
    note: str = ""

    @property
    def finished(self) -> bool:
        return self.verdict in ("succeeded", "failed", "cancelled")


def classify_job_state(state: str | None, state_description: str | None = None) -> JobClassification:
    """What an ASR job's state and stateDescription mean for the migration that waits on it."""
    raw = (state or "NotStarted").strip()
    lowered = raw.lower()
    description = (state_description or "").strip()
    described = description.lower()
    if lowered in ("notstarted", "inprogress") or lowered in TRANSITIONAL_STATES:
        return JobClassification("running")
    if lowered == "suspended":
        return JobClassification(
            "waiting_for_operator",
            "ASR suspended the job: it waits for an operator to resume it (replicationJobs resume)",
        )
    if lowered == "succeeded":
        if described in ("partiallysucceeded", "completedwithinformation", "skipped"):
            return JobClassification("succeeded", f"ASR completed the job with state description {description}")
        return JobClassification("succeeded")
    if lowered == "failed":
        return JobClassification("failed")
    if lowered in ("cancelled", "canceled"):
        return JobClassification("cancelled", f"ASR cancelled the job{f' ({description})' if description else ''}")
    if lowered == "other":
        # "Other" is decided by its description: a finished run, or a state the product cannot act on.
        if described in DONE_DESCRIPTIONS:
            return JobClassification("succeeded", f"ASR ended the job in state Other ({description})")
        if described in ("failed",):
            return JobClassification("failed", "ASR ended the job in state Other (Failed)")
        if described in ("cancelled", "canceled"):
            return JobClassification("cancelled", "ASR ended the job in state Other (Cancelled)")
        if described in ("suspended",):
            return JobClassification("waiting_for_operator", "ASR suspended the job (Other/Suspended)")
        return JobClassification(
            "failed", f"ASR ended the job in state Other ({description or 'no description'}); check it in the vault"
        )
    return JobClassification("failed", f"ASR reported an unknown job state {raw!r} ({description or 'no description'})")
