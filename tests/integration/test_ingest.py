"""OTLP/HTTP trace ingest against a real server on SQLite and PostgreSQL."""

from __future__ import annotations

import gzip
import threading

import httpx
import orjson
import pytest
from fastapi.testclient import TestClient
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceResponse,
)
from opentelemetry.proto.trace.v1.trace_pb2 import Span
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import SpanKind, StatusCode
from sqlalchemy import create_engine, func, select

from pharos.server.app import create_app
from pharos.server.db.schema import ROLLUP_TABLES, error_occurrences, llm_usage_daily
from pharos.server.db.schema import spans as spans_table
from pharos.server.settings import Settings
from tests.conftest import FIXTURES, RunningServer, ServerFactory
from tests.otlp_helpers import JSON, PROTOBUF, fixture_bodies, kv, request, span, to_otlp_json


def _provider(url: str, service: str, *, gzip_on: bool = False) -> TracerProvider:
    exporter = OTLPSpanExporter(
        endpoint=f"{url}/v1/traces",
        compression=Compression.Gzip if gzip_on else Compression.NoCompression,
    )
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    provider.add_span_processor(BatchSpanProcessor(exporter))
    return provider


def _count_spans(server: RunningServer) -> int:
    engine = create_engine(
        server.settings.database_url.replace("postgresql://", "postgresql+psycopg://")
    )
    try:
        with engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(spans_table)).scalar_one())
    finally:
        engine.dispose()


def _only_trace(server: RunningServer) -> dict:
    page = server.get("/api/v1/traces").json()
    assert len(page["items"]) == 1, page
    return page["items"][0]


@pytest.mark.parametrize("gzip_on", [False, True], ids=["plain", "gzip"])
def test_real_otel_exporter_agent_run_becomes_a_tree(server: RunningServer, gzip_on: bool) -> None:
    provider = _provider(server.url, "checkout-service", gzip_on=gzip_on)
    tracer = provider.get_tracer("test")
    with tracer.start_as_current_span(
        "invoke_agent checkout",
        kind=SpanKind.SERVER,
        attributes={"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "checkout"},
    ) as root:
        with tracer.start_as_current_span(
            "chat gpt-4o-mini",
            attributes={
                "gen_ai.operation.name": "chat",
                "gen_ai.request.model": "gpt-4o-mini",
                "gen_ai.response.model": "gpt-4o-mini-2024-07-18",
                "gen_ai.usage.input_tokens": 120,
                "gen_ai.usage.output_tokens": 30,
            },
        ):
            pass
        with tracer.start_as_current_span(
            "execute_tool charge_card",
            attributes={"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "charge"},
        ) as tool:
            tool.record_exception(TimeoutError("card processor timed out"))
            tool.set_status(StatusCode.ERROR, "TimeoutError: card processor timed out")
        trace_id = format(root.get_span_context().trace_id, "032x")
    assert provider.force_flush(10_000)
    provider.shutdown()

    summary = _only_trace(server)
    assert summary["trace_id"] == trace_id
    assert summary["agent"] == "checkout"
    assert summary["name"] == "invoke_agent checkout"
    assert summary["span_count"] == 3
    assert summary["error_count"] == 1
    assert summary["status"] == "error"
    assert summary["llm_calls"] == 1 and summary["tool_calls"] == 1
    assert summary["tokens"] == {"input": 120, "output": 30, "cached": 0, "total": 150}

    detail = server.get(f"/api/v1/traces/{trace_id}").json()
    spans = detail["spans"]
    assert [s["depth"] for s in spans] == [0, 1, 1]
    root_span, llm, tool_span = spans
    assert detail["roots"] == [root_span["span_id"]]
    assert root_span["kind"] == "agent" and root_span["span_kind"] == "server"
    assert set(root_span["children"]) == {llm["span_id"], tool_span["span_id"]}
    assert llm["kind"] == "llm" and llm["model"] == "gpt-4o-mini-2024-07-18"
    assert llm["agent"] == "checkout"
    assert llm["tokens"]["input"] == 120 and llm["tokens"]["output"] == 30
    assert tool_span["status"] == "error"
    assert tool_span["events"][0]["name"] == "exception"
    assert tool_span["events"][0]["attributes"]["exception.type"] == "TimeoutError"
    assert tool_span["attributes"]["gen_ai.tool.name"] == "charge"
    assert root_span["resource"]["service.name"] == "checkout-service"


def test_fixture_children_before_parent_form_one_tree_and_resend_is_idempotent(
    server: RunningServer,
) -> None:
    bodies = fixture_bodies(FIXTURES)
    assert len(bodies) == 5
    for _ in range(2):  # the second round is an exporter retrying everything
        for body in bodies:
            resp = server.post("/v1/traces", content=body, headers=PROTOBUF)
            assert resp.status_code == 200, resp.text
            assert resp.headers["content-type"] == "application/x-protobuf"
            parsed = ExportTraceServiceResponse.FromString(resp.content)
            assert parsed.partial_success.rejected_spans == 0

    summary = _only_trace(server)
    assert summary["span_count"] == 5
    assert summary["error_count"] == 1
    assert summary["name"] == "support-agent run"
    assert summary["agent"] == "support-agent"
    assert summary["llm_calls"] == 3
    assert summary["tokens"] == {
        "input": 57 + 21 + 5,
        "output": 9 + 2,
        "cached": 32,
        "total": 57 + 21 + 5 + 9 + 2,
    }
    assert summary["error_message"] == "RateLimitError: Error code: 429 - Rate limit reached"
    assert not summary["root_missing"]
    assert _count_spans(server) == 5

    detail = server.get(f"/api/v1/traces/{summary['trace_id']}").json()
    spans = detail["spans"]
    assert len(spans) == 5
    assert spans[0]["name"] == "support-agent run" and spans[0]["depth"] == 0
    assert all(s["depth"] == 1 for s in spans[1:])
    assert all(s["agent"] == "support-agent" for s in spans)
    by_model = {s["model"]: s for s in spans[1:]}
    assert by_model["gpt-4o-2024-08-06"]["tokens"] == {
        "input": 57,
        "output": 9,
        "cached": 32,
        "total": 66,
    }
    assert by_model["text-embedding-3-small"]["kind"] == "embedding"
    assert by_model["gpt-4o"]["status"] == "error"


def test_trace_summary_before_root_arrives(server: RunningServer) -> None:
    bodies = fixture_bodies(FIXTURES)
    for body in bodies[:4]:
        assert server.post("/v1/traces", content=body, headers=PROTOBUF).status_code == 200
    summary = _only_trace(server)
    assert summary["root_missing"] is True
    assert summary["span_count"] == 4
    assert summary["agent"] == "openinference-demo-agent"
    server.post("/v1/traces", content=bodies[4], headers=PROTOBUF)
    summary = _only_trace(server)
    assert summary["root_missing"] is False
    assert summary["agent"] == "support-agent"


def test_otlp_json_gzip_and_partial_success(server: RunningServer) -> None:
    good = span(0xA1, 1, name="plain op", attrs={"http.method": "GET"})
    bad = span(0xA1, 2, 1, name="bad id")
    bad.trace_id = b"\x01" * 8  # valid hex in JSON, but 8 bytes: rejected, not fatal
    doc = to_otlp_json(request([good, bad], service="json-service"))
    body = gzip.compress(orjson.dumps(doc))
    resp = server.post("/v1/traces", content=body, headers={**JSON, "content-encoding": "gzip"})
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"].startswith("application/json")
    partial = resp.json()["partialSuccess"]
    assert int(partial["rejectedSpans"]) == 1
    assert "trace_id must be 16" in partial["errorMessage"]
    summary = _only_trace(server)
    assert summary["agent"] == "json-service"  # plain OTel span: agent = service.name
    assert summary["span_count"] == 1

    # Full success in JSON is an empty ExportTraceServiceResponse.
    ok = server.post(
        "/v1/traces", content=orjson.dumps(to_otlp_json(request([span(0xA2, 1)]))), headers=JSON
    )
    assert ok.status_code == 200 and ok.json() == {}


def test_protobuf_partial_success(server: RunningServer) -> None:
    bad = span(0xB1, 2)
    bad.span_id = b""
    resp = server.post(
        "/v1/traces", content=request([span(0xB1, 1), bad]).SerializeToString(), headers=PROTOBUF
    )
    assert resp.status_code == 200
    parsed = ExportTraceServiceResponse.FromString(resp.content)
    assert parsed.partial_success.rejected_spans == 1
    assert "span_id" in parsed.partial_success.error_message


def test_nul_and_unicode_are_stored_on_every_dialect(server: RunningServer) -> None:
    hostile = span(
        0xC1,
        1,
        name="na\x00me <script>alert(1)</script> \u202e",
        attrs={"k\x00": "v\x00", "emoji": "🚀" * 10},
        error="bad\x00thing",
    )
    resp = server.post(
        "/v1/traces",
        content=request([hostile], service="svc\x00x").SerializeToString(),
        headers=PROTOBUF,
    )
    assert resp.status_code == 200, resp.text
    detail = server.get(f"/api/v1/traces/{0xC1:032x}").json()
    stored = detail["spans"][0]
    assert stored["name"] == "na\ufffdme <script>alert(1)</script> \u202e"
    assert stored["attributes"]["k\x00"] == "v\x00"  # JSON documents keep NUL escaped
    assert stored["status_message"] == "bad\ufffdthing"


def test_concurrent_exports_all_stored(server: RunningServer) -> None:
    errors: list[str] = []

    def client(n: int) -> None:
        with server.client() as c:
            for i in range(5):
                spans = [span(1000 + n * 10 + i, s + 1, s if s else None) for s in range(20)]
                r = c.post(
                    "/v1/traces", content=request(spans).SerializeToString(), headers=PROTOBUF
                )
                if r.status_code != 200:
                    errors.append(r.text)

    threads = [threading.Thread(target=client, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert _count_spans(server) == 8 * 5 * 20


def test_health_endpoints(server: RunningServer) -> None:
    assert server.get("/healthz").json() == {"status": "ok"}
    ready = server.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["checks"]["database"] == "ok"
    assert ready.json()["checks"]["writer"] == "running"


def test_openapi_docs_served(server: RunningServer) -> None:
    schema = server.get("/openapi.json").json()
    assert "/v1/traces" in schema["paths"]
    assert "/api/v1/traces/{trace_id}" in schema["paths"]


def test_demo_mode_loads_traffic(make_server: ServerFactory) -> None:
    srv = make_server(demo=True)
    with httpx.Client(base_url=srv.url, timeout=30) as c:
        for _ in range(300):
            items = c.get("/api/v1/traces", params={"limit": 500}).json()["items"]
            if len(items) >= 500:
                break
            threading.Event().wait(0.1)
    agents = {i["agent"] for i in items}
    assert len(items) >= 500
    assert {"support-bot", "research-agent", "sql-analyst"} <= agents
    assert any(i["status"] == "error" for i in items)
    assert max(i["duration_ms"] for i in items) > 5_000  # the long tail


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize("workers", [0, 2])
def test_parsing_in_process_or_in_workers(make_server: ServerFactory, workers: int) -> None:
    srv = make_server(ingest_workers=workers)
    for body in fixture_bodies(FIXTURES):
        assert srv.post("/v1/traces", content=body, headers=PROTOBUF).status_code == 200
    assert _only_trace(srv)["span_count"] == 5


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_a_dead_ingest_worker_is_replaced(make_server: ServerFactory) -> None:
    import os
    import signal

    srv = make_server(ingest_workers=1)
    pool = srv.app.state.parser._pool
    for pid in list(pool._processes):
        os.kill(pid, signal.SIGKILL)
    body = request([span(0xDEAD, 1)]).SerializeToString()
    first = srv.post("/v1/traces", content=body, headers=PROTOBUF)
    assert first.status_code in (200, 503)  # the request the dead worker held is retried
    if first.status_code == 503:
        assert first.headers["retry-after"]
    second = srv.post("/v1/traces", content=body, headers=PROTOBUF)
    assert second.status_code == 200
    assert srv.get(f"/api/v1/traces/{0xDEAD:032x}").status_code == 200


def test_agent_inherited_from_a_parent_stored_by_an_earlier_request(server: RunningServer) -> None:
    agent = {"gen_ai.agent.name": "planner", "gen_ai.operation.name": "invoke_agent"}
    first = request([span(0xF00, 1, attrs=agent), span(0xF00, 2, 1, name="step")])
    later = request(
        [
            span(
                0xF00,
                3,
                2,
                name="chat",
                attrs={"gen_ai.request.model": "m", "gen_ai.usage.input_tokens": 5},
            ),
            span(0xF00, 4, 3, name="inner"),
        ],
        service="svc",
    )
    for body in (first, later):
        assert (
            server.post(
                "/v1/traces", content=body.SerializeToString(), headers=PROTOBUF
            ).status_code
            == 200
        )
    engine = create_engine(server.settings.database_url)
    with engine.connect() as conn:
        stored = dict(conn.execute(select(spans_table.c.span_id, spans_table.c.agent)).all())
    engine.dispose()
    assert stored == {f"{i:016x}": "planner" for i in (1, 2, 3, 4)}
    summary = server.get(
        "/api/v1/metrics/summary", params={"window": "400d", "agent": "planner"}
    ).json()
    assert summary["llm_calls"] == 1 and summary["tokens"]["input"] == 5


def test_children_stored_before_their_agent_span_move_to_that_agent(
    server: RunningServer,
) -> None:
    """Exporters send a span when it ends, so a run's model calls often arrive before the
    agent span: once it arrives, their tokens and cost count for its agent, not the service."""
    model = {
        "gen_ai.operation.name": "chat",
        "gen_ai.request.model": "gpt-4o-mini",
        "gen_ai.usage.input_tokens": 1000,
        "gen_ai.usage.output_tokens": 100,
    }
    failing = span(0xF01, 4, 2, name="chat gpt-4o-mini", attrs=model, error="boom")
    failing.events.append(
        Span.Event(
            name="exception",
            time_unix_nano=failing.end_time_unix_nano,
            attributes=[kv("exception.type", "RateLimitError"), kv("exception.message", "429")],
        )
    )
    children = request(
        [
            span(0xF01, 2, 1, name="step"),
            span(0xF01, 3, 2, name="chat gpt-4o-mini", attrs=model),
            failing,
            span(0xF01, 5, 3, name="inner"),
        ],
        service="svc",
    )
    agent = {"gen_ai.agent.name": "planner", "gen_ai.operation.name": "invoke_agent"}
    root = request([span(0xF01, 1, attrs=agent, duration_ms=50)], service="svc")
    for body in (children, root, children):  # and a resend changes nothing
        resp = server.post("/v1/traces", content=body.SerializeToString(), headers=PROTOBUF)
        assert resp.status_code == 200

    engine = create_engine(server.settings.database_url)
    with engine.connect() as conn:
        stored = dict(conn.execute(select(spans_table.c.span_id, spans_table.c.agent)).all())
        leftovers = {
            name: conn.execute(
                select(func.count()).select_from(table).where(table.c.agent == "svc")
            ).scalar_one()
            for name, table in {
                **ROLLUP_TABLES,
                "usage": llm_usage_daily,
                "errors": error_occurrences,
            }.items()
        }
    engine.dispose()
    assert stored == {f"{i:016x}": "planner" for i in (1, 2, 3, 4, 5)}
    assert leftovers == {"1m": 0, "1h": 0, "1d": 0, "usage": 0, "errors": 0}
    [group] = server.get("/api/v1/errors", params={"window": "400d"}).json()["items"]
    assert (group["type"], group["count"], group["agents"]) == ("RateLimitError", 1, ["planner"])

    summary = server.get(
        "/api/v1/metrics/summary", params={"window": "400d", "agent": "planner"}
    ).json()
    assert summary["requests"] == 1
    assert summary["llm_calls"] == 2
    assert summary["tokens"] == {"input": 2000, "output": 200, "cached": 0, "total": 2200}
    # gpt-4o-mini: $0.15 / $0.60 per million input / output tokens
    assert summary["cost_usd"] == pytest.approx(2 * (1000 * 0.15 + 100 * 0.60) / 1e6)
    costs = server.get("/api/v1/costs", params={"window": "400d", "group_by": "agent"}).json()
    assert [group["agent"] for group in costs["groups"]] == ["planner"]


def test_head_healthz_for_load_balancers(server: RunningServer) -> None:
    with server.client() as c:
        assert c.head("/healthz").status_code == 200


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_unmigrated_database_refuses_to_start_with_the_fix(db_url: str) -> None:
    app = create_app(Settings(database_url=db_url, auto_migrate=False, port=0, grpc_port=0))
    with (
        pytest.raises(RuntimeError, match=r"migration none \(empty\).*pharos db upgrade"),
        TestClient(app),
    ):
        pass
