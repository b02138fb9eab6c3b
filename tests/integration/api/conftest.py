"""The API's functions, called directly with real HttpRequests, over a real store on Azurite."""

from __future__ import annotations

import asyncio
import inspect
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import azure.durable_functions as df
import azure.functions as func
import pytest
from azure.data.tables import TableServiceClient
from azure.durable_functions.models.utils import http_utils

from devstack.settings import StackSettings
from functions import bootstrap
from functions.adapters.table_store import TableStore
from functions.api.blueprint import bp
from functions.settings import FunctionSettings
from tests.integration.api.durable_host import RecordingDurableHost


@pytest.fixture(scope="session")
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    # The durable SDK keeps one aiohttp session per process, bound to the loop that made it.
    loop = asyncio.new_event_loop()
    yield loop
    loop.run_until_complete(http_utils._close_session())
    loop.close()


APPROVAL_WAVE = "needs-approval"


def function_settings(connection_string: str) -> FunctionSettings:
    return FunctionSettings.from_environment({
        "STATE_STORAGE": connection_string,
        "ASR_SUBSCRIPTION_ID": "00000000-0000-0000-0000-000000000001",
        "ASR_RESOURCE_GROUP": "aws2azure-asr",
        "ASR_VAULT_NAME": "aws2azure-vault",
        "TARGET_RESOURCE_GROUP_ID": "/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/target",
        "TARGET_NETWORK_ID": "/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/target"
        "/providers/Microsoft.Network/virtualNetworks/migrated",
        "TARGET_DEFAULT_SUBNET": "workloads",
        "ASR_CACHE_STORAGE_ACCOUNT_ID": "/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/target"
        "/providers/Microsoft.Storage/storageAccounts/asrcache",
        "APPROVAL_REQUIRED_WAVES": APPROVAL_WAVE,
    })  # fmt: skip


@pytest.fixture
def store(azurite: StackSettings) -> Iterator[TableStore]:
    assert azurite.azurite is not None
    service = TableServiceClient.from_connection_string(azurite.azurite.connection_string)
    suffix = uuid.uuid4().hex[:12]
    table_store = TableStore(service, migrations_table=f"m{suffix}", events_table=f"e{suffix}")
    settings = function_settings(azurite.azurite.connection_string)
    bootstrap.configure(lambda: bootstrap.Services(settings, store=table_store))
    yield table_store
    bootstrap.configure(None)


@pytest.fixture
def durable_host() -> Iterator[RecordingDurableHost]:
    host = RecordingDurableHost().start()
    yield host
    host.stop()


@pytest.fixture(scope="session")
def functions() -> dict[str, func.decorators.function_app.Function]:
    app = df.DFApp(http_auth_level=func.AuthLevel.FUNCTION)
    app.register_functions(bp)
    return {str(f.get_function_name()): f for f in app.get_functions()}


Caller = Callable[..., func.HttpResponse]


@pytest.fixture
def call(functions: dict[str, Any], loop: asyncio.AbstractEventLoop, durable_host: RecordingDurableHost) -> Caller:
    """Invoke one function as the host would: the HttpRequest, and the client binding's JSON if it has one."""

    def invoke(name: str, method: str, path: str, *, params: dict[str, str] | None = None,
               route: dict[str, str] | None = None, body: bytes | str | None = None,
               client_json: str | None = None) -> func.HttpResponse:  # fmt: skip
        raw = body.encode() if isinstance(body, str) else (body or b"")
        request = func.HttpRequest(
            method=method, url=f"http://127.0.0.1/api/{path}", headers={"content-type": "application/json"},
            params=params or {}, route_params=route or {}, body=raw,
        )  # fmt: skip
        user_function = functions[name].get_user_function()
        # The host passes the durable client binding only to a function that declares one.
        kwargs: dict[str, Any] = {"req": request}
        if "client" in inspect.signature(user_function).parameters:
            kwargs["client"] = client_json if client_json is not None else durable_host.client_json
        if asyncio.iscoroutinefunction(user_function):
            return loop.run_until_complete(user_function(**kwargs))  # type: ignore[no-any-return]
        return user_function(**kwargs)  # type: ignore[no-any-return]

    return invoke
