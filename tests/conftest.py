"""Shared test set-up."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from azure.durable_functions.models.utils import http_utils


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
