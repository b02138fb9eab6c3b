"""Discovery: load a Python v2-model ``function_app.py`` and sort its functions by trigger.

The same indexing the Python worker does: import the script, find the ``FunctionApp``/``DFApp``
object(s), call ``get_functions()`` once, and read each function's trigger and bindings. A
trigger or binding this host cannot serve stops the start-up with a message naming it.
"""

from __future__ import annotations

import importlib.util
import inspect
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SCRIPT_NAME = "function_app.py"
# This checkout's own packages (pip install -e): an app from another folder brings its own copies of them.
CHECKOUT_PACKAGES = frozenset({"function_app", "functions", "migration", "aws_lambda"})
CHECKOUT_ROOT = Path(__file__).resolve().parents[2]
SUPPORTED_TRIGGERS = ("httpTrigger", "queueTrigger", "timerTrigger", "orchestrationTrigger", "activityTrigger")
SUPPORTED_BINDINGS = ("http", "durableClient")
HTTP_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "TRACE")


class AppLoadError(RuntimeError):
    """The app cannot be served; the message says which file, function or binding and why."""


@dataclass(frozen=True)
class FunctionInfo:
    name: str
    trigger_type: str
    trigger: dict[str, Any]
    bindings: tuple[dict[str, Any], ...]
    user_function: Callable[..., Any] = field(repr=False)

    @property
    def trigger_param(self) -> str:
        return str(self.trigger["name"])

    @property
    def durable_client_param(self) -> str | None:
        for binding in self.bindings:
            if binding["type"] == "durableClient":
                return str(binding["name"])
        return None

    @property
    def is_async(self) -> bool:
        return inspect.iscoroutinefunction(self.user_function)

    @property
    def wants_context(self) -> bool:
        try:
            return "context" in inspect.signature(self.user_function).parameters and self.trigger_param != "context"
        except (TypeError, ValueError):
            return False

    # --- trigger-specific views -----------------------------------------------------------------
    @property
    def route(self) -> str:
        return str(self.trigger.get("route") or self.name)

    @property
    def methods(self) -> tuple[str, ...]:
        methods = self.trigger.get("methods")
        return tuple(str(m).upper() for m in methods) if methods else HTTP_METHODS

    @property
    def auth_level(self) -> str:
        return str(self.trigger.get("authLevel") or "function").lower()

    @property
    def queue_name(self) -> str:
        return str(self.trigger["queueName"])

    @property
    def connection(self) -> str:
        return str(self.trigger.get("connection") or "AzureWebJobsStorage")

    @property
    def schedule(self) -> str:
        return str(self.trigger["schedule"])

    @property
    def run_on_startup(self) -> bool:
        return bool(self.trigger.get("runOnStartup"))

    @property
    def durable_name(self) -> str:
        """Orchestrations and activities may be registered under a name other than the function's."""
        key = "orchestration" if self.trigger_type == "orchestrationTrigger" else "activity"
        return str(self.trigger.get(key) or self.name)


@dataclass
class AppModel:
    app_dir: Path
    functions: list[FunctionInfo]
    host_json: dict[str, Any]

    def by_trigger(self, trigger_type: str) -> list[FunctionInfo]:
        return [f for f in self.functions if f.trigger_type == trigger_type]

    @property
    def orchestrators(self) -> dict[str, FunctionInfo]:
        return {f.durable_name: f for f in self.by_trigger("orchestrationTrigger")}

    @property
    def activities(self) -> dict[str, FunctionInfo]:
        return {f.durable_name: f for f in self.by_trigger("activityTrigger")}

    @property
    def route_prefix(self) -> str:
        http = (self.host_json.get("extensions") or {}).get("http") or {}
        prefix = http.get("routePrefix", "api")
        return str(prefix).strip("/")

    @property
    def task_hub(self) -> str:
        durable = (self.host_json.get("extensions") or {}).get("durableTask") or {}
        return str(durable.get("hubName") or "TestHubName")


def _plain(value: Any) -> Any:
    """Binding dicts hold enums (AuthLevel, HttpMethod); keep their JSON values."""
    return json.loads(json.dumps(value, default=lambda v: getattr(v, "value", str(v))))


def _find_apps(module: Any) -> list[Any]:
    from azure.functions import FunctionRegister

    return [value for value in vars(module).values() if isinstance(value, FunctionRegister)]


def _run_the_apps_own_modules() -> None:
    """An app from another folder (a package built for deployment) runs its own modules, never the checkout's.

    The development install is editable: its finder answers for every module of the checkout's packages, so a
    module missing from the package would silently be taken from the checkout, and modules the host imported
    first (the clock) would be the checkout's. Both are undone here; the checkout stays on the path (last) for
    the host's own packages."""
    for name in [name for name in sys.modules if name.split(".")[0] in CHECKOUT_PACKAGES]:
        del sys.modules[name]
    sys.meta_path[:] = [finder for finder in sys.meta_path
                        if not str(getattr(finder, "__module__", "")).startswith("__editable__")]  # fmt: skip
    if str(CHECKOUT_ROOT) not in sys.path:
        sys.path.append(str(CHECKOUT_ROOT))


def load_app(app_dir: Path) -> AppModel:
    app_dir = app_dir.resolve()
    script = app_dir / SCRIPT_NAME
    if not script.exists():
        raise AppLoadError(f"no {SCRIPT_NAME} in {app_dir}: point the host at a Python v2-model function app folder")
    host_json_path = app_dir / "host.json"
    host_json: dict[str, Any] = json.loads(host_json_path.read_text()) if host_json_path.exists() else {}
    if app_dir != CHECKOUT_ROOT:
        _run_the_apps_own_modules()
    if str(app_dir) not in sys.path:
        sys.path.insert(0, str(app_dir))
    spec = importlib.util.spec_from_file_location("function_app", script)
    if spec is None or spec.loader is None:
        raise AppLoadError(f"cannot import {script}")
    module = importlib.util.module_from_spec(spec)
    sys.modules["function_app"] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        raise AppLoadError(f"importing {script} failed: {type(exc).__name__}: {exc}") from exc
    apps = _find_apps(module)
    if not apps:
        raise AppLoadError(f"{script} defines no FunctionApp (azure.functions.FunctionApp or DFApp)")
    functions: list[FunctionInfo] = []
    problems: list[str] = []
    for app in apps:
        try:
            indexed = app.get_functions()
        except ValueError as exc:
            raise AppLoadError(f"indexing {script} failed: {exc}") from exc
        for function in indexed:
            info = _describe(function)
            problems.extend(_check_supported(info))
            functions.append(info)
    if problems:
        raise AppLoadError("the local host cannot serve this app:\n  " + "\n  ".join(problems))
    names = [f.name for f in functions]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise AppLoadError(f"function names must be unique; repeated: {', '.join(duplicates)}")
    return AppModel(app_dir=app_dir, functions=functions, host_json=host_json)


def _describe(function: Any) -> FunctionInfo:
    trigger = function.get_trigger()
    trigger_dict = _plain(trigger.get_dict_repr()) if trigger is not None else {}
    bindings = tuple(_plain(b.get_dict_repr()) for b in function.get_bindings())
    return FunctionInfo(
        name=str(function.get_function_name()),
        trigger_type=str(trigger_dict.get("type", "")),
        trigger=trigger_dict,
        bindings=tuple(b for b in bindings if b.get("type") != trigger_dict.get("type")),
        user_function=function.get_user_function(),
    )


def _check_supported(info: FunctionInfo) -> list[str]:
    problems = []
    if info.trigger_type not in SUPPORTED_TRIGGERS:
        problems.append(
            f"function '{info.name}': trigger '{info.trigger_type or 'none'}' is not supported "
            f"(supported: {', '.join(SUPPORTED_TRIGGERS)})"
        )
    for binding in info.bindings:
        if binding.get("type") not in SUPPORTED_BINDINGS:
            problems.append(
                f"function '{info.name}': binding '{binding.get('type')}' ({binding.get('name')}) is not "
                f"supported (supported: {', '.join(SUPPORTED_BINDINGS)})"
            )
    return problems
