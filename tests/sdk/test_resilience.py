"""Never blocks, never crashes: a server that is down, hangs, answers 500 or 429; bounded memory
with dropped spans counted and reported once; misconfiguration; exporters that raise; init
twice; init again after shutdown. (Timing is measured in bench/sdk_overhead.py; here the only
clocks are generous deadlines that a blocked call would blow.)"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from typing import Any

import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

import pharos
from tests.sdk.otlp_capture import closed_port_url, otlp_capture

DEADLINE = 30.0  # seconds: far above what 2,000 local calls take, far below a blocked export


def _work(n: int) -> int:
    @pharos.tool
    def step(i: int) -> int:
        return i

    @pharos.agent(name="load")
    def run() -> int:
        return sum(step(i) for i in range(4))

    log = pharos.get_logger("load")
    total = 0
    for _ in range(n // 5):
        total += run()
        log.info("ran", total=total)
    return total


def _messages(caplog: pytest.LogCaptureFixture, needle: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if needle in r.getMessage()]


@pytest.mark.parametrize("mode", ["down", "hang", "500", "429"])
def test_calls_return_while_the_server_misbehaves(
    mode: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="pharos.sdk")
    with otlp_capture("ok" if mode == "down" else mode) as capture:
        url = closed_port_url() if mode == "down" else capture.url
        assert pharos.init(
            service_name=f"resilience-{mode}",
            endpoint=url,
            max_queue_size=200,
            schedule_delay=0.05,
            export_timeout=2,
            shutdown_timeout=2,
            log_level="INFO",
        )
        done = threading.Event()
        result: list[int] = []
        worker = threading.Thread(target=lambda: (result.append(_work(2000)), done.set()))
        worker.start()
        assert done.wait(DEADLINE), f"app calls blocked with the server {mode}"
        assert result == [2000 // 5 * 6]
        # Let the exporter hit the failure at least once.
        assert capture.wait_for(lambda: capture.attempts > 0 or mode == "down", 10)
        stats = pharos.stats()
        assert stats["spans"]["queued"] <= 200  # memory is bounded by the queue
        assert stats["spans"]["exported"] == 0
        started = time.monotonic()
        pharos.shutdown(timeout=2)
        assert time.monotonic() - started < DEADLINE
    final = pharos.stats()["spans"]
    assert final["dropped"] > 0  # 2,000 spans into a queue of 200
    assert pharos.stats()["logs"]["queued"] <= 200  # the log records have their own bound
    assert final["exported"] == 0
    # Reported once, not per span or per batch:
    assert len(_messages(caplog, "spans are waiting to be sent")) == 1
    assert len(_messages(caplog, "could not send spans")) == 1
    assert len(_messages(caplog, "dropped")) >= 1
    assert not [
        r
        for r in caplog.records
        if r.name.startswith("opentelemetry") and r.levelno >= logging.WARNING
    ]


def test_export_recovers_and_says_so(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="pharos.sdk")
    with otlp_capture("500") as capture:
        pharos.init(service_name="recover", endpoint=capture.url, schedule_delay=0.05, logs=False)
        with pharos.span("while failing"):
            pass
        assert capture.wait_for(lambda: capture.attempts > 0)
        assert capture.wait_for(lambda: pharos.stats()["spans"]["failed"] == 1)
        capture.mode = "ok"
        with pharos.span("after recovery"):
            pass
        assert pharos.flush(10)
        assert [s["name"] for s in capture.spans()] == ["after recovery"]
    assert len(_messages(caplog, "could not send spans")) == 1
    assert len(_messages(caplog, "spans to " + capture.url + "/v1/traces works again")) == 1


def test_shutdown_returns_on_time_when_the_server_hangs() -> None:
    with otlp_capture("hang") as capture:
        pharos.init(service_name="hang", endpoint=capture.url, export_timeout=30, logs=False)
        for _ in range(50):
            with pharos.span("queued"):
                pass
        started = time.monotonic()
        assert pharos.shutdown(timeout=0.5) is False  # gave up waiting, did not hang
        assert time.monotonic() - started < 10
        started = time.monotonic()
        assert pharos.flush(timeout=0.5)  # nothing running any more
        assert time.monotonic() - started < 10


def test_queue_is_bounded_and_drops_are_counted_exactly() -> None:
    with otlp_capture("hang") as capture:
        pharos.init(
            service_name="bounded",
            endpoint=capture.url,
            max_queue_size=100,
            schedule_delay=60,  # nothing leaves: every span past 100 is dropped
            logs=False,
        )
        for _ in range(1000):
            with pharos.span("s"):
                pass
        stats = pharos.stats()["spans"]
        # At most one batch (100) went to the exporter, which hangs; 100 wait; the rest dropped.
        assert stats["queued"] == 100
        assert 800 <= stats["dropped"] <= 900
        assert stats["exported"] == 0
        pharos.shutdown(timeout=0.5)


class ExplodingExporter(SpanExporter):
    def __init__(self) -> None:
        self.calls = 0

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.calls += 1
        raise RuntimeError("exporter bug")

    def shutdown(self) -> None:
        raise RuntimeError("shutdown bug too")


def test_an_exporter_that_raises_never_reaches_user_code(caplog: Any) -> None:
    exporter = ExplodingExporter()
    pharos.init(service_name="explode", span_exporter=exporter, logs=False, schedule_delay=0.01)
    for _ in range(20):
        with pharos.agent(name="a"):
            pass
    pharos.flush(5)
    assert exporter.calls >= 1
    assert pharos.shutdown(5)
    assert pharos.stats()["spans"]["failed"] == 20
    assert len(_messages(caplog, "could not send spans")) == 1


def test_misconfigured_endpoint_and_settings_are_logged_not_raised(caplog: Any) -> None:
    assert (
        pharos.init(
            service_name="bad",
            endpoint="ftp://nowhere",
            max_queue_size="many",
            capture_content="perhaps",
        )
        is True
    )  # type: ignore[arg-type]
    with pharos.agent(name="still-works") as run:
        run.set("k", 1)
    assert pharos.flush(2)
    problems = [r.getMessage() for r in caplog.records if r.name == "pharos.sdk"]
    assert any("ftp://nowhere" in p and "nothing will be exported" in p for p in problems)
    assert any("max_queue_size='many'" in p for p in problems)
    assert any("capture_content='perhaps'" in p for p in problems)


def test_init_is_idempotent_and_restartable(caplog: Any) -> None:
    caplog.set_level(logging.INFO, logger="pharos.sdk")
    with otlp_capture() as capture:
        assert pharos.init(service_name="once", endpoint=capture.url, logs=False)
        runtime = pharos.sdk.state.holder.runtime
        assert pharos.init(service_name="once", endpoint=capture.url, logs=False)
        assert pharos.sdk.state.holder.runtime is runtime  # same settings: nothing rebuilt
        with pharos.span("first"):
            pass
        # Other settings: flush and restart.
        assert pharos.init(service_name="twice", endpoint=capture.url, logs=False)
        assert pharos.sdk.state.holder.runtime is not runtime
        with pharos.span("second"):
            pass
        pharos.shutdown()
        assert pharos.init(service_name="thrice", endpoint=capture.url, logs=False)
        with pharos.span("third"):
            pass
        pharos.shutdown()
        services = {s["name"]: s["resource"]["service.name"] for s in capture.spans()}
    assert services == {"first": "once", "second": "twice", "third": "thrice"}


def test_disabled_sdk_records_nothing() -> None:
    assert pharos.init(service_name="off", enabled=False) is False
    with pharos.span("nothing") as s:
        assert not s.recording
    assert pharos.stats() == {}


def test_a_user_opentelemetry_api_tracer_follows_init_and_shutdown() -> None:
    from opentelemetry import trace

    tracer = trace.get_tracer("library-code")  # taken before init, like a library would
    with otlp_capture() as capture:
        pharos.init(service_name="api-user", endpoint=capture.url, logs=False)
        with tracer.start_as_current_span("from the API"):
            pass
        pharos.shutdown()
        with tracer.start_as_current_span("after shutdown") as span:
            assert not span.is_recording()
        assert [s["name"] for s in capture.spans()] == ["from the API"]
