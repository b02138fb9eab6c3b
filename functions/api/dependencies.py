"""What the routes are wired to: the worker's store and settings, built lazily, once per worker.

By default they come from the Function App's composition root (``functions.bootstrap.services()``),
so the API shares one store with the activities; tests ``configure`` their own.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

from functions.settings import FunctionSettings
from migration.ports import MigrationStore


@dataclass(frozen=True)
class ApiServices:
    store: MigrationStore
    settings: FunctionSettings


def _from_bootstrap() -> ApiServices:
    from functions.bootstrap import services

    built = services()
    return ApiServices(store=built.store, settings=built.settings)


class _Wiring:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.factory: Callable[[], ApiServices] = _from_bootstrap
        self.built: ApiServices | None = None


_WIRING = _Wiring()


def configure(factory: Callable[[], ApiServices] | None = None) -> None:
    """Build the API's services with ``factory`` (on first use); None restores the composition root."""
    with _WIRING.lock:
        _WIRING.factory = factory or _from_bootstrap
        _WIRING.built = None


def api_services() -> ApiServices:
    built = _WIRING.built
    if built is None:
        with _WIRING.lock:
            if _WIRING.built is None:
                _WIRING.built = _WIRING.factory()
            built = _WIRING.built
    return built


def get_store() -> MigrationStore:
    return api_services().store
