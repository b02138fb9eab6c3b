"""``aws2azure``: the operator's command line."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from devstack.launcher import DEFAULT_SERVICES, Stack, StackError

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
    service: Annotated[
        list[str] | None, typer.Option("--service", "-s", help="Start only these (repeatable).")
    ] = None,
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


def main() -> None:
    app()


if __name__ == "__main__":
    main()
