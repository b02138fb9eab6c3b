"""Initial replication and RPO as pure functions of the virtual clock.

Progress is a straight line from an anchor (time, bytes): ``bytes(t) = anchor_bytes + rate * (t - anchor)``,
frozen while stalled. A fault change re-anchors at the current time, so the answer for any instant is
exact without a background thread.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

GIB = 1024**3
MIB = 1024**2
# InMageRcm compresses before upload; processed bytes are what was read, transferred what crossed the wire.
COMPRESSION_RATIO = 0.62
# Crash-consistent points every 5 minutes, as the InMageRcm policy the simulator creates says.
CRASH_CONSISTENT_MINUTES = 5
BASE_RPO_SECONDS = 45.0
RPO_SECONDS_PER_GIB_CHURN_PER_DAY = 4.0
RPO_RECALCULATED_EVERY_SECONDS = 60


def effective_rate_bytes_per_s(upload_mb_per_s: float, churn_mb_per_day: float) -> float:
    """What initial replication gains per second: the upload rate less the new writes it must also ship."""
    return max(0.0, upload_mb_per_s * MIB - churn_mb_per_day * MIB / 86_400)


@dataclass
class ReplicationProgress:
    total_bytes: int
    rate_bytes_per_s: float
    churn_mb_per_day: float
    started_at: datetime
    anchor_at: datetime
    anchor_bytes: float = 0.0
    stalled_since: datetime | None = None

    @classmethod
    def start(
        cls, *, at: datetime, total_bytes: int, rate: float, churn_mb_per_day: float, stalled: bool
    ) -> ReplicationProgress:
        return cls(
            total_bytes=total_bytes,
            rate_bytes_per_s=rate,
            churn_mb_per_day=churn_mb_per_day,
            started_at=at,
            anchor_at=at,
            stalled_since=at if stalled else None,
        )

    def bytes_at(self, now: datetime) -> float:
        if self.stalled_since is not None or now <= self.anchor_at:
            return min(float(self.total_bytes), self.anchor_bytes)
        gained = self.rate_bytes_per_s * (now - self.anchor_at).total_seconds()
        return min(float(self.total_bytes), self.anchor_bytes + gained)

    def completed_at(self) -> datetime | None:
        """When initial replication finishes(ed); None while it cannot (stalled or no net progress)."""
        if self.anchor_bytes >= self.total_bytes:
            return self.anchor_at
        if self.stalled_since is not None or self.rate_bytes_per_s <= 0:
            return None
        remaining = self.total_bytes - self.anchor_bytes
        return self.anchor_at + timedelta(seconds=remaining / self.rate_bytes_per_s)

    def is_complete(self, now: datetime) -> bool:
        done = self.completed_at()
        return done is not None and done <= now

    def percent(self, now: datetime) -> int:
        if self.total_bytes <= 0:
            return 100
        if self.is_complete(now):
            return 100
        # Never report 100 before the completion instant (integer rounding would).
        return min(99, int(100 * self.bytes_at(now) / self.total_bytes))

    def set_stalled(self, now: datetime, stalled: bool) -> None:
        """Re-anchor at ``now`` and freeze or resume progress from there."""
        at = max(now, self.anchor_at)
        self.anchor_bytes = self.bytes_at(at)
        self.anchor_at = at
        if stalled and self.stalled_since is None:
            self.stalled_since = at
        elif not stalled:
            self.stalled_since = None

    def lag_seconds(self) -> float:
        return BASE_RPO_SECONDS + RPO_SECONDS_PER_GIB_CHURN_PER_DAY * self.churn_mb_per_day / 1024

    def rpo(self, now: datetime) -> tuple[datetime, datetime, int] | None:
        """(last recovery point received, RPO calculated at, RPO seconds), once protected."""
        done = self.completed_at()
        if done is None or done > now:
            return None
        calculated = _floor(now, RPO_RECALCULATED_EVERY_SECONDS, since=done)
        data_until = calculated - timedelta(seconds=self.lag_seconds())
        if self.stalled_since is not None:
            data_until = min(data_until, max(self.stalled_since, done))
        point = max(done, _floor(data_until, CRASH_CONSISTENT_MINUTES * 60, since=done))
        if self.stalled_since is not None and calculated > self.stalled_since:
            rpo = (calculated - point).total_seconds()
        else:
            rpo = self.lag_seconds()
        return point, calculated, int(rpo)


def _floor(moment: datetime, step_seconds: int, *, since: datetime) -> datetime:
    """The latest ``since + k * step`` not after ``moment`` (``since`` itself if ``moment`` is earlier)."""
    elapsed = (moment - since).total_seconds()
    if elapsed <= 0:
        return since
    return since + timedelta(seconds=step_seconds * int(elapsed // step_seconds))
