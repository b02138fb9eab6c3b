"""``aws2azure host --app DIR``: run any Python v2-model function app folder locally.

Reads ``local.settings.json`` ("Values" become app settings, as with Core Tools; variables
already set in the environment win), prints the URLs it serves and the keys, and runs until
Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import threading
from pathlib import Path
from typing import Annotated

import typer

from devstack.settings import AZURITE_ACCOUNT, AZURITE_KEY

DEVELOPMENT_STORAGE = (
    f"DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT};AccountKey={AZURITE_KEY};"
    f"BlobEndpoint=http://127.0.0.1:10000/{AZURITE_ACCOUNT};QueueEndpoint=http://127.0.0.1:10001/{AZURITE_ACCOUNT};"
    f"TableEndpoint=http://127.0.0.1:10002/{AZURITE_ACCOUNT};"
)


def local_settings(app_dir: Path) -> dict[str, str]:
    path = app_dir / "local.settings.json"
    if not path.exists():
        return {}
    values = json.loads(path.read_text()).get("Values") or {}
    return {str(k): str(v) for k, v in values.items()}


def resolve_storage(value: str | None) -> str:
    if not value:
        raise typer.BadParameter(
            "no storage account: pass --storage or set AzureWebJobsStorage (in the environment or local.settings.json)"
        )
    if value.strip().rstrip(";").lower() == "usedevelopmentstorage=true":
        return DEVELOPMENT_STORAGE
    return value


def configure_logging(level: str) -> None:
    logging.basicConfig(level=level.upper(), format="[%(asctime)s] %(name)s: %(message)s", stream=sys.stderr)
    for noisy in ("azure", "uvicorn", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def host_command(
    app: Annotated[
        Path, typer.Option("--app", help="Folder holding function_app.py (and host.json, local.settings.json)")
    ],
    port: Annotated[int, typer.Option(help="Port on 127.0.0.1; 0 picks a free one")] = 7071,
    state_dir: Annotated[
        Path | None, typer.Option("--state-dir", help="Where host keys are kept (default: <app>/.funchost)")
    ] = None,
    clock: Annotated[
        str, typer.Option(help="'real', 'virtual' (clock file in the state dir) or 'virtual:<clock file>'")
    ] = "real",
    storage: Annotated[
        str | None, typer.Option(help="Storage connection string (default: AzureWebJobsStorage)")
    ] = None,
    idle_grace: Annotated[
        float,
        typer.Option(
            "--idle-grace", envvar="AWS2AZURE_HOST_IDLE_GRACE", help="Virtual clock: seconds of quiet before time jumps"
        ),
    ] = 0.2,
    queue_lease: Annotated[
        float,
        typer.Option(
            "--queue-lease",
            envvar="AWS2AZURE_HOST_QUEUE_LEASE",
            help="Seconds a queue message is leased, renewed while its function runs; after a crash it is "
            "delivered again once its lease runs out (Azure's host: 600)",
        ),
    ] = 600.0,
    log_level: Annotated[str, typer.Option("--log-level")] = "info",
) -> None:
    """Serve a Python v2-model function app: HTTP, queue and timer triggers and Durable Functions."""
    from devstack.clock import FileClock, SystemClock
    from devstack.funchost.appmodel import AppLoadError
    from devstack.funchost.host import LocalHost

    configure_logging(log_level)
    app_dir = app.resolve()
    state = (state_dir or app_dir / ".funchost").resolve()
    settings = {k: v for k, v in local_settings(app_dir).items() if k not in os.environ}
    storage_setting = "AzureWebJobsStorage"  # the Functions setting name, case and all
    connection = resolve_storage(storage or os.environ.get(storage_setting) or settings.get(storage_setting))
    virtual = clock != "real"
    if clock == "real":
        host_clock: FileClock | SystemClock = SystemClock()
    else:
        clock_path = Path(clock.split(":", 1)[1]) if ":" in clock else state / "clock"
        host_clock = FileClock(clock_path)
    host = LocalHost(
        app_dir,
        connection,
        clock=host_clock,
        virtual_clock=virtual,
        port=port,
        state_dir=state,
        app_settings=settings,
        idle_grace_seconds=idle_grace,
        queue_lease_seconds=queue_lease,
    )
    try:
        host.start()
    except AppLoadError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    _print_banner(host, clock)
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    try:
        while not stopping.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        host.stop()


def _print_banner(host: object, clock: str) -> None:
    from devstack.funchost.host import LocalHost

    assert isinstance(host, LocalHost)
    lines = [f"Local Functions host for {host.app_dir} ({'real time' if clock == 'real' else 'virtual clock'})", ""]
    lines.append("Functions:")
    urls = host.http_urls()
    for fn in host.app.functions:
        if fn.trigger_type == "httpTrigger":
            lines.append(f"    {fn.name}: [{','.join(fn.methods)}] {urls[fn.name]}  (auth: {fn.auth_level})")
        else:
            detail = {
                "queueTrigger": f"queue {fn.trigger.get('queueName')}",
                "timerTrigger": f"schedule {fn.trigger.get('schedule')}",
                "orchestrationTrigger": "orchestrator",
                "activityTrigger": "activity",
            }
            lines.append(f"    {fn.name}: {fn.trigger_type} ({detail[fn.trigger_type]})")
    lines += [
        "",
        f"Durable Functions API: {host.base_url}/runtime/webhooks/durabletask (code={host.keys.durabletask_extension})",
        f"Master key: {host.keys.master}",
        f"Default function key: {host.keys.host_default}",
    ]
    lines += [f"Function key {name}: {key}" for name, key in host.keys.functions.items()]
    typer.echo("\n".join(lines), err=False)
    sys.stdout.flush()


def main() -> None:
    typer.run(host_command)


if __name__ == "__main__":
    main()
