"""``aws2azure``: the operator's command line."""

from __future__ import annotations

import csv
import json
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import httpx
import typer
from rich.console import Console
from rich.table import Table

from aws2azure.api_client import ApiError, ApiTarget, MigrationApi
from devstack.launcher import DEFAULT_SERVICES, Stack, StackError

T = TypeVar("T")

app = typer.Typer(help="Move AWS EC2 instances to Azure with Azure Site Recovery.", no_args_is_help=True)
stack_app = typer.Typer(help="The local stack: Azurite, moto, the ASR simulator, the local host.")
app.add_typer(stack_app, name="stack")
console = Console(stderr=True)

StateDirOption = Annotated[
    Path | None, typer.Option("--state-dir", help="Where the stack keeps its data, logs and PIDs.")
]


@stack_app.command("up")
def stack_up(
    state_dir: StateDirOption = None,
    service: Annotated[list[str] | None, typer.Option("--service", "-s", help="Start only these (repeatable).")] = None,
) -> None:
    """Start the local stack and print its endpoints."""
    stack = Stack(state_dir)
    try:
        settings = stack.up(service or DEFAULT_SERVICES)
    except StackError as exc:
        console.print(f"[red]stack up failed:[/red] {exc}")
        raise typer.Exit(1) from exc
    table = Table("service", "endpoint")
    if settings.azurite:
        table.add_row("azurite tables", f"http://127.0.0.1:{settings.azurite.table_port}")
        table.add_row("azurite queues", f"http://127.0.0.1:{settings.azurite.queue_port}")
        table.add_row("azurite blobs", f"http://127.0.0.1:{settings.azurite.blob_port}")
    if settings.moto:
        table.add_row("moto (AWS)", settings.moto.url)
    if settings.asr:
        table.add_row("ASR simulator", settings.asr.base_url)
    if settings.host:
        table.add_row("Functions host", settings.host.base_url)
    Console().print(table)
    console.print(f"settings written to {stack.settings_path}")


@stack_app.command("down")
def stack_down(state_dir: StateDirOption = None) -> None:
    """Stop exactly the processes 'stack up' started."""
    stopped = Stack(state_dir).down()
    console.print(f"stopped: {', '.join(stopped) if stopped else 'nothing was running'}")


@stack_app.command("status")
def stack_status(state_dir: StateDirOption = None) -> None:
    """Show what is running and where."""
    typer.echo(json.dumps(Stack(state_dir).status(), indent=2, default=str))


UrlOption = Annotated[str | None, typer.Option("--url", help="Function App base URL (or AWS2AZURE_API_URL).")]
KeyOption = Annotated[str | None, typer.Option("--key", help="Function key (or AWS2AZURE_API_KEY).")]
JsonOption = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]
PHASE_STYLE = {"Migrated": "green", "Failed": "red", "NotReady": "red", "Cancelled": "dim",
               "AwaitingCutover": "yellow", "ReadyForCutover": "yellow"}  # fmt: skip


def _api(url: str | None, key: str | None) -> MigrationApi:
    try:
        return MigrationApi(ApiTarget.resolve(url, key))
    except ApiError as exc:
        console.print(f"[red]{exc.message}[/red]")
        raise typer.Exit(2) from exc


def _run(call: Callable[[], T]) -> T:
    try:
        return call()
    except ApiError as exc:
        console.print(f"[red]error {exc.status} {exc.code}:[/red] {exc.message}")
        raise typer.Exit(1) from exc
    except httpx.HTTPError as exc:
        console.print(f"[red]cannot reach the API:[/red] {exc}")
        raise typer.Exit(1) from exc


def migrations_table(items: list[dict[str, Any]]) -> Table:
    table = Table("migration", "wave", "phase", "progress", "health", "reason", "updated")
    for item in items:
        phase = item["phase"]
        progress = item.get("progress_percent")
        table.add_row(
            item["migration_id"], item.get("wave") or "-", f"[{PHASE_STYLE.get(phase, 'cyan')}]{phase}[/]",
            f"{progress}%" if progress is not None else "-", item.get("replication_health") or "-",
            (item.get("reason") or "")[:80], str(item.get("updated_at", ""))[:19],
        )  # fmt: skip
    return table


@app.command()
def status(
    migration_id: Annotated[str | None, typer.Argument(help="One migration (account-region-instance).")] = None,
    wave: Annotated[str | None, typer.Option("--wave")] = None,
    phase: Annotated[str | None, typer.Option("--phase")] = None,
    as_json: JsonOption = False,
    url: UrlOption = None,
    key: KeyOption = None,
) -> None:
    """Show one migration with its history, or a list filtered by wave and phase."""
    api = _api(url, key)
    if migration_id:
        detail = _run(lambda: api.get(migration_id))
        if as_json:
            typer.echo(json.dumps(detail, indent=2))
            return
        record = detail["migration"]
        Console().print(migrations_table([record]))
        events = Table("at", "kind", "phase", "message")
        for event in detail.get("events", []):
            events.add_row(str(event["at"])[:19], event["kind"], event["phase"], event["message"])
        Console().print(events)
        if detail.get("notifications"):
            sent = Table("#", "phase", "notification", "attempts", "finished", "last error", title="notifications")
            for note in detail["notifications"]:
                sent.add_row(str(note["sequence"]), note["phase"], note["status"], str(note["attempts"]),
                             str(note.get("finished_at") or "-")[:19], note.get("last_error") or "")  # fmt: skip
            Console().print(sent)
        return
    items = _run(lambda: list(api.iter_migrations(wave=wave, phase=phase)))
    if as_json:
        typer.echo(json.dumps(items, indent=2))
    else:
        Console().print(migrations_table(items))


@app.command()
def watch(
    wave: Annotated[str | None, typer.Option("--wave")] = None,
    interval: Annotated[float, typer.Option("--interval", help="Seconds between refreshes.")] = 3.0,
    url: UrlOption = None,
    key: KeyOption = None,
) -> None:
    """A live view of migrations until Ctrl-C."""
    from rich.live import Live

    api = _api(url, key)
    with Live(console=Console(), refresh_per_second=2) as live:
        try:
            while True:
                live.update(migrations_table(_run(lambda: list(api.iter_migrations(wave=wave)))))
                time.sleep(interval)
        except KeyboardInterrupt:
            return


def _act(action: str, migration_id: str, body: dict[str, Any], url: str | None, key: str | None) -> None:
    api = _api(url, key)
    result = _run(lambda: api.act(migration_id, action, body))
    typer.echo(json.dumps(result, indent=2))


ReasonOption = Annotated[str, typer.Option("--reason", help="Recorded in the audit log.")]


@app.command()
def approve(migration_id: str, reason: ReasonOption = "", url: UrlOption = None, key: KeyOption = None) -> None:
    """Approve the cutover of a migration in a wave that needs approval."""
    _act("approve", migration_id, {"reason": reason}, url, key)


@app.command()
def cutover(
    migration_id: Annotated[str | None, typer.Argument()] = None,
    wave: Annotated[
        str | None,
        typer.Option("--wave", help="Cut the whole wave over: the AWS side stops its sources, plans fail over."),
    ] = None,
    source_stopped: Annotated[
        bool,
        typer.Option("--source-stopped", help="Confirm the EC2 instance (or, with --wave, every source) is stopped."),
    ] = False,
    at: Annotated[
        str | None,
        typer.Option("--at", help="With --wave: the wave's cutover window, e.g. 2026-12-05T02:00:00Z (default: now)."),
    ] = None,
    reason: ReasonOption = "",
    url: UrlOption = None,
    key: KeyOption = None,
) -> None:
    """Cut over one migration now, or a whole wave together (now or at its window)."""
    if at and not wave:
        console.print("[red]--at schedules a wave's cutover: give --wave (one migration's window is its "
                      "aws2azure:cutover-at tag)[/red]")  # fmt: skip
        raise typer.Exit(2)
    if wave and not migration_id:
        api = _api(url, key)
        started = _run(lambda: api.cut_over_wave(wave, source_stopped=source_stopped, at=at))
        typer.echo(json.dumps(started, indent=2))
        return
    if not migration_id:
        console.print("[red]give a migration id or --wave[/red]")
        raise typer.Exit(2)
    _act("cutover", migration_id, {"source_stopped": source_stopped, "reason": reason}, url, key)


@app.command()
def cancel(migration_id: str, reason: ReasonOption = "", url: UrlOption = None, key: KeyOption = None) -> None:
    """Cancel a migration before its failover (never after: ASR must not cancel a migration failover)."""
    _act("cancel", migration_id, {"reason": reason}, url, key)


@app.command()
def retry(migration_id: str, reason: ReasonOption = "", url: UrlOption = None, key: KeyOption = None) -> None:
    """Retry a Failed migration from where ASR says it stands."""
    _act("retry", migration_id, {"reason": reason}, url, key)


@app.command()
def rollback(migration_id: str, reason: ReasonOption = "", url: UrlOption = None, key: KeyOption = None) -> None:
    """Roll a failover back before its commit: the Azure VM is deleted, the source started again in AWS (refused
    after the commit, and before any failover: cancel instead)."""
    _act("rollback", migration_id, {"reason": reason}, url, key)


@app.command()
def resume(migration_id: str, reason: ReasonOption = "", url: UrlOption = None, key: KeyOption = None) -> None:
    """Resume the ASR job a migration waits on, which ASR suspended for an operator."""
    _act("resume", migration_id, {"reason": reason}, url, key)


@app.command()
def export(
    wave: Annotated[str | None, typer.Option("--wave")] = None,
    output_format: Annotated[str, typer.Option("--format", help="csv or json")] = "csv",
    url: UrlOption = None,
    key: KeyOption = None,
) -> None:
    """The wave report: one line per migration."""
    if output_format not in ("csv", "json"):
        console.print("[red]--format must be csv or json[/red]")
        raise typer.Exit(2)
    api = _api(url, key)
    items = _run(lambda: list(api.iter_migrations(wave=wave)))
    if output_format == "json":
        typer.echo(json.dumps(items, indent=2))
        return
    columns = ["migration_id", "wave", "phase", "progress_percent", "replication_health", "rpo_seconds", "reason",
               "cutover_at", "updated_at"]  # fmt: skip
    writer = csv.DictWriter(sys.stdout, fieldnames=columns, extrasaction="ignore")
    writer.writeheader()
    # The window is part of the request the record keeps.
    writer.writerows({**item, "cutover_at": (item.get("request") or {}).get("cutover_at")} for item in items)


@app.command()
def demo(
    instances: Annotated[int, typer.Option("--instances", min=4, max=500, help="EC2 instances in the wave.")] = 20,
    faults: Annotated[str, typer.Option("--faults", help="none, flaky or hostile.")] = "none",
    as_json: Annotated[bool, typer.Option("--json", help="A machine-readable summary as the last line.")] = False,
    keep: Annotated[bool, typer.Option("--keep", help="Leave the stack running afterwards.")] = False,
    state_dir: StateDirOption = None,
    timeout: Annotated[float, typer.Option("--timeout", help="Give up after this many seconds.")] = 600.0,
) -> None:
    """Run a migration wave end to end on the local stack: tags -> Lambdas -> queue -> orchestrations -> ASR."""
    from devstack.demo.runner import DemoOptions, run_demo

    if faults not in ("none", "flaky", "hostile"):
        console.print("[red]--faults must be none, flaky or hostile[/red]")
        raise typer.Exit(2)
    # `timeout` and CI send SIGTERM: exit through the demo's cleanup, so the stack is stopped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    options = DemoOptions(instances=instances, faults=faults, keep=keep, json_summary=as_json,  # type: ignore[arg-type]
                          state_dir=state_dir, timeout_s=timeout, live=not as_json)  # fmt: skip
    try:
        result = run_demo(options, console)
    except StackError as exc:
        console.print(f"[red]the local stack did not start:[/red] {exc}")
        raise typer.Exit(1) from exc
    if as_json:
        typer.echo(json.dumps(result.summary))
    else:
        Console().print(json.dumps(result.summary, indent=2))
    if result.unexpected:
        raise typer.Exit(1)


try:
    from devstack.funchost.cli import host_command
except ImportError:  # the local host is an optional part of the local stack
    pass
else:
    app.command("host", help="Run a Python v2-model Function App locally (HTTP, queues, timers, Durable).")(
        host_command
    )


def main() -> None:
    app()


if __name__ == "__main__":
    main()
