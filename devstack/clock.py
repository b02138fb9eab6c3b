"""A virtual clock shared between processes through one small file.

The ASR simulator reads it to move replication forward; the local Functions host reads it for
``current_utc_datetime`` and, in virtual mode, jumps it to the next due timer when nothing else
is runnable. So three days of initial replication pass in seconds, deterministically.
"""

from __future__ import annotations

import os
import threading
from datetime import UTC, datetime
from pathlib import Path

from migration.clock import SystemClock

__all__ = ["FileClock", "SystemClock", "clock_environment", "clock_from_environment"]


class FileClock:
    """Virtual time stored as epoch seconds in a file; only ``advance_to`` moves it, never backwards."""

    def __init__(self, path: Path | str, *, start: datetime | None = None) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        if not self.path.exists():
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._write((start or datetime.now(UTC)).timestamp())

    def _write(self, epoch: float) -> None:
        tmp = self.path.with_name(f"{self.path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        tmp.write_text(repr(epoch))
        tmp.replace(self.path)

    def _read(self) -> float:
        # No caching by mtime: its granularity is coarser than the rate at which timers advance it.
        return float(self.path.read_text())

    def now(self) -> datetime:
        return datetime.fromtimestamp(self._read(), UTC)

    def advance_to(self, when: datetime) -> datetime:
        with self._lock:
            current = self._read()
            target = max(current, when.timestamp())
            if target != current:
                self._write(target)
            return datetime.fromtimestamp(target, UTC)

    def advance_by(self, seconds: float) -> datetime:
        return self.advance_to(datetime.fromtimestamp(self._read() + seconds, UTC))


CLOCK_FILE_SETTING = "AWS2AZURE_CLOCK_FILE"
# What the local stack puts in the product's AWS2AZURE_CLOCK setting (see migration/clock.py).
CLOCK_FACTORY = "devstack.clock:clock_from_environment"


def clock_from_environment() -> FileClock:
    """The stack's shared virtual clock, at the file the local stack names in the environment."""
    path = os.environ.get(CLOCK_FILE_SETTING)
    if not path:
        raise RuntimeError(f"{CLOCK_FACTORY} needs {CLOCK_FILE_SETTING}, the virtual clock file")
    return FileClock(path)


def clock_environment(clock_file: str | Path) -> dict[str, str]:
    """The settings that make a product process read the virtual clock at ``clock_file``."""
    return {"AWS2AZURE_CLOCK": CLOCK_FACTORY, CLOCK_FILE_SETTING: str(clock_file)}
