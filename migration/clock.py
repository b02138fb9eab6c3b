"""Time, as the product reads it: the system clock, unless the deployment injects another.

The local stack runs days of replication in seconds on a virtual clock. It injects that clock by
naming a factory in a setting (``AWS2AZURE_CLOCK=module:callable``), so no product module imports
the local stack; a deployed app has no such setting and reads the system clock.
"""

from __future__ import annotations

import pkgutil
from datetime import UTC, datetime
from typing import Protocol, cast

CLOCK_SETTING = "AWS2AZURE_CLOCK"


class Clock(Protocol):
    def now(self) -> datetime: ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


def clock_from_factory(factory: str | None) -> Clock:
    """The clock named by ``factory`` (``module:callable``, called without arguments), or the system's."""
    if not factory:
        return SystemClock()
    try:
        make = pkgutil.resolve_name(factory)
    except (ImportError, AttributeError, ValueError) as exc:
        raise RuntimeError(f"setting {CLOCK_SETTING}={factory!r} names no importable callable: {exc}") from exc
    clock = make()
    if not callable(getattr(clock, "now", None)):
        raise RuntimeError(f"setting {CLOCK_SETTING}={factory!r} did not return a clock (no now())")
    return cast(Clock, clock)
