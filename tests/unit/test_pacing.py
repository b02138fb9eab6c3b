from __future__ import annotations

import pytest
import requests
from azure.core.pipeline import Pipeline
from azure.core.pipeline.transport import HttpRequest, HttpTransport, RequestsTransportResponse

from functions.adapters.asr import WritePacingPolicy
from migration.pacing import WriteLimiter


class FakeTime:
    """A monotonic clock that only sleeping moves."""

    def __init__(self) -> None:
        self.now = 100.0

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def peak_in_any_second(stamps: list[float]) -> int:
    return max(sum(1 for other in stamps if start <= other < start + 1.0) for start in stamps)


def test_no_one_second_window_ever_holds_more_than_the_rate() -> None:
    clock = FakeTime()
    limiter = WriteLimiter(8, monotonic=clock.monotonic, sleep=clock.sleep)
    stamps = []
    for _ in range(100):
        limiter.acquire()
        stamps.append(clock.now)
    # Never above the rate, and not needlessly slow (the headroom costs one write a second at most).
    assert 7 <= peak_in_any_second(stamps) <= 8
    # 100 writes at 8 per second take about twelve seconds, not less.
    assert stamps[-1] - stamps[0] >= 12.0


def test_writes_spread_out_in_time_do_not_wait() -> None:
    clock = FakeTime()
    limiter = WriteLimiter(2, monotonic=clock.monotonic, sleep=clock.sleep)
    waits = []
    for _ in range(5):
        waits.append(limiter.acquire())
        clock.now += 0.6
    assert waits == [0.0] * 5


def test_a_rate_must_be_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        WriteLimiter(0)


class RecordingTransport(HttpTransport):  # type: ignore[type-arg]
    """The network, as azure-core sees it: records when each request was sent (a process boundary)."""

    def __init__(self, clock: FakeTime) -> None:
        self.clock = clock
        self.sent: list[tuple[str, float]] = []

    def send(self, request: HttpRequest, **kwargs: object) -> RequestsTransportResponse:
        self.sent.append((request.method, self.clock.now))
        response = RequestsTransportResponse(request, requests.Response())
        response.status_code = 202
        return response

    def open(self) -> None: ...

    def close(self) -> None: ...

    def __enter__(self) -> RecordingTransport:
        return self

    def __exit__(self, *args: object) -> None: ...


def test_the_pipeline_paces_writes_when_they_are_sent_and_lets_reads_through() -> None:
    clock = FakeTime()
    transport = RecordingTransport(clock)
    limiter = WriteLimiter(2, monotonic=clock.monotonic, sleep=clock.sleep)
    pipeline = Pipeline(transport=transport, policies=[WritePacingPolicy(limiter)])
    for method in ["GET", "PUT", "POST", "GET", "GET", "POST", "DELETE"]:
        pipeline.run(HttpRequest(method, "https://127.0.0.1/x"))
    writes = [at for method, at in transport.sent if method != "GET"]
    reads = [at for method, at in transport.sent if method == "GET"]
    assert peak_in_any_second(writes) == 2
    assert writes[2] - writes[0] >= 1.0  # the third write waited for the window
    assert reads[:1] == [100.0]  # reads never wait
