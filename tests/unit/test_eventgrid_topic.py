"""The local Event Grid topic refuses what the service refuses (devstack/eventgrid_topic.py; sources in
docs/NOTIFICATIONS.md), driven over HTTP in process with httpx."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from devstack.eventgrid_topic import MAX_EVENT_BYTES, MAX_REQUEST_BYTES, EventGridTopic, TopicClient

KEY = "k3y"
BATCH = "application/cloudevents-batch+json; charset=utf-8"


def _event(number: int = 1, **overrides: Any) -> dict[str, Any]:
    event = {"specversion": "1.0", "id": f"m:{number}", "type": "io.aws2azure.migration.PhaseChanged.v1",
             "source": "aws2azure/notifications/123456789012/eu-west-1", "subject": "i-1",
             "time": "2026-12-02T10:00:00Z", "datacontenttype": "application/json",
             "data": {"sequence": number}}  # fmt: skip
    event.update(overrides)
    return {k: v for k, v in event.items() if v is not None}


@pytest.fixture
def topic() -> Iterator[EventGridTopic]:
    with EventGridTopic(key=KEY) as running:
        yield running


def _post(topic: EventGridTopic, body: Any = None, *, raw: bytes | None = None, query: str = "?api-version=2018-01-01",
          content_type: str = BATCH, key: str | None = KEY) -> httpx.Response:  # fmt: skip
    headers = {"Content-Type": content_type}
    if key is not None:
        headers["aeg-sas-key"] = key
    content = raw if raw is not None else json.dumps(body if body is not None else [_event()]).encode()
    return httpx.post(topic.endpoint + query, content=content, headers=headers, timeout=10)


def _error(response: httpx.Response) -> dict[str, str]:
    error: dict[str, str] = response.json()["error"]
    assert set(error) == {"code", "message"}
    return error


def test_a_batch_of_cloudevents_with_the_key_is_accepted_and_recorded_in_order(topic: EventGridTopic) -> None:
    response = _post(topic, [_event(1), _event(2)])
    assert response.status_code == 200
    assert response.content == b""
    assert [e["id"] for e in TopicClient(topic.endpoint).events()] == ["m:1", "m:2"]


def test_the_key_may_be_a_query_parameter(topic: EventGridTopic) -> None:
    assert _post(topic, query=f"?api-version=2018-01-01&aeg-sas-key={KEY}", key=None).status_code == 200


@pytest.mark.parametrize("key", [None, "wrong", ""])
def test_a_missing_or_wrong_key_is_401(topic: EventGridTopic, key: str | None) -> None:
    response = _post(topic, key=key)
    assert response.status_code == 401
    assert _error(response)["code"] == "Unauthorized"
    assert TopicClient(topic.endpoint).events() == []


def test_a_bearer_token_is_not_a_key(topic: EventGridTopic) -> None:
    response = httpx.post(topic.endpoint + "?api-version=2018-01-01", content=json.dumps([_event()]),
                          headers={"Content-Type": BATCH, "Authorization": "Bearer x"}, timeout=10)  # fmt: skip
    assert response.status_code == 401


@pytest.mark.parametrize("query", ["", "?api-version=", "?api-version=2099-01-01", "?overload=cloudEvent"])
def test_a_missing_or_unknown_api_version_is_400(topic: EventGridTopic, query: str) -> None:
    response = _post(topic, query=query)
    assert response.status_code == 400
    assert "api-version" in _error(response)["message"]


@pytest.mark.parametrize("content_type", ["application/json", "application/cloudevents+json", "text/plain", ""])
def test_another_content_type_is_400(topic: EventGridTopic, content_type: str) -> None:
    response = _post(topic, content_type=content_type)
    assert response.status_code == 400
    assert _error(response)["code"] == "BadRequest"


def test_the_content_type_is_case_insensitive_and_may_omit_the_charset(topic: EventGridTopic) -> None:
    assert _post(topic, content_type="Application/CloudEvents-Batch+JSON").status_code == 200


@pytest.mark.parametrize(
    "body",
    [
        _event(),  # one event, not an array
        [],
        ["not an object"],
        [_event(id=None)],
        [_event(source=None)],
        [_event(type=None)],
        [_event(specversion=None)],
        [_event(specversion="0.3")],
        [_event(id="")],
        [_event(id=7)],
        [_event(subject=3)],
        [_event(time="yesterday")],
        [_event(data_base64="aGk=")],  # both data and data_base64
        [_event(1), _event(2, type=None)],  # one bad event refuses the batch
    ],
)
def test_a_body_that_is_not_an_array_of_cloudevents_1_0_is_400(topic: EventGridTopic, body: Any) -> None:
    response = _post(topic, body)
    assert response.status_code == 400
    assert _error(response)["code"] == "BadRequest"
    assert TopicClient(topic.endpoint).events() == []


def test_a_body_that_is_not_json_is_400(topic: EventGridTopic) -> None:
    assert _post(topic, raw=b"{not json").status_code == 400


def test_an_event_over_1_mb_is_413(topic: EventGridTopic) -> None:
    response = _post(topic, [_event(data={"blob": "x" * MAX_EVENT_BYTES})])
    assert response.status_code == 413
    assert _error(response)["code"] == "RequestEntityTooLarge"


def test_a_request_over_1_mb_of_events_each_under_it_is_413(topic: EventGridTopic) -> None:
    third = MAX_REQUEST_BYTES // 3
    response = _post(topic, [_event(n, data={"blob": "x" * third}) for n in range(4)])
    assert response.status_code == 413
    assert "request" in _error(response)["message"]


def test_just_under_the_limit_is_accepted(topic: EventGridTopic) -> None:
    envelope = len(json.dumps([_event(data={"blob": ""})]).encode())
    response = _post(topic, [_event(data={"blob": "x" * (MAX_REQUEST_BYTES - envelope)})])
    assert response.status_code == 200


def test_another_path_is_404(topic: EventGridTopic) -> None:
    response = httpx.post(topic.endpoint.replace("/api/events", "/api/other") + "?api-version=2018-01-01",
                          content=b"[]", headers={"Content-Type": BATCH, "aeg-sas-key": KEY}, timeout=10)  # fmt: skip
    assert response.status_code == 404


def test_while_down_every_publish_is_503_and_counted_then_up_again(topic: EventGridTopic) -> None:
    control = TopicClient(topic.endpoint)
    control.set_down(True)
    response = _post(topic)
    assert response.status_code == 503
    assert _error(response)["code"] == "ServiceUnavailable"
    assert control.refused() == 1
    control.set_down(False)
    assert _post(topic).status_code == 200
    assert len(control.events()) == 1
    control.reset()
    assert control.events() == []
    assert control.refused() == 0
