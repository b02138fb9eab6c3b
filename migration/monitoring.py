"""How often to look at a replication: rarely early in a long one, more often near its end.

A naive fixed 5-minute poll costs about 860 ASR reads for a 3-day initial replication. This
policy estimates the finish from the progress rate seen so far and sleeps most of the way there,
bounded by a floor (never faster) and a ceiling (the operator still sees fresh status).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta


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


def job_poll_delay(policy: PollPolicy, *, checks_so_far: int) -> timedelta:
    """ASR jobs take minutes; look at the floor interval, backing off gently for slow ones."""
    return policy.clamp(policy.floor * (1 + checks_so_far // 3))


def is_stalled(policy: PollPolicy, *, now: datetime, no_progress_since: datetime | None) -> bool:
    return no_progress_since is not None and now - no_progress_since >= policy.stall_timeout
