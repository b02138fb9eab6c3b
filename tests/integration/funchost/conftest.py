from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from devstack.clock import FileClock
from devstack.funchost.host import LocalHost
from devstack.settings import StackSettings

SAMPLE_APP = Path(__file__).parent / "apps" / "conformance"
VIRTUAL_START = datetime(2030, 1, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def sample_log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("sample-log")


@pytest.fixture(scope="module")
def host(azurite: StackSettings, sample_log: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalHost]:
    assert azurite.azurite is not None
    root = tmp_path_factory.mktemp("host")
    local = LocalHost(
        SAMPLE_APP,
        azurite.azurite.connection_string,
        clock=FileClock(root / "clock", start=VIRTUAL_START),
        virtual_clock=True,
        state_dir=root,
        app_settings={"FUNCHOST_SAMPLE_LOG": str(sample_log)},
    )
    local.start()
    yield local
    local.stop()
