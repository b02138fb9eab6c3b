"""The CLI's wave schedule: ``--at`` belongs to a wave; refused before any request is made."""

from __future__ import annotations

from typer.testing import CliRunner

from aws2azure.cli import app


def test_at_without_a_wave_is_refused_with_where_one_migrations_window_lives() -> None:
    result = CliRunner().invoke(app, ["cutover", "m-1", "--at", "2030-01-01T02:00:00Z", "--url", "http://127.0.0.1:9"])
    assert result.exit_code == 2
    said = " ".join(result.output.split())  # rich wraps long lines to the terminal's width
    assert "--at schedules a wave's cutover" in said
    assert "aws2azure:cutover-at" in said
