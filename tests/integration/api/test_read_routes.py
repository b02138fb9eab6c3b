"""GET routes: listing with paging, one migration with its history, a wave, and every error path."""

from __future__ import annotations

import json
import logging
from typing import Any

import azure.functions as func
import pytest

from functions import bootstrap
from functions.adapters.table_store import TableStore
from functions.settings import FunctionSettings
from migration.lifecycle import Phase
from tests.integration.api.conftest import Caller
from tests.integration.store.records import make_event, make_record

pytestmark = pytest.mark.integration


def _json(response: func.HttpResponse) -> Any:
    assert response.mimetype == "application/json"
    return json.loads(response.get_body())


def _error(response: func.HttpResponse, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.get_body()
    body = _json(response)
    assert set(body) == {"error"}
    assert body["error"]["code"]
    assert body["error"]["message"]
    return body["error"]  # type: ignore[no-any-return]


@pytest.fixture
def fleet(store: TableStore) -> TableStore:
    for number in range(1, 8):
        store.create(make_record(number, wave="w1", phase=Phase.REPLICATING if number <= 3 else Phase.MIGRATED,
                                 progress_percent=50 if number <= 3 else None))  # fmt: skip
    store.create(make_record(20))
    return store


def test_the_list_pages_through_a_wave_with_continuation_tokens(fleet: TableStore, call: Caller) -> None:
    seen: list[str] = []
    params = {"wave": "w1", "page_size": "3", "code": "the-function-key"}
    pages = 0
    while True:
        body = _json(call("api_list_migrations", "GET", "migrations", params=params))
        pages += 1
        seen.extend(item["migration_id"] for item in body["items"])
        if body["continuation"] is None:
            break
        params = {**params, "continuation": body["continuation"]}
    assert pages == 3
    assert len(seen) == len(set(seen)) == 7


def test_the_list_filters_by_phase_across_waves(fleet: TableStore, call: Caller) -> None:
    body = _json(call("api_list_migrations", "GET", "migrations", params={"phase": "Replicating"}))
    assert len(body["items"]) == 3
    assert {item["phase"] for item in body["items"]} == {"Replicating"}
    assert "etag" not in body["items"][0]


@pytest.mark.parametrize(
    ("params", "mentions"),
    [
        ({"page_size": "many"}, "page_size"),
        ({"page_size": "0"}, "page_size"),
        ({"page_size": "5000"}, "page_size"),
        ({"phase": "replicating"}, "phase"),
        ({"wave": "w1' or true"}, "wave"),
        ({"continuation": "forged"}, "continuation"),
    ],
)
def test_bad_list_queries_are_400_and_say_what_is_wrong(
    fleet: TableStore, call: Caller, params: dict[str, str], mentions: str
) -> None:
    error = _error(call("api_list_migrations", "GET", "migrations", params=params), 400)
    assert error["code"] == "InvalidInput"
    assert any(problem.startswith(mentions) for problem in error["problems"]), error


def test_a_continuation_from_another_filter_is_400(fleet: TableStore, call: Caller) -> None:
    first = _json(call("api_list_migrations", "GET", "migrations", params={"wave": "w1", "page_size": "2"}))
    params = {"phase": "Migrated", "continuation": first["continuation"]}
    _error(call("api_list_migrations", "GET", "migrations", params=params), 400)


def test_one_migration_comes_with_its_event_history(fleet: TableStore, call: Caller) -> None:
    migration_id = make_record(1).migration_id
    for second in (3, 1, 2):
        fleet.append_event(make_event(migration_id, second, phase=Phase.REPLICATING, percent=second))

    body = _json(call("api_get_migration", "GET", f"migrations/{migration_id}",
                      route={"migration_id": migration_id}))  # fmt: skip

    assert body["migration"]["migration_id"] == migration_id
    assert body["migration"]["instance"]["instance_id"] == make_record(1).instance.instance_id
    assert [event["details"]["percent"] for event in body["events"]] == [1, 2, 3]


def test_an_unknown_migration_is_404_and_a_malformed_id_is_400(fleet: TableStore, call: Caller) -> None:
    unknown = make_record(999).migration_id
    error = _error(call("api_get_migration", "GET", "x", route={"migration_id": unknown}), 404)
    assert unknown in error["message"]
    error = _error(call("api_get_migration", "GET", "x", route={"migration_id": "not-an-id"}), 400)
    assert "not a migration id" in error["message"]


def test_a_wave_summary_counts_phases_and_progress(fleet: TableStore, call: Caller) -> None:
    body = _json(call("api_get_wave", "GET", "waves/w1", route={"wave": "w1"}))
    assert body["wave"] == "w1"
    assert body["total"] == 7
    assert body["by_phase"] == {"Replicating": 3, "Migrated": 4}
    assert body["progress_percent"] == pytest.approx((3 * 45 + 4 * 100) / 7, abs=0.1)


def test_an_unknown_wave_is_404_and_a_bad_name_400(fleet: TableStore, call: Caller) -> None:
    _error(call("api_get_wave", "GET", "waves/nope", route={"wave": "nope"}), 404)
    _error(call("api_get_wave", "GET", "waves/x", route={"wave": "a b"}), 400)


def test_every_route_needs_a_function_key(functions: dict[str, Any]) -> None:
    levels = {name: function.get_trigger().auth_level for name, function in functions.items()}
    assert len(levels) == 12  # the migration and wave routes, the wave cutover, the job resume and the rollback
    assert set(levels.values()) == {func.AuthLevel.FUNCTION}


def test_an_unexpected_error_is_500_with_a_correlation_id_in_the_log(
    store: TableStore, call: Caller, caplog: pytest.LogCaptureFixture
) -> None:
    # A worker started without its app settings cannot wire the API: our fault, not the client's.
    bootstrap.configure(lambda: bootstrap.Services(FunctionSettings.from_environment({}), store=store))
    with caplog.at_level(logging.ERROR, logger="aws2azure.api"):
        error = _error(call("api_list_migrations", "GET", "migrations"), 500)
    assert error["code"] == "InternalError"
    assert error["correlation_id"]
    assert "missing app settings" not in error["message"]  # internals stay in the log
    logged = [r for r in caplog.records if error["correlation_id"] in r.getMessage()]
    assert logged
    assert logged[0].exc_info is not None


def test_an_unreachable_store_is_503(store: TableStore, call: Caller) -> None:
    from azure.data.tables import TableServiceClient

    from devstack.settings import AZURITE_ACCOUNT, AZURITE_KEY

    unreachable = TableServiceClient.from_connection_string(
        f"DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT};AccountKey={AZURITE_KEY};"
        f"TableEndpoint=http://127.0.0.1:9/{AZURITE_ACCOUNT};",
        retry_total=0,
    )
    settings = bootstrap.services().settings
    bootstrap.configure(lambda: bootstrap.Services(settings, store=TableStore(unreachable, create_tables=False)))
    error = _error(call("api_get_wave", "GET", "waves/w1", route={"wave": "w1"}), 503)
    assert error["code"] == "Unavailable"
