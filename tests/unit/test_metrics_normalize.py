"""Decoding and normalizing OTLP metrics into point records."""

from __future__ import annotations

import itertools
import math

import orjson
import pytest
from google.protobuf import json_format
from hypothesis import given
from hypothesis import strategies as st
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.proto.metrics.v1 import metrics_pb2 as m
from opentelemetry.proto.resource.v1.resource_pb2 import Resource

from pharos.server.ingest.decode import JSON, PROTOBUF, DecodeError
from pharos.server.ingest.metrics import (
    decode_metrics,
    exponential_to_explicit,
    normalize_metrics,
    parse_metrics,
)
from pharos.server.ingest.normalize import Limits
from tests.otlp_helpers import kv

T = 1_790_000_000_000_000_000
START = T - 60_000_000_000


def _request(*metrics: m.Metric, resource: dict[str, str] | None = None) -> bytes:
    res = resource if resource is not None else {"service.name": "svc"}
    req = ExportMetricsServiceRequest(
        resource_metrics=[
            m.ResourceMetrics(
                resource=Resource(attributes=[kv(k, v) for k, v in res.items()]),
                scope_metrics=[m.ScopeMetrics(metrics=list(metrics))],
            )
        ]
    )
    return bytes(req.SerializeToString())


def _number(
    value: float | int, attrs: dict[str, object] | None = None, **kw: int
) -> m.NumberDataPoint:
    p = m.NumberDataPoint(
        time_unix_nano=kw.get("time", T),
        start_time_unix_nano=kw.get("start", START),
        attributes=[kv(k, v) for k, v in (attrs or {}).items()],
    )
    if isinstance(value, int):
        p.as_int = value
    else:
        p.as_double = value
    return p


def _parse(body: bytes):  # type: ignore[no-untyped-def]
    return parse_metrics(body, PROTOBUF, Limits())


def test_counter_gauge_and_updown() -> None:
    body = _request(
        m.Metric(
            name="tool_calls",
            unit="{call}",
            description="Tool calls",
            sum=m.Sum(
                data_points=[_number(5, {"tool": "search"})],
                aggregation_temporality=m.AGGREGATION_TEMPORALITY_CUMULATIVE,
                is_monotonic=True,
            ),
        ),
        m.Metric(name="mem", unit="By", gauge=m.Gauge(data_points=[_number(1.5e9)])),
        m.Metric(
            name="active",
            sum=m.Sum(
                data_points=[_number(-2)],
                aggregation_temporality=m.AGGREGATION_TEMPORALITY_DELTA,
                is_monotonic=False,
            ),
        ),
    )
    batch = _parse(body)
    assert batch.rejected == 0
    calls, mem, active = batch.points
    assert (calls.name, calls.type, calls.temporality, calls.monotonic) == (
        "tool_calls",
        "sum",
        "cumulative",
        True,
    )
    assert calls.value == 5.0 and calls.unit == "{call}" and calls.description == "Tool calls"
    assert calls.start_ns == START and calls.time_ns == T
    assert orjson.loads(calls.attributes) == {"tool": "search"}
    assert orjson.loads(calls.resource) == {"service.name": "svc"}
    assert calls.agent == "svc"
    assert (mem.type, mem.temporality, mem.value) == ("gauge", "", 1.5e9)
    assert (active.temporality, active.monotonic, active.value) == ("delta", False, -2.0)


def test_agent_from_point_then_resource_then_service() -> None:
    g = m.Metric(
        name="x",
        gauge=m.Gauge(
            data_points=[_number(1.0, {"gen_ai.agent.name": "planner"}), _number(2.0, {"k": "v"})]
        ),
    )
    points = _parse(_request(g, resource={"service.name": "svc", "agent.name": "res-agent"})).points
    assert [p.agent for p in points] == ["planner", "res-agent"]
    points = _parse(_request(g, resource={})).points
    assert [p.agent for p in points] == ["planner", "unknown"]


def test_series_key_groups_points_of_one_series() -> None:
    def key(attrs: dict[str, object], time: int = T, name: str = "x") -> str:
        g = m.Metric(name=name, gauge=m.Gauge(data_points=[_number(1.0, attrs, time=time)]))
        return _parse(_request(g)).points[0].series_key

    assert key({"a": "1", "b": "2"}) == key({"b": "2", "a": "1"}, time=T + 10)  # order, time
    assert key({"a": "1"}) != key({"a": "2"})
    assert key({"a": "1"}) != key({"a": "1"}, name="y")
    g = m.Metric(name="x", gauge=m.Gauge(data_points=[_number(1.0, {"a": "1"})]))
    other_host = _parse(_request(g, resource={"service.name": "svc", "host.name": "h2"}))
    assert other_host.points[0].series_key != key({"a": "1"})


def test_histogram_kept_with_buckets() -> None:
    h = m.Metric(
        name="latency",
        unit="ms",
        histogram=m.Histogram(
            aggregation_temporality=m.AGGREGATION_TEMPORALITY_DELTA,
            data_points=[
                m.HistogramDataPoint(
                    time_unix_nano=T,
                    count=6,
                    sum=123.0,
                    min=1.0,
                    max=80.0,
                    explicit_bounds=[10.0, 50.0],
                    bucket_counts=[2, 3, 1],
                )
            ],
        ),
    )
    (p,) = _parse(_request(h)).points
    assert (p.type, p.count, p.sum, p.min, p.max) == ("histogram", 6, 123.0, 1.0, 80.0)
    assert orjson.loads(p.bounds or "") == [10.0, 50.0]
    assert orjson.loads(p.counts or "") == [2, 3, 1]


def test_bad_points_are_rejected_with_reasons_not_fatal() -> None:
    good = _number(1.0)
    no_time = _number(2.0, time=0)
    nan = _number(math.nan)
    h_bad = m.HistogramDataPoint(
        time_unix_nano=T, count=3, explicit_bounds=[1.0], bucket_counts=[3]
    )
    h_unsorted = m.HistogramDataPoint(
        time_unix_nano=T, count=3, explicit_bounds=[5.0, 1.0], bucket_counts=[1, 1, 1]
    )
    h_sum = m.HistogramDataPoint(
        time_unix_nano=T, count=9, explicit_bounds=[1.0], bucket_counts=[1, 1]
    )
    summary = m.Metric(
        name="legacy", summary=m.Summary(data_points=[m.SummaryDataPoint(time_unix_nano=T)] * 2)
    )
    batch = _parse(
        _request(
            m.Metric(name="g", gauge=m.Gauge(data_points=[good, no_time, nan])),
            m.Metric(
                name="h",
                histogram=m.Histogram(
                    aggregation_temporality=m.AGGREGATION_TEMPORALITY_CUMULATIVE,
                    data_points=[h_bad, h_unsorted, h_sum],
                ),
            ),
            summary,
            m.Metric(name="s", sum=m.Sum(data_points=[_number(1)])),  # no temporality
            m.Metric(name="empty"),
        )
    )
    assert len(batch.points) == 1
    assert batch.rejected == 2 + 3 + 2 + 1 + 1
    message = batch.error_message
    assert message.startswith("9 data point(s) rejected: ")
    assert "time_unix_nano is missing" in message
    assert "summary metrics are not supported" not in message or "legacy" in message


def test_summary_rejection_says_unsupported() -> None:
    summary = m.Metric(
        name="legacy", summary=m.Summary(data_points=[m.SummaryDataPoint(time_unix_nano=T)])
    )
    batch = _parse(_request(summary))
    assert batch.rejected == 1
    assert "metric 'legacy': summary metrics are not supported" in batch.error_message


def test_no_recorded_value_points_are_skipped_silently() -> None:
    p = _number(1.0)
    p.flags = 1
    batch = _parse(_request(m.Metric(name="g", gauge=m.Gauge(data_points=[p]))))
    assert batch.points == [] and batch.rejected == 0


def test_exponential_histogram_becomes_explicit_buckets() -> None:
    # scale 0: base 2. positive offset 0: buckets (1,2], (2,4], (4,8]; zero bucket 1; one
    # negative bucket index 0: (-2,-1].
    point = m.ExponentialHistogramDataPoint(
        time_unix_nano=T,
        count=1 + 1 + 2 + 3 + 4,
        sum=30.0,
        scale=0,
        zero_count=1,
        positive=m.ExponentialHistogramDataPoint.Buckets(offset=0, bucket_counts=[2, 3, 4]),
        negative=m.ExponentialHistogramDataPoint.Buckets(offset=0, bucket_counts=[1]),
    )
    metric = m.Metric(
        name="e",
        exponential_histogram=m.ExponentialHistogram(
            aggregation_temporality=m.AGGREGATION_TEMPORALITY_DELTA, data_points=[point]
        ),
    )
    batch = _parse(_request(metric))
    assert batch.rejected == 0, batch.error_message
    (p,) = batch.points
    assert p.type == "histogram" and p.count == 11
    bounds, counts = orjson.loads(p.bounds or ""), orjson.loads(p.counts or "")
    assert bounds == [-2.0, -1.0, 0.0, 1.0, 2.0, 4.0, 8.0]
    assert counts == [0, 1, 1, 0, 2, 3, 4, 0]  # the zeros in (-1, 0]


@given(
    st.integers(min_value=-3, max_value=6),
    st.integers(min_value=0, max_value=5),
    st.integers(min_value=-20, max_value=20),
    st.lists(st.integers(min_value=0, max_value=100), max_size=30),
    st.integers(min_value=-20, max_value=20),
    st.lists(st.integers(min_value=0, max_value=100), max_size=30),
)
def test_exponential_conversion_keeps_every_count_in_increasing_buckets(
    scale: int,
    zero: int,
    pos_offset: int,
    pos: list[int],
    neg_offset: int,
    neg: list[int],
) -> None:
    bounds, counts = exponential_to_explicit(scale, zero, 0.0, pos_offset, pos, neg_offset, neg)
    assert sum(counts) == zero + sum(pos) + sum(neg)
    assert all(b < a for b, a in itertools.pairwise(bounds))
    assert len(counts) == len(bounds) + 1 or (not bounds and counts == [0, 0])


def test_json_body_with_hex_exemplar_ids() -> None:
    doc = {
        "resourceMetrics": [
            {
                "resource": {
                    "attributes": [{"key": "service.name", "value": {"stringValue": "s"}}]
                },
                "scopeMetrics": [
                    {
                        "metrics": [
                            {
                                "name": "requests",
                                "sum": {
                                    "aggregationTemporality": 2,
                                    "isMonotonic": True,
                                    "dataPoints": [
                                        {
                                            "asInt": "42",
                                            "timeUnixNano": str(T),
                                            "startTimeUnixNano": str(START),
                                            "exemplars": [
                                                {
                                                    "asInt": "1",
                                                    "timeUnixNano": str(T),
                                                    "traceId": "5b8efff798038103d269b633813fc60c",
                                                    "spanId": "eee19b7ec3c1b17",
                                                }
                                            ],
                                        }
                                    ],
                                },
                            }
                        ]
                    }
                ],
            }
        ]
    }
    batch = parse_metrics(orjson.dumps(doc), JSON, Limits())
    assert [(p.name, p.value, p.agent) for p in batch.points] == [("requests", 42.0, "s")]


@pytest.mark.parametrize(
    ("body", "content_type", "message"),
    [
        (b"\xff\xff garbage", PROTOBUF, "invalid protobuf ExportMetricsServiceRequest"),
        (b"{not json", JSON, "invalid JSON"),
        (b"[1]", JSON, "must be a JSON object"),
        (b'{"resourceMetrics": 3}', JSON, "invalid OTLP JSON"),
    ],
)
def test_decode_errors_name_the_problem(body: bytes, content_type: str, message: str) -> None:
    with pytest.raises(DecodeError, match=message):
        decode_metrics(body, content_type)


def test_json_roundtrip_of_a_protobuf_request() -> None:
    body = _request(m.Metric(name="g", gauge=m.Gauge(data_points=[_number(3.0)])))
    doc = json_format.MessageToJson(ExportMetricsServiceRequest.FromString(body))
    batch = normalize_metrics(decode_metrics(doc.encode(), JSON), Limits())
    assert [p.value for p in batch.points] == [3.0]
