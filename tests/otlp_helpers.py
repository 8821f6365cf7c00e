"""Builders for OTLP requests in tests: real protobuf messages and OTLP JSON documents."""

from __future__ import annotations

import base64
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from google.protobuf import json_format
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span, Status

PROTOBUF = {"content-type": "application/x-protobuf"}
JSON = {"content-type": "application/json"}
T0 = 1_790_000_000_000_000_000  # 2026-09-21, a fixed "now" for hand-made spans


def kv(key: str, value: Any) -> KeyValue:
    if isinstance(value, bool):
        return KeyValue(key=key, value=AnyValue(bool_value=value))
    if isinstance(value, int):
        return KeyValue(key=key, value=AnyValue(int_value=value))
    if isinstance(value, float):
        return KeyValue(key=key, value=AnyValue(double_value=value))
    return KeyValue(key=key, value=AnyValue(string_value=value))


def span(
    trace: int,
    span_id: int,
    parent: int | None = None,
    *,
    name: str = "step",
    start_ms: float = 0,
    duration_ms: float = 10,
    attrs: dict[str, Any] | None = None,
    error: str | None = None,
) -> Span:
    start = T0 + int(start_ms * 1_000_000)
    return Span(
        trace_id=trace.to_bytes(16, "big"),
        span_id=span_id.to_bytes(8, "big"),
        parent_span_id=parent.to_bytes(8, "big") if parent else b"",
        name=name,
        start_time_unix_nano=start,
        end_time_unix_nano=start + int(duration_ms * 1_000_000),
        attributes=[kv(k, v) for k, v in (attrs or {}).items()],
        status=Status(code=Status.STATUS_CODE_ERROR, message=error)
        if error
        else Status(code=Status.STATUS_CODE_OK),
    )


def request(spans: Iterable[Span], service: str = "test-service") -> ExportTraceServiceRequest:
    return ExportTraceServiceRequest(
        resource_spans=[
            ResourceSpans(
                resource=Resource(attributes=[kv("service.name", service)]),
                scope_spans=[ScopeSpans(spans=list(spans))],
            )
        ]
    )


def to_otlp_json(message: ExportTraceServiceRequest) -> dict[str, Any]:
    """OTLP JSON as the spec (and the JS exporter) writes it: hex ids, camelCase keys."""
    doc = json_format.MessageToDict(message)
    for rs in doc.get("resourceSpans", []):
        for ss in rs.get("scopeSpans", []):
            for sp in ss.get("spans", []):
                for key in ("traceId", "spanId", "parentSpanId"):
                    if key in sp:
                        sp[key] = base64.b64decode(sp[key]).hex()
    return doc


def fixture_bodies(fixtures: Path) -> list[bytes]:
    return [p.read_bytes() for p in sorted((fixtures / "otlp").glob("openinference-*.pb"))]
