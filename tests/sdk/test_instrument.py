"""Opt-in auto-instrumentation and system metrics: real instrumentation packages where they
are installed (httpx, system metrics), a one-time warning where they are not."""

from __future__ import annotations

import importlib.util
import logging
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

import pharos
from tests.sdk.conftest import MemorySDK
from tests.sdk.otlp_capture import otlp_capture


@pytest.fixture
def web() -> Iterator[str]:
    class Hello(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            body = b"hello"
            self.send_response(200)
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Hello)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def _warnings(caplog: pytest.LogCaptureFixture, needle: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if needle in r.getMessage()]


@pytest.mark.skipif(
    importlib.util.find_spec("openinference.instrumentation.anthropic") is not None,
    reason="the anthropic instrumentation is installed here",
)
def test_missing_instrumentation_is_one_warning_naming_the_package(
    make_sdk: Any, caplog: pytest.LogCaptureFixture
) -> None:
    make_sdk(instrument=["anthropic", "no-such-lib"])
    make_sdk(instrument=["anthropic", "no-such-lib"], service_name="again")
    (missing,) = _warnings(caplog, "instrument=['anthropic']")
    assert "openinference-instrumentation-anthropic" in missing
    assert "pip install 'pharos[anthropic]'" in missing
    (unknown,) = _warnings(caplog, "'no-such-lib' is not known")
    assert "openai" in unknown


def test_httpx_calls_become_child_spans(make_sdk: Any, web: str) -> None:
    sdk: MemorySDK = make_sdk(instrument=["httpx"])
    with pharos.agent(name="fetcher"), httpx.Client() as client:
        assert client.get(web + "/page").text == "hello"
    agent = sdk.span("invoke_agent fetcher")
    (http,) = [s for s in sdk.spans() if s is not agent and s.name != agent.name]
    assert http.parent.span_id == agent.context.span_id
    assert (
        http.attributes.get("http.response.status_code", http.attributes.get("http.status_code"))
        == 200
    )
    # Stopped at shutdown: later calls are not traced (and instrument again on the next init).
    pharos.shutdown()
    sdk2: MemorySDK = make_sdk(instrument=["httpx"], service_name="second")
    with httpx.Client() as client:
        client.get(web)
    assert len(sdk2.spans()) == 1
    assert len(sdk.span_exporter.get_finished_spans()) == 2


def test_instrumentor_by_module_and_class_path(make_sdk: Any, web: str) -> None:
    sdk: MemorySDK = make_sdk(
        instrument=["opentelemetry.instrumentation.httpx:HTTPXClientInstrumentor"]
    )
    with httpx.Client() as client:
        client.get(web)
    assert len(sdk.spans()) == 1


def test_system_metrics_are_exported_to_v1_metrics() -> None:
    with otlp_capture() as capture:
        pharos.init(
            service_name="metered",
            endpoint=capture.url,
            system_metrics=True,
            metrics_interval=0.2,
            logs=False,
        )
        assert capture.wait_for(
            lambda: (
                {"process.memory.usage", "process.cpu.time", "system.memory.usage"}
                <= capture.metric_names()
            )
        )
        assert pharos.shutdown(10)
        (request, *_) = [c for c in capture.received if c.path == "/v1/metrics"]
        resource = {
            kv.key: kv.value.string_value
            for kv in request.message.resource_metrics[0].resource.attributes
        }
        assert resource["service.name"] == "metered"


def test_system_metrics_missing_is_a_warning(
    make_sdk: Any, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Python's way of making a module unimportable: its sys.modules entry is None.
    monkeypatch.setitem(sys.modules, "opentelemetry.instrumentation.system_metrics", None)
    caplog.set_level(logging.WARNING, logger="pharos.sdk")
    make_sdk(system_metrics=True)
    (message,) = _warnings(caplog, "system_metrics=True needs")
    assert "pharos[system-metrics]" in message
