"""How the stack launcher starts the local Functions host (``devstack.launcher`` calls ``service_spec``)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from devstack.app_env import function_app_environment
from devstack.launcher import LaunchContext, ServiceSpec, StackError, http_answers
from devstack.settings import REPO_ROOT, HostEndpoint, StackSettings

APP_DIR_VARIABLE = "AWS2AZURE_FUNCTION_APP"  # another app folder than the repository root's
QUEUE_LEASE_VARIABLE = "AWS2AZURE_HOST_QUEUE_LEASE"
# The stack's host leases queue messages for 10 s (renewed while a function runs) instead of Azure's 10 minutes:
# its clock is virtual, and a message held by a host that was killed comes back once its lease runs out.
STACK_QUEUE_LEASE_SECONDS = "10"


def app_dir() -> Path:
    return Path(os.environ.get(APP_DIR_VARIABLE) or REPO_ROOT).resolve()


def service_spec(ctx: LaunchContext) -> ServiceSpec | None:
    folder = app_dir()
    if not (folder / "function_app.py").exists():
        return None  # the launcher reports the host as not available in this build
    stack = StackSettings.model_validate(ctx.settings)
    if stack.azurite is None:
        raise StackError("the local Functions host keeps its state in Azurite: start 'azurite' before 'host'")
    port = ctx.port(7071)
    state = ctx.state_dir / "funchost"
    base_url = f"http://127.0.0.1:{port}"
    argv = [
        ctx.python,
        "-m",
        "devstack.funchost",
        "--app",
        str(folder),
        "--port",
        str(port),
        "--state-dir",
        str(state),
        "--clock",
        f"virtual:{ctx.clock_file}",
        "--storage",
        stack.azurite.connection_string,
    ]
    settings: dict[str, Any] = {}

    def ready() -> bool:
        if not http_answers(f"{base_url}/admin/host/ping"):
            return False
        # The host writes its keys before it listens; publish them with its endpoint.
        keys = json.loads((state / "host_keys.json").read_text())
        settings["host"] = HostEndpoint(
            base_url=base_url,
            master_key=keys["master"],
            function_keys={"default": keys["host_default"], **keys["functions"]},
        )
        return True

    env = {
        **function_app_environment(stack),
        QUEUE_LEASE_VARIABLE: os.environ.get(QUEUE_LEASE_VARIABLE) or STACK_QUEUE_LEASE_SECONDS,
    }
    return ServiceSpec("host", argv, ready, settings, env=env)
