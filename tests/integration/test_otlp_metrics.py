"""OTLP metrics against a real server on SQLite and PostgreSQL: the read API over known points,
and the real OTel metric exporters (HTTP and gRPC) end to end."""

from __future__ import annotations

import gzip
import sqlite3
import threading
import time
from typing import Any

import grpc
import pytest
from google.protobuf import json_format
from google.rpc import status_pb2
from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import (
    OTLPMetricExporter as GrpcMetricExporter,
)
from opentelemetry.exporter.otlp.proto.http.metric_exporter import (
    OTLPMetricExporter as HttpMetricExporter,
)
from opentelemetry.metrics import Observation
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.metrics.v1 import metrics_pb2 as m
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.sdk.metrics import Counter, Histogram, MeterProvider, ObservableCounter
from opentelemetry.sdk.metrics.export import AggregationTemporality, PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource as SdkResource
from sqlalchemy import func, select

from pharos.server.db.engine import make_engine
from pharos.server.db.schema import metric_points
from pharos.server.ingest.metric_store import store_metric_points
from pharos.server.ingest.metrics import normalize_metrics
from pharos.server.ingest.normalize import Limits
from pharos.server.query.metrics import TooManyPoints, metric_points_of, metric_series_infos
from pharos.server.timeparse import iso_from_ns
from tests.conftest import RunningServer, ServerFactory
from tests.otlp_helpers import JSON, PROTOBUF, kv

S = 1_000_000_000


def _store(server: RunningServer, request: ExportMetricsServiceRequest) -> int:
    batch = normalize_metrics(request, Limits())
    assert batch.rejected == 0, batch.error_message
    engine = make_engine(server.settings.database_url)
    try:
        with engine.begin() as conn:
            return store_metric_points(conn, batch.points)
    finally:
        engine.dispose()


def _req(metrics: list[m.Metric], service: str = "svc") -> ExportMetricsServiceRequest:
    return ExportMetricsServiceRequest(
        resource_metrics=[
            m.ResourceMetrics(
                resource=Resource(attributes=[kv("service.name", service)]),
                scope_metrics=[m.ScopeMetrics(metrics=metrics)],
            )
        ]
    )


def _num(t_s: int, value: float, start_s: int | None, **attrs: str) -> m.NumberDataPoint:
    return m.NumberDataPoint(
        time_unix_nano=t_s * S,
        start_time_unix_nano=(start_s or 0) * S,
        as_double=value,
        attributes=[kv(k, v) for k, v in attrs.items()],
    )


def _minute_ago(n: int) -> int:
    return (int(time.time()) // 60 - n) * 60


def test_counter_rate_with_a_reset_and_idempotent_resend(server: RunningServer) -> None:
    base = _minute_ago(4)  # buckets: base-?.. now; points from base to base+3m
    start = base - 3600
    # tool=search: +60/min, then the process restarts at base+120 (value drops to 6).
    search = [
        _num(base + 15 * i, v, start, tool="search")
        for i, v in enumerate([0, 15, 30, 45, 60, 75, 90, 105])
    ]
    search += [
        _num(base + 120 + 15 * i, v, base + 118, tool="search")
        for i, v in enumerate([6, 21, 36, 51])
    ]
    fetch = [_num(base + 30 * i, 10.0 * i, start, tool="fetch") for i in range(6)]
    metric = m.Metric(
        name="agent.tool_calls",
        unit="{call}",
        description="Tool calls",
        sum=m.Sum(
            data_points=search + fetch,
            aggregation_temporality=m.AGGREGATION_TEMPORALITY_CUMULATIVE,
            is_monotonic=True,
        ),
    )
    request = _req([metric])
    assert _store(server, request) == 18
    assert _store(server, request) == 0  # a resend stores nothing twice

    names = server.get("/api/v1/metrics/names").json()["items"]
    (entry,) = names
    assert entry["name"] == "agent.tool_calls"
    assert (entry["type"], entry["temporality"], entry["monotonic"]) == ("sum", "cumulative", True)
    assert entry["unit"] == "{call}" and entry["description"] == "Tool calls"
    assert entry["agents"] == ["svc"] and entry["series_count"] == 2

    resp = server.get(
        "/api/v1/metrics/series",
        params={
            "name": "agent.tool_calls",
            "window": "10m",
            "interval": "1m",
            "group_by": "attr.tool",
        },
    )
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["aggregation"] == "rate" and body["interval_seconds"] == 60
    by_tool = {s["name"]: s for s in body["series"]}
    ts = body["timestamps"]
    k = ts.index(_iso(base))
    # search: first point is a baseline; minute 0: 15+15+15 = 45; minute 1: 60;
    # minute 2: the reset counts 6 from zero, then +15 x3 = 51; minute 3: nothing.
    assert by_tool["search"]["increase"][k : k + 4] == [45.0, 60.0, 51.0, None]
    assert by_tool["search"]["values"][k + 1] == pytest.approx(1.0)  # 60 per minute = 1/s
    assert by_tool["fetch"]["increase"][k : k + 3] == [10.0, 20.0, 20.0]
    # Without group_by the series are added up.
    total = server.get(
        "/api/v1/metrics/series",
        params={"name": "agent.tool_calls", "window": "10m", "interval": "1m"},
    ).json()
    assert total["series"][0]["increase"][k : k + 2] == [55.0, 80.0]
    # Filtering on an attribute.
    only = server.get(
        "/api/v1/metrics/series",
        params={
            "name": "agent.tool_calls",
            "window": "10m",
            "interval": "1m",
            "attr.tool": "fetch",
        },
    ).json()
    assert [s["series_count"] for s in only["series"]] == [1]
    assert only["series"][0]["increase"][k] == 10.0


def _iso(seconds: int) -> str:
    return iso_from_ns(seconds * S)


def test_gauge_last_value_and_histogram_quantiles(server: RunningServer) -> None:
    base = _minute_ago(3)
    gauge = m.Metric(
        name="process.memory.usage",
        unit="By",
        gauge=m.Gauge(
            data_points=[
                _num(base + 10, 100.0, None, host="a"),
                _num(base + 50, 200.0, None, host="a"),
                _num(base + 50, 400.0, None, host="b"),
            ]
        ),
    )

    # Cumulative histogram: minute 0 adds 10 observations in (0, 100], minute 1 adds 10 in
    # (100, 200]: p50 of minute 1 is 150.
    def hp(t: int, counts: list[int], total: float) -> m.HistogramDataPoint:
        return m.HistogramDataPoint(
            time_unix_nano=t * S,
            start_time_unix_nano=(base - 600) * S,
            count=sum(counts),
            sum=total,
            explicit_bounds=[0.0, 100.0, 200.0],
            bucket_counts=counts,
        )

    hist = m.Metric(
        name="llm.latency",
        unit="ms",
        histogram=m.Histogram(
            aggregation_temporality=m.AGGREGATION_TEMPORALITY_CUMULATIVE,
            data_points=[
                hp(base - 5, [0, 0, 0, 0], 0.0),
                hp(base + 30, [0, 10, 0, 0], 500.0),
                hp(base + 90, [0, 10, 10, 0], 2000.0),
            ],
        ),
    )
    _store(server, _req([gauge, hist]))

    g = server.get(
        "/api/v1/metrics/series",
        params={"name": "process.memory.usage", "window": "5m", "interval": "1m"},
    ).json()
    k = g["timestamps"].index(_iso(base))
    assert g["aggregation"] == "last" and g["agg"] == "avg"
    assert g["series"][0]["values"][k : k + 2] == [300.0, None]  # avg(last a=200, b=400)
    g_sum = server.get(
        "/api/v1/metrics/series",
        params={"name": "process.memory.usage", "window": "5m", "interval": "1m", "agg": "sum"},
    ).json()
    assert g_sum["series"][0]["values"][k] == 600.0

    h = server.get(
        "/api/v1/metrics/series",
        params={"name": "llm.latency", "window": "5m", "interval": "1m", "stat": "p50"},
    ).json()
    assert h["aggregation"] == "histogram"
    stats = h["series"][0]["stats"]
    assert stats["count"][k : k + 2] == [10, 10]
    assert stats["sum"][k : k + 2] == [500.0, 1500.0]
    assert stats["avg"][k + 1] == 150.0
    assert h["series"][0]["values"][k : k + 2] == [50.0, 150.0]  # p50
    assert stats["p99"][k] == pytest.approx(99.0)


@pytest.mark.parametrize(
    ("params", "status", "message"),
    [
        ({"name": "nope"}, 404, "no metric named 'nope'"),
        ({}, 400, "name"),
        ({"name": "x", "window": "5s"}, 400, "window"),
        ({"name": "x", "group_by": "tool"}, 400, "group_by: must be agent or attr.<key>"),
        ({"name": "x", "stat": "p42"}, 400, "stat"),
        ({"name": "x", "interval": "1m", "window": "30d"}, 400, "more than 1000 points"),
    ],
)
def test_series_bad_input_is_a_clear_4xx(
    server: RunningServer, params: dict[str, str], status: int, message: str
) -> None:
    resp = server.get("/api/v1/metrics/series", params=params)
    assert resp.status_code == status, resp.text
    assert message in resp.json()["error"]["message"]


def test_analytics_routes_are_not_shadowed(server: RunningServer) -> None:
    assert server.get("/api/v1/metrics/summary").status_code == 200
    assert server.get("/api/v1/metrics/timeseries").status_code == 200
    assert server.get("/api/v1/metrics/names").json() == {"items": []}


# --- the real OTel exporters -------------------------------------------------------------------


def _provider(server: RunningServer, transport: str, temporality: str) -> MeterProvider:
    preferred = {}
    if temporality == "delta":
        preferred = {
            Counter: AggregationTemporality.DELTA,
            Histogram: AggregationTemporality.DELTA,
            ObservableCounter: AggregationTemporality.DELTA,
        }
    if transport == "http":
        exporter: Any = HttpMetricExporter(
            endpoint=f"{server.url}/v1/metrics", preferred_temporality=preferred
        )
    else:
        exporter = GrpcMetricExporter(
            endpoint=server.grpc_target, insecure=True, preferred_temporality=preferred
        )
    reader = PeriodicExportingMetricReader(exporter, export_interval_millis=3_600_000)
    return MeterProvider(
        resource=SdkResource.create({"service.name": "metrics-service", "host.name": "h1"}),
        metric_readers=[reader],
    )


@pytest.mark.parametrize(
    ("transport", "temporality"),
    [("http", "cumulative"), ("grpc", "cumulative"), ("http", "delta")],
)
def test_real_otel_metric_exporters(
    server: RunningServer, transport: str, temporality: str
) -> None:
    provider = _provider(server, transport, temporality)
    meter = provider.get_meter("test")
    tool_calls = meter.create_counter("agent.tool_calls", unit="{call}", description="Tool calls")
    conversations = meter.create_up_down_counter("agent.conversations.active")
    latency = meter.create_histogram("agent.tool.duration", unit="ms")
    memory = [100.0]
    meter.create_observable_gauge(
        "process.memory.usage",
        callbacks=[lambda _options: [Observation(memory[0], {"gen_ai.agent.name": "planner"})]],
        unit="By",
    )

    tool_calls.add(5, {"tool": "search"})
    tool_calls.add(2, {"tool": "fetch"})
    conversations.add(3)
    for value in (5, 15, 150, 700):
        latency.record(value)
    assert provider.force_flush(30_000)  # True only once the export was acknowledged
    tool_calls.add(3, {"tool": "search"})
    conversations.add(-1)
    memory[0] = 250.0
    assert provider.force_flush(30_000)
    provider.shutdown()

    names = {n["name"]: n for n in server.get("/api/v1/metrics/names").json()["items"]}
    assert set(names) == {
        "agent.tool_calls",
        "agent.conversations.active",
        "agent.tool.duration",
        "process.memory.usage",
    }
    counter = names["agent.tool_calls"]
    assert (counter["type"], counter["monotonic"], counter["temporality"]) == (
        "sum",
        True,
        temporality,
    )
    assert counter["agents"] == ["metrics-service"] and counter["series_count"] == 2
    assert names["process.memory.usage"]["type"] == "gauge"
    assert names["process.memory.usage"]["agents"] == ["planner"]  # from the point attribute
    assert names["agent.tool.duration"]["type"] == "histogram"

    def series(name: str, **params: str) -> dict[str, Any]:
        resp = server.get(
            "/api/v1/metrics/series",
            params={"name": name, "window": "10m", "interval": "1m", **params},
        )
        assert resp.status_code == 200, resp.text
        return resp.json()

    def total(values: list[float | None]) -> float:
        return sum(v for v in values if v is not None)

    calls = series("agent.tool_calls", group_by="attr.tool")
    assert calls["aggregation"] == "rate"
    increases = {s["name"]: total(s["increase"]) for s in calls["series"]}
    assert increases == {"search": 8.0, "fetch": 2.0}

    open_now = series("agent.conversations.active")  # up-down counters stay cumulative
    assert open_now["aggregation"] == "last"
    assert [v for v in open_now["series"][0]["values"] if v is not None][-1] == 2.0

    mem = series("process.memory.usage")
    assert [v for v in mem["series"][0]["values"] if v is not None][-1] == 250.0

    hist = series("agent.tool.duration", stat="p50")
    stats = hist["series"][0]["stats"]
    assert total(stats["count"]) == 4
    assert total(stats["sum"]) == 870.0
    k = next(i for i, c in enumerate(stats["count"]) if c)
    # Default bounds (0, 5, 10, 25, ...): 5 | 15 in (10, 25] | 150 | 700: the median is the top
    # of (10, 25]; p99 interpolates in (500, 750] and is clamped to max = 700.
    assert hist["series"][0]["values"][k] == 25.0
    assert stats["p99"][k] == 700.0


# --- POST /v1/metrics and MetricsService/Export: the contract ---------------------------------

METRICS_EXPORT = "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export"


def _gauge_request(value: float, name: str = "queue.depth") -> ExportMetricsServiceRequest:
    t = _minute_ago(1)
    return _req([m.Metric(name=name, gauge=m.Gauge(data_points=[_num(t, value, None)]))])


def _point_count(server: RunningServer) -> int:
    engine = make_engine(server.settings.database_url)
    try:
        with engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(metric_points)).scalar_one())
    finally:
        engine.dispose()


def test_http_protobuf_gzip_and_resend(server: RunningServer) -> None:
    body = _gauge_request(7.0).SerializeToString()
    for _ in range(2):
        resp = server.post(
            "/v1/metrics",
            content=gzip.compress(body),
            headers={**PROTOBUF, "content-encoding": "gzip"},
        )
        assert resp.status_code == 200, resp.text
        assert resp.headers["content-type"] == "application/x-protobuf"
        assert ExportMetricsServiceResponse.FromString(resp.content) == (
            ExportMetricsServiceResponse()
        )
    assert _point_count(server) == 1  # the resend stored nothing twice


def test_http_json_partial_success_names_the_unsupported_summary(server: RunningServer) -> None:
    request = _gauge_request(1.0)
    request.resource_metrics[0].scope_metrics[0].metrics.append(
        m.Metric(
            name="legacy.latency",
            summary=m.Summary(
                data_points=[m.SummaryDataPoint(time_unix_nano=_minute_ago(1) * S, count=1)]
            ),
        )
    )
    resp = server.post("/v1/metrics", content=json_format.MessageToJson(request), headers=JSON)
    assert resp.status_code == 200, resp.text
    partial = resp.json()["partialSuccess"]
    assert partial["rejectedDataPoints"] == "1"
    assert "metric 'legacy.latency': summary metrics are not supported" in partial["errorMessage"]
    assert _point_count(server) == 1


@pytest.mark.parametrize(
    ("body", "headers", "status", "message"),
    [
        (b"\xff\xff\xff", PROTOBUF, 400, "invalid protobuf ExportMetricsServiceRequest"),
        (b"{nope", JSON, 400, "invalid JSON"),
        (b"x", {"content-type": "text/plain"}, 415, "unsupported content type"),
        (b"x", {**PROTOBUF, "content-encoding": "br"}, 415, "unsupported Content-Encoding"),
        (b"not gzip", {**PROTOBUF, "content-encoding": "gzip"}, 400, "invalid gzip body"),
    ],
)
def test_http_bad_input_is_a_clear_4xx(
    server: RunningServer, body: bytes, headers: dict[str, str], status: int, message: str
) -> None:
    resp = server.post("/v1/metrics", content=body, headers=headers)
    assert resp.status_code == status
    if headers.get("content-type") == PROTOBUF["content-type"]:  # a google.rpc.Status
        assert message in status_pb2.Status.FromString(resp.content).message
    else:
        assert message in resp.json()["error"]["message"]


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_http_metrics_bomb_is_refused(make_server: ServerFactory) -> None:
    srv = make_server(max_decompressed_bytes=1024)
    request = _gauge_request(1.0)
    request.resource_metrics[0].resource.attributes.append(kv("blob", "x" * 100_000))
    bomb = gzip.compress(request.SerializeToString())
    resp = srv.post("/v1/metrics", content=bomb, headers={**PROTOBUF, "content-encoding": "gzip"})
    assert resp.status_code == 413


def _grpc_export(server: RunningServer, body: bytes) -> tuple[bytes | None, grpc.RpcError | None]:
    with grpc.insecure_channel(server.grpc_target) as channel:
        call = channel.unary_unary(
            METRICS_EXPORT, request_serializer=None, response_deserializer=None
        )
        try:
            return call(body, timeout=30), None
        except grpc.RpcError as exc:
            return None, exc


def test_grpc_metrics_partial_success_and_bad_input(server: RunningServer) -> None:
    request = _gauge_request(3.0)
    request.resource_metrics[0].scope_metrics[0].metrics.append(
        m.Metric(name="no.time", gauge=m.Gauge(data_points=[m.NumberDataPoint(as_double=1.0)]))
    )
    raw, error = _grpc_export(server, request.SerializeToString())
    assert error is None and raw is not None
    partial = ExportMetricsServiceResponse.FromString(raw).partial_success
    assert partial.rejected_data_points == 1
    assert "metric 'no.time': time_unix_nano is missing" in partial.error_message
    assert _point_count(server) == 1
    _, error = _grpc_export(server, b"\xff\xff\xff")
    assert error is not None and error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "invalid protobuf ExportMetricsServiceRequest" in (error.details() or "")


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_overloaded_metrics_ingest_refuses_and_stores_nothing(
    make_server: ServerFactory, db_url: str
) -> None:
    srv = make_server(writer_queue_size=1, retry_after_seconds=2)
    lock = sqlite3.connect(
        db_url.removeprefix("sqlite:///"), isolation_level=None, check_same_thread=False
    )
    lock.execute("BEGIN IMMEDIATE")
    results: dict[int, int] = {}

    def send(i: int) -> None:
        body = _gauge_request(float(i), name=f"m{i}").SerializeToString()
        results[i] = srv.post("/v1/metrics", content=body, headers=PROTOBUF).status_code

    threads = [threading.Thread(target=send, args=(i,)) for i in range(4)]
    try:
        for t in threads:
            t.start()
            time.sleep(0.15)
        deadline = time.monotonic() + 10
        while sum(1 for c in results.values() if c == 503) < 2:
            assert time.monotonic() < deadline, results
            time.sleep(0.05)
        assert len(results) == 2, "acknowledged while the database was locked"
    finally:
        lock.execute("COMMIT")
        lock.close()
        for t in threads:
            t.join()
    assert sorted(results.values()) == [200, 200, 503, 503]
    stored = {n["name"] for n in srv.get("/api/v1/metrics/names").json()["items"]}
    assert stored == {f"m{i}" for i, code in results.items() if code == 200}


def test_reading_is_bounded(server: RunningServer) -> None:
    base = _minute_ago(3)
    points = [_num(base + 10 * i, float(i), None) for i in range(5)]
    _store(server, _req([m.Metric(name="g", gauge=m.Gauge(data_points=points))]))
    engine = make_engine(server.settings.database_url)
    try:
        with engine.connect() as conn:
            keys = [i.key for i in metric_series_infos(conn, "g")]
            assert len(metric_points_of(conn, keys, 0, 2**62, max_points=5)[keys[0]]) == 5
            with pytest.raises(TooManyPoints, match="more than 4 data points"):
                metric_points_of(conn, keys, 0, 2**62, max_points=4)
    finally:
        engine.dispose()
