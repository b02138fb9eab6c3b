"""Shared test set-up."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from azure.durable_functions.models.utils import http_utils

from devstack.launcher import Stack
from devstack.settings import StackSettings


@pytest.fixture(autouse=True, scope="module")
def _fresh_durable_client_session() -> Iterator[None]:
    """The Durable SDK keeps one aiohttp session per process, bound to the event loop that made it.

    Test modules each run their own loop (asyncio.run, or an in-process host), so each starts with
    no session; in a deployed worker there is one loop and this never matters.
    """
    http_utils._client_session = None
    http_utils._session_lock = asyncio.Lock()
    yield
    http_utils._client_session = None


@pytest.fixture(scope="session")
def azurite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StackSettings]:
    """One Azurite for the whole session, for every test that needs only Table and Queue Storage.

    Tests that need a stack of their own (one they kill, restart, or point at another app) start it themselves;
    tests share this one by using tables and queues of their own names."""
    stack = Stack(tmp_path_factory.mktemp("azurite-stack"))
    settings = stack.up(["azurite"], quiet=True)
    yield settings
    stack.down(quiet=True)
