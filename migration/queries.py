"""Pure logic behind listing migrations: filter validation, continuation tokens, wave summaries.

No SDK imports: the Table Storage adapter and the HTTP API both use these, and they are unit-tested alone.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from collections.abc import Iterable
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from migration.errors import InvalidInput
from migration.lifecycle import Phase
from migration.records import MigrationRecord, WaveSummary
from migration.tags import WAVE_PATTERN

MAX_PAGE_SIZE = 1000  # Table Storage returns at most 1,000 entities per request
DEFAULT_PAGE_SIZE = 100
# Long enough for any real position (two keys of at most 1 KiB each), short enough to refuse junk early.
MAX_TOKEN_CHARS = 4096
_TOKEN_VERSION = 1
# A store position is opaque to us, but it ends up in HTTP headers: printable ASCII only.
_POSITION_PATTERN = r"^[\x20-\x7e]{0,1024}$"


def check_wave(wave: str) -> str:
    """A wave name as the tags allow it, or InvalidInput (it becomes part of a storage key)."""
    if not WAVE_PATTERN.fullmatch(wave):
        raise InvalidInput(
            f"wave {wave!r} is not a valid wave name (letters, digits, '.', '_', '-'; up to 64 characters)",
            problems=[f"wave: {wave!r} is not a valid wave name"],
        )
    return wave


def check_phase(phase: str) -> Phase:
    try:
        return Phase(phase)
    except ValueError:
        known = ", ".join(p.value for p in Phase)
        raise InvalidInput(
            f"phase {phase!r} is not a migration phase; use one of {known}",
            problems=[f"phase: {phase!r} is not one of {known}"],
        ) from None


def check_page_size(page_size: int) -> int:
    if not 1 <= page_size <= MAX_PAGE_SIZE:
        raise InvalidInput(
            f"page size {page_size} is out of range (1..{MAX_PAGE_SIZE})",
            problems=[f"page_size: must be between 1 and {MAX_PAGE_SIZE}"],
        )
    return page_size


class ListPosition(BaseModel):
    """Where a listing stopped: the partition it was reading and the store's own position inside it.

    ``wave`` and ``phase`` repeat the filters of the listing that issued it, so a token cannot be
    replayed against a different query (a forged or mismatched token is refused, never obeyed).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    v: int = _TOKEN_VERSION
    wave: str | None = None
    phase: Phase | None = None
    partition: Annotated[str, Field(pattern=_POSITION_PATTERN, min_length=1)]
    next_partition_key: Annotated[str, Field(pattern=_POSITION_PATTERN)] | None = None
    next_row_key: Annotated[str, Field(pattern=_POSITION_PATTERN)] | None = None


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _signature(key: bytes, body: str) -> str:
    return _b64(hmac.new(key, body.encode(), hashlib.sha256).digest()[:18])


def encode_position(position: ListPosition, *, key: bytes) -> str:
    """``<base64url JSON>.<HMAC-SHA256>``: readable by nobody who matters, forgeable by nobody."""
    body = _b64(position.model_dump_json(exclude_none=True).encode())
    return f"{body}.{_signature(key, body)}"


def decode_position(token: str, *, key: bytes, wave: str | None, phase: Phase | None) -> ListPosition:
    """Decode a continuation token this store signed for the same filters, or raise InvalidInput."""
    bad = InvalidInput(
        "continuation token is not valid for this listing; pass back the token a previous page returned, "
        "with the same wave and phase filters",
        problems=["continuation: not a token this API issued for these filters"],
    )
    if not token or len(token) > MAX_TOKEN_CHARS or token.count(".") != 1:
        raise bad
    body, signature = token.split(".")
    if not hmac.compare_digest(signature.encode(), _signature(key, body).encode()):
        raise bad
    try:
        position = ListPosition.model_validate(json.loads(_unb64(body)))
    except (binascii.Error, ValueError, ValidationError, UnicodeDecodeError):
        raise bad from None
    if position.v != _TOKEN_VERSION or position.wave != wave or position.phase != phase:
        raise bad
    return position


# How far along one migration is, as a share of the whole path. Replicating spans most of it because
# initial replication takes most of the time (days); the steps after it take minutes.
_PHASE_PROGRESS: dict[Phase, float] = {
    Phase.REQUESTED: 0.0,
    Phase.NOT_READY: 0.0,
    Phase.ENABLING_REPLICATION: 5.0,
    Phase.REPLICATING: 10.0,  # plus up to 70 from the replication percent
    Phase.READY_FOR_CUTOVER: 80.0,
    Phase.TEST_FAILOVER: 82.0,
    Phase.AWAITING_CUTOVER: 85.0,
    Phase.FAILING_OVER: 90.0,
    Phase.VALIDATING: 93.0,
    # Rolled back before commit: back to the start, someone retries it (docs/ROLLBACK.md).
    Phase.ROLLING_BACK: 0.0,
    Phase.ROLLED_BACK: 0.0,
    Phase.COMMITTING: 95.0,
    Phase.COMPLETING: 98.0,
    Phase.MIGRATED: 100.0,
    Phase.FAILED: 0.0,
    Phase.CANCELLED: 0.0,
}
_REPLICATION_SPAN = 70.0


def migration_progress(record: MigrationRecord) -> float:
    """0..100 along the whole migration path (not the same as ASR's replication percent)."""
    base = _PHASE_PROGRESS[record.phase]
    if record.phase is Phase.REPLICATING and record.progress_percent is not None:
        return base + _REPLICATION_SPAN * record.progress_percent / 100
    return base


def summarize_wave(wave: str, records: Iterable[MigrationRecord]) -> WaveSummary:
    """Counts per phase and the wave's progress.

    Progress is the mean of its members' progress; Cancelled members have left the wave and are not
    counted, Failed and NotReady ones count as 0 because someone has to act on them.
    """
    by_phase: dict[str, int] = {}
    total = 0
    progress_sum = 0.0
    counted = 0
    updated_at = None
    for record in records:
        total += 1
        by_phase[record.phase.value] = by_phase.get(record.phase.value, 0) + 1
        if record.phase is not Phase.CANCELLED:
            counted += 1
            progress_sum += migration_progress(record)
        if updated_at is None or record.updated_at > updated_at:
            updated_at = record.updated_at
    progress = round(progress_sum / counted, 1) if counted else 0.0
    return WaveSummary(wave=wave, total=total, by_phase=by_phase, progress_percent=progress, updated_at=updated_at)
