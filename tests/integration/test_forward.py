"""Forwarding (issue 9) end to end: a real Pharos forwards to a capture server and to a second
real Pharos, over OTLP/HTTP (protobuf, gzip, JSON) and OTLP/gRPC, with the target down and then
up, across a restart of the forwarding server: every span arrives exactly once."""

from __future__ import annotations

import gzip
import re
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import grpc
import orjson
import pytest
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.metrics.v1 import metrics_pb2 as m
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.sdk.resources import Resource as SdkResource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from sqlalchemy import func, select

from pharos.server.db.engine import make_engine
from pharos.server.db.schema import forward_queue, metric_points, spans
from tests.alert_receivers import Received, receiver, wait_for
from tests.conftest import free_port, run_server
from tests.log_helpers import log_record, logs_request
from tests.otlp_helpers import JSON, PROTOBUF, kv, request, span, to_otlp_json

FAST = {
    "forward_poll_seconds": 0.1,
    "forward_retry_base_seconds": 0.1,
    "forward_retry_max_seconds": 0.5,
    "forward_timeout_seconds": 2.0,
}


def _settings(port: int, **more: Any) -> dict[str, Any]:
    return {"forward_otlp": [f"http://127.0.0.1:{port}"], **FAST, **more}


def _count(url: str, table: Any) -> int:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(table)).scalar() or 0)
    finally:
        engine.dispose()


def _body(r: Received) -> bytes:
    return gzip.decompress(r.body) if r.headers.get("content-encoding") == "gzip" else r.body


def _span_keys(received: list[Received]) -> Counter[str]:
    keys: Counter[str] = Counter()
    for r in received:
        if r.path != "/v1/traces":
            continue
        assert r.headers["content-type"] == "application/x-protobuf"
        message = ExportTraceServiceRequest.FromString(_body(r))
        for rs in message.resource_spans:
            for ss in rs.scope_spans:
                for s in ss.spans:
                    keys[s.trace_id.hex() + s.span_id.hex()] += 1
    return keys


def _key(trace: int, span_id: int) -> str:
    return trace.to_bytes(16, "big").hex() + span_id.to_bytes(8, "big").hex()


def _metrics_request(value: float) -> ExportMetricsServiceRequest:
    point = m.NumberDataPoint(time_unix_nano=time.time_ns(), as_double=value)
    return ExportMetricsServiceRequest(
        resource_metrics=[
            m.ResourceMetrics(
                resource=Resource(attributes=[kv("service.name", "fwd-metrics")]),
                scope_metrics=[
                    m.ScopeMetrics(
                        metrics=[m.Metric(name="queue.size", gauge=m.Gauge(data_points=[point]))]
                    )
                ],
            )
        ]
    )


def _metric_value(text: str, name: str, **labels: str) -> float | None:
    for line in text.splitlines():
        if not line.startswith(name + "{"):
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', line.split("}")[0]))
        if all(found.get(k) == v for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return None


def test_target_down_then_up_across_a_restart_arrives_exactly_once(
    db_url: str, tmp_path: Path
) -> None:
    port = free_port()
    settings = _settings(port)
    sent: Counter[str] = Counter()
    with receiver(port, started=False) as target:
        with run_server(db_url, **settings) as a:
            first = request([span(1, 1, name="root"), span(1, 2, parent=1)], "svc-a")
            r = a.post("/v1/traces", content=first.SerializeToString(), headers=PROTOBUF)
            assert r.status_code == 200, r.text
            sent.update([_key(1, 1), _key(1, 2)])
            gz = gzip.compress(request([span(2, 1)], "svc-b").SerializeToString())
            r = a.post("/v1/traces", content=gz, headers={**PROTOBUF, "content-encoding": "gzip"})
            assert r.status_code == 200, r.text
            sent[_key(2, 1)] += 1
            doc = to_otlp_json(request([span(3, 1), span(3, 2, parent=1)], "svc-c"))
            r = a.post("/v1/traces", content=orjson.dumps(doc), headers=JSON)
            assert r.status_code == 200, r.text
            sent.update([_key(3, 1), _key(3, 2)])
            # The exporter resends the first request (say its answer was lost): stored once,
            # and not queued again.
            r = a.post("/v1/traces", content=first.SerializeToString(), headers=PROTOBUF)
            assert r.status_code == 200, r.text
            # Half new: only the new span is sent on.
            half = request([span(2, 1), span(2, 2, parent=1)], "svc-b")
            r = a.post("/v1/traces", content=half.SerializeToString(), headers=PROTOBUF)
            assert r.status_code == 200, r.text
            sent[_key(2, 2)] += 1
            r = a.post(
                "/v1/metrics",
                content=_metrics_request(4.0).SerializeToString(),
                headers=PROTOBUF,
            )
            assert r.status_code == 200, r.text
            logs = logs_request([log_record("order 42 shipped", trace=1, span_id=2)], "svc-a")
            for _ in range(2):  # and a resend, stored once and not queued again
                r = a.post("/v1/logs", content=logs.SerializeToString(), headers=PROTOBUF)
                assert r.status_code == 200, r.text
            # The target is down: everything waits in the queue, counted on /metrics.
            assert _count(db_url, forward_queue) == 6
            name = f"http://127.0.0.1:{port}"
            wait_for(
                lambda: (
                    _metric_value(a.get("/metrics").text, "pharos_forward_queue_depth", target=name)
                    == 6.0
                )
            )
            failed = _metric_value(a.get("/metrics").text, "pharos_forward_failed_total")
            assert failed is not None and failed >= 1
            assert target.accepted == []
        # Restarted with the target still down: the queue survived the restart.
        with run_server(db_url, **settings) as b:
            assert _count(db_url, forward_queue) == 6
            target.start()  # the target comes back
            wait_for(lambda: _count(db_url, forward_queue) == 0)
            text = b.get("/metrics").text
    assert _span_keys(target.accepted) == sent  # every span once, none twice
    paths = Counter(r.path for r in target.accepted)
    assert paths == {"/v1/traces": 4, "/v1/metrics": 1, "/v1/logs": 1}
    (forwarded_logs,) = [r for r in target.accepted if r.path == "/v1/logs"]
    record = ExportLogsServiceRequest.FromString(_body(forwarded_logs))
    assert record.resource_logs[0].scope_logs[0].log_records[0].body.string_value == (
        "order 42 shipped"
    )
    metrics = [r for r in target.accepted if r.path == "/v1/metrics"]
    got = ExportMetricsServiceRequest.FromString(_body(metrics[0]))
    assert got.resource_metrics[0].scope_metrics[0].metrics[0].gauge.data_points[0].as_double == 4
    assert _metric_value(text, "pharos_forward_sent_total", signal="traces") == 4.0
    assert _metric_value(text, "pharos_forward_sent_total", signal="metrics") == 1.0
    assert _metric_value(text, "pharos_forward_sent_total", signal="logs") == 1.0
    assert _metric_value(text, "pharos_forward_sent_items_total", signal="traces") == 6.0


def test_a_second_pharos_receives_http_and_grpc_exports_once(db_url: str, tmp_path: Path) -> None:
    port = free_port()
    target_url = f"sqlite:///{tmp_path / 'target.db'}"
    with run_server(db_url, **_settings(port)) as a:
        exporter = OTLPSpanExporter(
            endpoint=a.grpc_target, insecure=True, compression=grpc.Compression.Gzip
        )
        provider = TracerProvider(resource=SdkResource.create({"service.name": "grpc-agent"}))
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        tracer = provider.get_tracer("test")
        with tracer.start_as_current_span("invoke_agent planner") as root:
            for i in range(3):
                with tracer.start_as_current_span(f"step {i}"):
                    pass
            grpc_trace = format(root.get_span_context().trace_id, "032x")
        provider.shutdown()
        body = request([span(7, 1, name="http root"), span(7, 2, parent=1)], "http-agent")
        r = a.post("/v1/traces", content=body.SerializeToString(), headers=PROTOBUF)
        assert r.status_code == 200
        for v in (1.0, 2.0):
            r = a.post(
                "/v1/metrics", content=_metrics_request(v).SerializeToString(), headers=PROTOBUF
            )
            assert r.status_code == 200
        assert _count(db_url, forward_queue) == 4 + 1 + 2  # each gRPC span was its own export
        with run_server(target_url, http_port=port) as b:
            wait_for(lambda: _count(db_url, forward_queue) == 0)
            assert _count(target_url, spans) == _count(db_url, spans) == 6
            assert _count(target_url, metric_points) == _count(db_url, metric_points) == 2
            detail = b.get(f"/api/v1/traces/{grpc_trace}").json()
            assert detail["trace"]["span_count"] == 4
            assert detail["trace"]["agent"] == "grpc-agent"
            # Nothing reached the target twice (it would have counted a duplicate).
            assert b.app.state.writer.stats.spans_duplicate == 0
            assert b.app.state.writer.stats.spans_stored == 6


def test_agent_filter_sends_only_matching_spans(sqlite_url: str) -> None:
    port = free_port()
    with (
        receiver(port) as target,
        run_server(sqlite_url, **_settings(port, forward_agents=["support-*"])) as a,
    ):
        mixed = ExportTraceServiceRequest(
            resource_spans=[
                *request([span(1, 1), span(1, 2, parent=1)], "support-bot").resource_spans,
                *request([span(2, 1)], "research-agent").resource_spans,
                *request(
                    [
                        span(3, 1, attrs={"gen_ai.agent.name": "support-triage"}),
                        span(3, 2, parent=1),
                    ],
                    "gateway",
                ).resource_spans,
            ]
        )
        r = a.post("/v1/traces", content=mixed.SerializeToString(), headers=PROTOBUF)
        assert r.status_code == 200
        r = a.post(
            "/v1/traces",
            content=request([span(4, 1)], "billing").SerializeToString(),
            headers=PROTOBUF,
        )
        assert r.status_code == 200
        wait_for(lambda: _count(sqlite_url, forward_queue) == 0)
    # The child of support-triage inherits its agent; research-agent and billing stay home.
    assert _span_keys(target.accepted) == Counter(
        {_key(1, 1): 1, _key(1, 2): 1, _key(3, 1): 1, _key(3, 2): 1}
    )
    assert len(target.accepted) == 1
    assert target.accepted[0].headers["content-encoding"] == "gzip"


def test_backlog_is_bounded_oldest_dropped_and_counted(sqlite_url: str) -> None:
    port = free_port()
    with (
        receiver(port, started=False) as target,
        run_server(sqlite_url, **_settings(port, forward_max_queue=3)) as a,
    ):
        for i in range(1, 7):
            body = request([span(i, 1)], "svc").SerializeToString()
            assert a.post("/v1/traces", content=body, headers=PROTOBUF).status_code == 200
        name = f"http://127.0.0.1:{port}"
        wait_for(
            lambda: (
                _metric_value(
                    a.get("/metrics").text,
                    "pharos_forward_dropped_total",
                    target=name,
                    reason="queue_full",
                )
                == 3.0
            )
        )
        assert _count(sqlite_url, forward_queue) == 3
        target.start()
        wait_for(lambda: _count(sqlite_url, forward_queue) == 0)
    assert set(_span_keys(target.accepted)) == {_key(4, 1), _key(5, 1), _key(6, 1)}


def test_a_hanging_target_never_fails_ingest(sqlite_url: str) -> None:
    port = free_port()
    hang = ["timeout"] * 200
    with receiver(port, hang) as target:
        target.sleep_on_timeout = 3.0
        with run_server(sqlite_url, **_settings(port, forward_timeout_seconds=0.5)) as a:

            def send(i: int) -> int:
                body = request([span(100 + i, 1), span(100 + i, 2, parent=1)], "svc")
                return a.post(
                    "/v1/traces", content=body.SerializeToString(), headers=PROTOBUF
                ).status_code

            with ThreadPoolExecutor(8) as pool:
                codes = list(pool.map(send, range(40)))
            assert codes == [200] * 40
            assert a.app.state.writer.stats.spans_stored == 80
            wait_for(lambda: target.attempts >= 1)
            ready = a.get("/readyz").json()
            assert ready["status"] == "ready"
            assert ready["checks"]["forwarding"]["worker"] == "running"
            assert _count(sqlite_url, forward_queue) == 40  # nothing lost, nothing sent


def test_a_malformed_request_refused_by_the_target_is_dropped_and_counted(sqlite_url: str) -> None:
    port = free_port()
    with receiver(port) as target:
        target.status = 400
        with run_server(sqlite_url, **_settings(port)) as a:
            body = request([span(9, 1)], "svc").SerializeToString()
            assert a.post("/v1/traces", content=body, headers=PROTOBUF).status_code == 200
            wait_for(lambda: _count(sqlite_url, forward_queue) == 0)
            text = a.get("/metrics").text
            assert _metric_value(text, "pharos_forward_dropped_total", reason="http_400") == 1.0
            assert _metric_value(text, "pharos_forward_sent_total") is None


@pytest.mark.parametrize("value", ["http://a:4318,ftp://b"])
def test_bad_forward_url_is_a_clear_configuration_error(value: str) -> None:
    from pydantic import ValidationError

    from pharos.server.settings import Settings

    with pytest.raises(ValidationError, match="not an http"):
        Settings(forward_otlp=value)
