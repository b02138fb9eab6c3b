"""The pure listing logic: filters, signed continuation tokens, wave summaries."""

from __future__ import annotations

from datetime import timedelta

import pytest

from migration.errors import InvalidInput
from migration.lifecycle import Phase
from migration.queries import (
    ListPosition,
    check_page_size,
    check_phase,
    check_wave,
    decode_position,
    encode_position,
    migration_progress,
    summarize_wave,
)
from tests.integration.store.records import T0, make_record

KEY = b"0123456789abcdef0123456789abcdef"


def test_a_token_round_trips_for_the_same_filters() -> None:
    position = ListPosition(wave="w1", phase=Phase.REPLICATING, partition="wave~w1",
                            next_partition_key="d2F2ZX53MQ==", next_row_key="MTIz")  # fmt: skip
    token = encode_position(position, key=KEY)
    assert decode_position(token, key=KEY, wave="w1", phase=Phase.REPLICATING) == position


@pytest.mark.parametrize(("wave", "phase"), [("w2", Phase.REPLICATING), ("w1", None), (None, Phase.REPLICATING)])
def test_a_token_is_refused_for_other_filters(wave: str | None, phase: Phase | None) -> None:
    token = encode_position(ListPosition(wave="w1", phase=Phase.REPLICATING, partition="wave~w1"), key=KEY)
    with pytest.raises(InvalidInput):
        decode_position(token, key=KEY, wave=wave, phase=phase)


def test_a_tampered_token_is_refused() -> None:
    token = encode_position(ListPosition(partition="nowave~"), key=KEY)
    body, signature = token.split(".")
    tampered = encode_position(ListPosition(partition="id~"), key=b"other" * 8).split(".")[0]
    for bad in (f"{tampered}.{signature}", f"{body}.{signature[:-1]}A", f"{body}x.{signature}", body):
        with pytest.raises(InvalidInput):
            decode_position(bad, key=KEY, wave=None, phase=None)
    with pytest.raises(InvalidInput):
        decode_position(token, key=b"another key", wave=None, phase=None)


def test_filters_are_checked() -> None:
    assert check_wave("wave-1.a_b") == "wave-1.a_b"
    assert check_phase("Replicating") is Phase.REPLICATING
    assert check_page_size(1000) == 1000
    for bad_wave in ("", "a b", "w'", "-x", "x" * 65, "a/b"):
        with pytest.raises(InvalidInput):
            check_wave(bad_wave)
    with pytest.raises(InvalidInput) as caught:
        check_phase("replicating")
    assert "Replicating" in str(caught.value)  # says what would be valid


def test_progress_follows_the_path_and_replication_percent() -> None:
    assert migration_progress(make_record(1, phase=Phase.REQUESTED)) == 0
    assert migration_progress(make_record(1, phase=Phase.REPLICATING, progress_percent=50)) == 45
    assert migration_progress(make_record(1, phase=Phase.REPLICATING)) == 10
    assert migration_progress(make_record(1, phase=Phase.MIGRATED)) == 100


def test_a_wave_summary_counts_phases_and_leaves_cancelled_out_of_progress() -> None:
    records = [
        make_record(1, wave="w", phase=Phase.MIGRATED),
        make_record(2, wave="w", phase=Phase.MIGRATED, updated_at=T0 + timedelta(hours=5)),
        make_record(3, wave="w", phase=Phase.FAILED),
        make_record(4, wave="w", phase=Phase.CANCELLED),
    ]
    summary = summarize_wave("w", records)
    assert summary.total == 4
    assert summary.by_phase == {"Migrated": 2, "Failed": 1, "Cancelled": 1}
    assert summary.progress_percent == pytest.approx(66.7)
    assert summary.updated_at == T0 + timedelta(hours=5)
    assert summarize_wave("empty", []).progress_percent == 0.0
