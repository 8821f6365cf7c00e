"""Builders shared by the ingest unit tests: OTLP protobuf messages, OTLP JSON documents as the
OTel JS / Collector JSON exporters write them, the captured fixtures, hypothesis strategies."""

from __future__ import annotations

import base64
import math
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import orjson
from google.protobuf import json_format
from hypothesis import strategies as st
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import (
    AnyValue,
    ArrayValue,
    InstrumentationScope,
    KeyValue,
    KeyValueList,
)
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span, Status

from pharos.server.ingest.normalize import (
    CACHED_TOKEN_KEYS,
    COST_KEYS,
    INPUT_TOKEN_KEYS,
    INVOCATION_PARAMETER_KEYS,
    MODEL_KEYS,
    OUTPUT_TOKEN_KEYS,
    TOTAL_TOKEN_KEYS,
    Limits,
    NormalizedBatch,
    normalize_traces,
)

FIXTURES = Path(__file__).resolve().parents[3] / "shared" / "fixtures"
if not FIXTURES.exists():  # a checkout laid out without ../shared beside it
    FIXTURES = Path(os.environ.get("PHAROS_SHARED_FIXTURES", "/work/shared/fixtures"))
FIXTURE_FILES = sorted((FIXTURES / "otlp").glob("openinference-*.pb"))

T0 = 1_790_000_000_000_000_000  # 2026-09-21, a fixed "now" for hand-made spans
MS = 1_000_000
TRACE = 0x0AF7651916CD43DD8448EB211C80319C
SERVICE = "checkout-service"


def any_value(value: Any) -> AnyValue:
    """A Python value as an OTLP ``AnyValue`` (bytes, lists and dicts nest)."""
    if value is None:
        return AnyValue()
    if isinstance(value, bool):
        return AnyValue(bool_value=value)
    if isinstance(value, int):
        return AnyValue(int_value=value)
    if isinstance(value, float):
        return AnyValue(double_value=value)
    if isinstance(value, bytes):
        return AnyValue(bytes_value=value)
    if isinstance(value, list):
        return AnyValue(array_value=ArrayValue(values=[any_value(v) for v in value]))
    if isinstance(value, dict):
        return AnyValue(kvlist_value=KeyValueList(values=[kv(k, v) for k, v in value.items()]))
    return AnyValue(string_value=value)


def kv(key: str, value: Any) -> KeyValue:
    return KeyValue(key=key, value=any_value(value))


def attrs(items: dict[str, Any] | Iterable[tuple[str, Any]] | None) -> list[KeyValue]:
    pairs = items.items() if isinstance(items, dict) else (items or [])
    return [kv(k, v) for k, v in pairs]


def tid(n: int) -> bytes:
    return n.to_bytes(16, "big")


def sid(n: int) -> bytes:
    return n.to_bytes(8, "big")


def make_span(
    span_id: int | bytes,
    parent: int | bytes | None = None,
    *,
    trace: int | bytes = TRACE,
    name: str = "step",
    start_ms: float = 0,
    duration_ms: float = 10,
    start_ns: int | None = None,
    end_ns: int | None = None,
    attributes: dict[str, Any] | Iterable[tuple[str, Any]] | None = None,
    status: int = Status.STATUS_CODE_UNSET,
    message: str = "",
    kind: int = Span.SPAN_KIND_INTERNAL,
) -> Span:
    start = T0 + int(start_ms * MS) if start_ns is None else start_ns
    end = start + int(duration_ms * MS) if end_ns is None else end_ns
    return Span(
        trace_id=trace if isinstance(trace, bytes) else tid(trace),
        span_id=span_id if isinstance(span_id, bytes) else sid(span_id),
        parent_span_id=(parent if isinstance(parent, bytes) else sid(parent)) if parent else b"",
        name=name,
        kind=kind,  # type: ignore[arg-type]
        start_time_unix_nano=start,
        end_time_unix_nano=end,
        attributes=attrs(attributes),
        status=Status(code=status, message=message),  # type: ignore[arg-type]
    )


def make_request(
    spans: Iterable[Span],
    service: str | None = SERVICE,
    *,
    resource: dict[str, Any] | None = None,
    scope: str = "test-scope",
) -> ExportTraceServiceRequest:
    resource_attrs = dict(resource or {})
    if service is not None:
        resource_attrs.setdefault("service.name", service)
    return ExportTraceServiceRequest(
        resource_spans=[
            ResourceSpans(
                resource=Resource(attributes=attrs(resource_attrs)),
                scope_spans=[ScopeSpans(scope=InstrumentationScope(name=scope), spans=list(spans))],
            )
        ]
    )


def normalize(
    spans: Iterable[Span], service: str | None = SERVICE, limits: Limits | None = None
) -> NormalizedBatch:
    return normalize_traces(make_request(spans, service), limits or Limits())


def one(span: Span, service: str | None = SERVICE, limits: Limits | None = None) -> Any:
    """The single record of a one-span request (asserting it was not rejected)."""
    batch = normalize([span], service, limits)
    assert batch.rejected == 0, batch.error_message
    assert len(batch.spans) == 1
    return batch.spans[0]


def to_otlp_json(message: ExportTraceServiceRequest) -> dict[str, Any]:
    """OTLP JSON as the OTel JS and Collector JSON exporters write it: lowerCamelCase keys,
    trace/span ids as hex (not base64), 64-bit integers as strings, enums as integers."""
    doc = json_format.MessageToDict(message, use_integers_for_enums=True)
    for rs in doc.get("resourceSpans", []):
        for ss in rs.get("scopeSpans", []):
            for sp in ss.get("spans", []):
                _hex_ids(sp)
                for link in sp.get("links", []):
                    _hex_ids(link)
    return doc


def _hex_ids(obj: dict[str, Any]) -> None:
    for key in ("traceId", "spanId", "parentSpanId"):
        if key in obj:
            obj[key] = base64.b64decode(obj[key]).hex()


def json_body(message: ExportTraceServiceRequest) -> bytes:
    return orjson.dumps(to_otlp_json(message))


def fixture_requests() -> list[ExportTraceServiceRequest]:
    out = []
    for path in FIXTURE_FILES:
        request = ExportTraceServiceRequest()
        request.ParseFromString(path.read_bytes())
        out.append(request)
    return out


# --- hypothesis strategies ---------------------------------------------------------------------

CONVENTION_KEY_LIST: Sequence[str] = (
    "gen_ai.agent.name",
    "agent.name",
    "gen_ai.operation.name",
    "openinference.span.kind",
    *MODEL_KEYS,
    *INVOCATION_PARAMETER_KEYS,
    *INPUT_TOKEN_KEYS,
    *OUTPUT_TOKEN_KEYS,
    *CACHED_TOKEN_KEYS,
    *TOTAL_TOKEN_KEYS,
    *COST_KEYS,
)

keys = st.one_of(st.sampled_from(CONVENTION_KEY_LIST), st.text(max_size=12))

scalar_values = st.one_of(
    st.text(max_size=20),
    st.sampled_from(["chat", "LLM", "agent", "12", " 7 ", "²", "-3", '{"model": "m"}', "1e400"]),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=True, allow_infinity=True),
    st.binary(max_size=12),
)


def _nest(children: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(
        st.lists(children, max_size=3),
        st.dictionaries(st.text(max_size=6), children, max_size=3),
    )


#: Values of every ``AnyValue`` type (string, bool, int, double, bytes, array, kvlist, empty).
values = st.one_of(st.none(), st.recursive(scalar_values, _nest, max_leaves=8))
attribute_lists = st.lists(st.tuples(keys, values), max_size=8)


@st.composite
def spans(draw: st.DrawFn, *, valid_ids: bool = False) -> Span:
    if valid_ids:
        trace = draw(st.binary(min_size=16, max_size=16))
        span_id = draw(st.binary(min_size=8, max_size=8))
    else:
        trace = draw(st.one_of(st.binary(min_size=16, max_size=16), st.binary(max_size=17)))
        span_id = draw(st.one_of(st.binary(min_size=8, max_size=8), st.binary(max_size=9)))
    parent = draw(st.one_of(st.just(b""), st.binary(min_size=8, max_size=8), st.binary(max_size=9)))
    start = draw(st.one_of(st.integers(0, 2**64 - 1), st.integers(T0 - 10**12, T0 + 10**12)))
    end = draw(st.one_of(st.integers(0, 2**64 - 1), st.integers(start, start + 10**10)))
    events = draw(st.lists(st.tuples(st.text(max_size=10), attribute_lists), max_size=2))
    links = draw(
        st.lists(
            st.tuples(st.binary(max_size=16), st.binary(max_size=8), attribute_lists), max_size=2
        )
    )
    return Span(
        trace_id=trace,
        span_id=span_id,
        parent_span_id=parent,
        name=draw(st.text(max_size=30)),
        kind=draw(st.integers(0, 5)),
        start_time_unix_nano=start,
        end_time_unix_nano=min(end, 2**64 - 1),
        attributes=attrs(draw(attribute_lists)),
        events=[Span.Event(name=n, time_unix_nano=start, attributes=attrs(a)) for n, a in events],
        links=[Span.Link(trace_id=t, span_id=s, attributes=attrs(a)) for t, s, a in links],
        status=Status(code=draw(st.integers(0, 2)), message=draw(st.text(max_size=20))),
    )


@st.composite
def requests(draw: st.DrawFn, *, valid_ids: bool = False) -> ExportTraceServiceRequest:
    resource_spans = []
    for _ in range(draw(st.integers(1, 2))):
        resource = draw(
            st.lists(st.tuples(st.sampled_from(["service.name", "host"]), values), max_size=3)
        )
        scopes = [
            ScopeSpans(
                scope=InstrumentationScope(name=draw(st.text(max_size=10))),
                spans=draw(st.lists(spans(valid_ids=valid_ids), max_size=3)),
            )
            for _ in range(draw(st.integers(1, 2)))
        ]
        resource_spans.append(
            ResourceSpans(resource=Resource(attributes=attrs(resource)), scope_spans=scopes)
        )
    return ExportTraceServiceRequest(resource_spans=resource_spans)


def is_finite_json(value: Any) -> bool:
    """True when a parsed attributes document holds no float NaN/inf (they are stored as text)."""
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, list):
        return all(is_finite_json(v) for v in value)
    if isinstance(value, dict):
        return all(is_finite_json(v) for v in value.values())
    return True
