"""Forwarding's pure parts: targets from settings, and what a target is sent."""

from __future__ import annotations

import gzip

import orjson
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.logs.v1 import logs_pb2
from opentelemetry.proto.metrics.v1 import metrics_pb2 as m
from opentelemetry.proto.resource.v1.resource_pb2 import Resource

from pharos.server.forward.config import agent_matches, build_targets
from pharos.server.forward.payload import outgoing
from pharos.server.settings import Settings
from tests.otlp_helpers import kv, request, span, to_otlp_json

PB = "application/x-protobuf"


def test_targets_from_base_urls_and_per_signal_overrides() -> None:
    targets = build_targets(
        ["http://tempo:4318/", "http://jaeger:4318"],
        {"metrics": ["http://mimir:9009/otlp/v1/metrics"]},
        signals=["traces", "metrics"],
        headers={"authorization": "Bearer x"},
        agents=["support-*"],
    )
    by_name = {t.name: t for t in targets}
    assert by_name["http://tempo:4318"].urls == {"traces": "http://tempo:4318/v1/traces"}
    assert by_name["http://jaeger:4318"].urls == {"traces": "http://jaeger:4318/v1/traces"}
    mimir = by_name["http://mimir:9009/otlp/v1/metrics"]
    assert mimir.urls == {"metrics": "http://mimir:9009/otlp/v1/metrics"}
    assert mimir.headers == {"authorization": "Bearer x"}
    assert mimir.agents == ("support-*",)


def test_settings_take_comma_lists_and_otel_style_headers(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("PHAROS_FORWARD_OTLP", "http://a:4318, https://b.example")
    monkeypatch.setenv("PHAROS_FORWARD_HEADERS", "authorization=Bearer%20abc,x-scope=t1")
    monkeypatch.setenv("PHAROS_FORWARD_SIGNALS", "traces")
    s = Settings()
    assert s.forward_otlp == ["http://a:4318", "https://b.example"]
    assert s.forward_headers == {"authorization": "Bearer abc", "x-scope": "t1"}
    assert s.forward_signals == ["traces"]


def test_agent_patterns() -> None:
    assert agent_matches("anything", [])
    assert agent_matches("support-bot", ["research", "support-*"])
    assert not agent_matches("support", ["support-*"])


def test_protobuf_without_filters_goes_out_as_received() -> None:
    body = gzip.compress(request([span(1, 1)]).SerializeToString())
    out = outgoing("traces", body, PB, "gzip")
    assert out is not None
    assert out.body is body
    assert out.headers == {"Content-Type": PB, "Content-Encoding": "gzip"}


def test_json_is_sent_as_gzipped_protobuf() -> None:
    msg = request([span(1, 1), span(1, 2, parent=1)])
    out = outgoing("traces", orjson.dumps(to_otlp_json(msg)), "application/json", None)
    assert out is not None and out.headers["Content-Encoding"] == "gzip"
    assert ExportTraceServiceRequest.FromString(gzip.decompress(out.body)) == msg


def test_only_new_spans_of_a_partial_resend() -> None:
    msg = request([span(1, 1), span(1, 2, parent=1), span(1, 3, parent=1)])
    keep = {(1).to_bytes(16, "big").hex() + (3).to_bytes(8, "big").hex()}
    out = outgoing("traces", msg.SerializeToString(), PB, None, only_spans=keep)
    assert out is not None
    got = ExportTraceServiceRequest.FromString(gzip.decompress(out.body))
    assert [s.span_id for s in got.resource_spans[0].scope_spans[0].spans] == [
        (3).to_bytes(8, "big")
    ]


def test_agent_filter_on_traces_keeps_inherited_children_and_drops_empty_resources() -> None:
    msg = ExportTraceServiceRequest(
        resource_spans=[
            *request([span(1, 1)], "research").resource_spans,
            *request(
                [span(2, 1, attrs={"gen_ai.agent.name": "support-x"}), span(2, 2, parent=1)],
                "gateway",
            ).resource_spans,
        ]
    )
    out = outgoing("traces", msg.SerializeToString(), PB, None, agents=["support-*"])
    assert out is not None
    got = ExportTraceServiceRequest.FromString(gzip.decompress(out.body))
    assert len(got.resource_spans) == 1
    assert len(got.resource_spans[0].scope_spans[0].spans) == 2
    assert outgoing("traces", msg.SerializeToString(), PB, None, agents=["nobody"]) is None


def test_agent_filter_on_metrics_and_logs() -> None:
    def point(agent: str | None) -> m.NumberDataPoint:
        attrs = [kv("gen_ai.agent.name", agent)] if agent else []
        return m.NumberDataPoint(time_unix_nano=1, as_int=1, attributes=attrs)

    metrics = ExportMetricsServiceRequest(
        resource_metrics=[
            m.ResourceMetrics(
                resource=Resource(attributes=[kv("service.name", "svc")]),
                scope_metrics=[
                    m.ScopeMetrics(
                        metrics=[
                            m.Metric(
                                name="a", gauge=m.Gauge(data_points=[point("keep"), point(None)])
                            ),
                            m.Metric(name="b", sum=m.Sum(data_points=[point(None)])),
                        ]
                    )
                ],
            )
        ]
    )
    out = outgoing("metrics", metrics.SerializeToString(), PB, None, agents=["keep"])
    assert out is not None
    got = ExportMetricsServiceRequest.FromString(gzip.decompress(out.body))
    kept = got.resource_metrics[0].scope_metrics[0].metrics
    assert [x.name for x in kept] == ["a"] and len(kept[0].gauge.data_points) == 1

    logs = ExportLogsServiceRequest(
        resource_logs=[
            logs_pb2.ResourceLogs(
                resource=Resource(attributes=[kv("service.name", name)]),
                scope_logs=[logs_pb2.ScopeLogs(log_records=[logs_pb2.LogRecord(time_unix_nano=1)])],
            )
            for name in ("keep", "other")
        ]
    )
    out = outgoing("logs", logs.SerializeToString(), PB, None, agents=["keep"])
    assert out is not None
    got_logs = ExportLogsServiceRequest.FromString(gzip.decompress(out.body))
    assert [r.resource.attributes[0].value.string_value for r in got_logs.resource_logs] == ["keep"]
