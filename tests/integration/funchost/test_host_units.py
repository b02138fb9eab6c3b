"""Small pieces of the host that need nothing running: discovery, routes, schedules, keys, settings."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from devstack.funchost.appmodel import AppLoadError, load_app
from devstack.funchost.cli import DEVELOPMENT_STORAGE, local_settings, resolve_storage
from devstack.funchost.keys import HostKeys
from devstack.funchost.routes import RouteTemplate
from devstack.funchost.triggers import Schedule
from tests.integration.funchost.conftest import SAMPLE_APP


def test_discovery_sorts_the_sample_app_by_trigger() -> None:
    app = load_app(SAMPLE_APP)
    assert {f.name for f in app.by_trigger("httpTrigger")} == {"http_start", "client_ops"}
    assert "chain" in app.orchestrators
    assert "say_hello" in app.activities
    assert app.by_trigger("queueTrigger")[0].queue_name == "sample-requests"
    assert app.by_trigger("timerTrigger")[0].schedule == "0 */5 * * * *"
    assert app.route_prefix == "api"


def test_discovery_refuses_an_unsupported_trigger_naming_the_function(tmp_path: Path) -> None:
    (tmp_path / "function_app.py").write_text(
        "import azure.functions as func\n"
        "app = func.FunctionApp()\n"
        "@app.blob_trigger(arg_name='blob', path='in/{name}', connection='AzureWebJobsStorage')\n"
        "def on_blob(blob: func.InputStream) -> None: ...\n"
    )
    with pytest.raises(AppLoadError, match=r"on_blob.*blobTrigger"):
        load_app(tmp_path)


def test_discovery_explains_a_missing_app(tmp_path: Path) -> None:
    with pytest.raises(AppLoadError, match=r"no function_app\.py"):
        load_app(tmp_path)


@pytest.mark.parametrize(
    ("template", "path", "expected"),
    [
        ("orchestrators/{name}/{instance_id?}", "orchestrators/chain", {"name": "chain"}),
        ("orchestrators/{name}/{instance_id?}", "orchestrators/chain/abc", {"name": "chain", "instance_id": "abc"}),
        ("items/{id:int}", "items/42", {"id": "42"}),
        ("items/{id:int}", "items/x", None),
        ("files/{*rest}", "files/a/b.txt", {"rest": "a/b.txt"}),
        ("Status", "status/", {}),
    ],
)
def test_route_templates(template: str, path: str, expected: dict[str, str] | None) -> None:
    assert RouteTemplate(template).match(path) == expected


def test_ncrontab_has_seconds_first_and_timespans_are_intervals() -> None:
    start = datetime(2030, 1, 1, 0, 1, 2, tzinfo=UTC)
    assert Schedule("0 */5 * * * *").next_after(start) == datetime(2030, 1, 1, 0, 5, tzinfo=UTC)
    assert Schedule("30 0 9 * * Mon-Fri").next_after(start) == datetime(2030, 1, 1, 9, 0, 30, tzinfo=UTC)
    assert Schedule("00:10:00").next_after(start) == datetime(2030, 1, 1, 0, 11, 2, tzinfo=UTC)
    with pytest.raises(ValueError, match="six-field"):
        Schedule("*/5 * * * *")


def test_keys_by_auth_level_and_they_survive_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    keys = HostKeys.load_or_create(path)
    keys.ensure_functions(["a", "b"])
    keys.save(path)
    again = HostKeys.load_or_create(path)
    assert again == keys
    assert again.allows("a", "anonymous", None)
    assert again.allows("a", "function", again.functions["a"])
    assert again.allows("a", "function", again.host_default)
    assert not again.allows("a", "function", again.functions["b"])
    assert not again.allows("a", "admin", again.host_default)
    assert again.allows("a", "admin", again.master)
    assert again.allows_system(again.durabletask_extension)
    assert not again.allows_system(again.host_default)


def test_local_settings_values_and_development_storage(tmp_path: Path) -> None:
    (tmp_path / "local.settings.json").write_text(
        json.dumps({"IsEncrypted": False, "Values": {"AzureWebJobsStorage": "UseDevelopmentStorage=true", "N": 1}})
    )
    values = local_settings(tmp_path)
    assert values == {"AzureWebJobsStorage": "UseDevelopmentStorage=true", "N": "1"}
    assert resolve_storage(values["AzureWebJobsStorage"]) == DEVELOPMENT_STORAGE
    assert local_settings(tmp_path / "missing") == {}
