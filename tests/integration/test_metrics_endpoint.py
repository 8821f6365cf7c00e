"""GET /metrics on a real server: exact per-agent values, own health, promtool-valid output."""

from __future__ import annotations

import gzip
import os
import shutil
import sqlite3
import subprocess
import threading
import time
from pathlib import Path

import grpc
import pytest
from prometheus_client.parser import text_string_to_metric_families

from pharos.server.ops.memory import malloc_stats
from tests.conftest import RunningServer, ServerFactory
from tests.log_helpers import log_record, logs_request
from tests.otlp_helpers import PROTOBUF, request, span

ROOT = Path(__file__).resolve().parents[2]
NS = 1_000_000_000


def _promtool() -> str:
    tool = shutil.which("promtool")
    if tool is None:
        if os.environ.get("PHAROS_TEST_REQUIRE_SERVICES") == "1":
            pytest.fail("promtool is required in CI (Debian package prometheus)")
        pytest.skip("promtool not installed (apt-get install prometheus)")
    return tool


def _seed(server: RunningServer) -> None:
    now_ms = (time.time_ns() - 5 * 60 * NS - 1_790_000_000_000_000_000) / 1e6
    batch = []
    for i in range(10):
        agent = "alpha" if i < 6 else "beta"
        root = span(
            0x5000 + i,
            1,
            start_ms=now_ms,
            duration_ms=200 * (i + 1),
            attrs={"gen_ai.agent.name": agent, "gen_ai.operation.name": "invoke_agent"},
            error="boom" if i in (0, 7) else None,
        )
        llm = span(
            0x5000 + i,
            2,
            1,
            start_ms=now_ms,
            duration_ms=100,
            attrs={
                "gen_ai.operation.name": "chat",
                "gen_ai.request.model": "gpt-x",
                "gen_ai.usage.input_tokens": 100,
                "gen_ai.usage.output_tokens": 10,
                "gen_ai.usage.cost": 0.25,
            },
        )
        batch += [root, llm]
    assert (
        server.post(
            "/v1/traces", content=request(batch).SerializeToString(), headers=PROTOBUF
        ).status_code
        == 200
    )


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def test_metrics_values(server: RunningServer) -> None:
    _seed(server)
    logs_body = logs_request([log_record(f"line {i}") for i in range(3)]).SerializeToString()
    for _ in range(2):  # the resend is counted as duplicates, not as ingested
        assert server.post("/v1/logs", content=logs_body, headers=PROTOBUF).status_code == 200
    server.get("/api/v1/traces/" + "ab" * 16)  # a 404 on a templated route
    resp = server.get("/metrics")
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("text/plain")
    s = _samples(resp.text)
    assert s[("pharos_agent_requests_total", (("agent", "alpha"), ("status", "ok")))] == 5
    assert s[("pharos_agent_requests_total", (("agent", "alpha"), ("status", "error")))] == 1
    assert s[("pharos_agent_requests_total", (("agent", "beta"), ("status", "error")))] == 1
    assert s[("pharos_agent_request_duration_seconds_count", (("agent", "alpha"),))] == 6
    assert (
        s[("pharos_agent_request_duration_seconds_bucket", (("agent", "alpha"), ("le", "+Inf")))]
        == 6
    )
    assert (
        s[("pharos_agent_request_duration_seconds_bucket", (("agent", "alpha"), ("le", "0.25")))]
        == 1
    )  # 200 ms
    assert s[("pharos_agent_request_duration_seconds_sum", (("agent", "alpha"),))] == (
        pytest.approx(0.2 + 0.4 + 0.6 + 0.8 + 1.0 + 1.2)
    )
    key = (("agent", "alpha"), ("direction", "input"), ("model", "gpt-x"))
    assert s[("pharos_llm_tokens_total", key)] == 600
    assert s[("pharos_llm_cost_usd_total", (("agent", "alpha"), ("model", "gpt-x")))] == 1.5
    assert s[("pharos_alerts_firing", ())] == 0
    assert s[("pharos_spans_ingested_total", ())] == 20
    assert s[("pharos_logs_ingested_total", ())] == 3
    assert s[("pharos_logs_duplicate_total", ())] == 3
    assert s[("pharos_ingest_queue_capacity", ())] == server.settings.writer_queue_size
    routes = {dict(k[1]).get("route") for k in s if k[0].startswith("pharos_http_request")}
    assert "/api/v1/traces/{trace_id}" in routes
    assert not any(r and "abab" in r for r in routes)  # templates, never raw paths
    assert ("process_resident_memory_bytes", ()) in s
    if malloc_stats() is not None:  # glibc (Linux distributions' Pythons, this CI)
        in_use = s[("pharos_memory_bytes", (("pool", "malloc_in_use"),))]
        assert in_use > 1_000_000
        assert s[("pharos_memory_bytes", (("pool", "malloc_free"),))] >= 0
        if server.settings.database_url.startswith("sqlite"):  # the server's own connections
            assert 0 < s[("pharos_memory_bytes", (("pool", "sqlite"),))] < in_use


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_agent_label_cardinality_is_capped(make_server, db_url: str) -> None:
    srv = make_server(metrics_max_agents=2)
    batch = [span(0x6000 + i, 1, attrs={"gen_ai.agent.name": f"agent-{i}"}) for i in range(5)]
    srv.post("/v1/traces", content=request(batch).SerializeToString(), headers=PROTOBUF)
    agents = {
        dict(k[1])["agent"]
        for k in _samples(srv.get("/metrics").text)
        if k[0] == "pharos_agent_requests_total"
    }
    assert len(agents) == 3 and "other" in agents


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_promtool_accepts_the_scrape_and_the_rules(server: RunningServer, db_url: str) -> None:
    tool = _promtool()
    _seed(server)
    scrape = server.get("/metrics").text
    checked = subprocess.run(
        [tool, "check", "metrics"], input=scrape, capture_output=True, text=True, timeout=60
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    rules = subprocess.run(
        [tool, "check", "rules", str(ROOT / "deploy/prometheus/rules.yml")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert rules.returncode == 0, rules.stdout + rules.stderr
    assert "SUCCESS" in rules.stdout


def _rejections(server: RunningServer) -> dict[tuple[str, ...], float]:
    """Non-zero ``pharos_ingest_rejected*_total`` series: (name, signal, transport[, reason])."""
    out = {}
    for (name, labels), value in _samples(server.get("/metrics").text).items():
        if name in (REJECTED, ITEMS) and value:
            label = dict(labels)
            key = (name, label["signal"], label["transport"])
            out[key + ((label["reason"],) if "reason" in label else ())] = value
    return out


def _grpc_export(server: RunningServer, service: str, body: bytes) -> grpc.RpcError | None:
    method = f"/opentelemetry.proto.collector.{service}/Export"
    with grpc.insecure_channel(server.grpc_target) as channel:
        call = channel.unary_unary(method, request_serializer=None, response_deserializer=None)
        try:
            call(body, timeout=30)
        except grpc.RpcError as exc:
            return exc
    return None


REJECTED = "pharos_ingest_rejected_total"
ITEMS = "pharos_ingest_rejected_items_total"


def test_every_ingest_refusal_is_counted_by_signal_transport_and_reason(
    make_server: ServerFactory,
) -> None:
    srv = make_server(max_body_bytes=64 * 1024, max_decompressed_bytes=256 * 1024)
    series = _samples(srv.get("/metrics").text)
    assert (
        series[(REJECTED, (("reason", "too_large"), ("signal", "logs"), ("transport", "grpc")))]
        == 0
    )
    assert _rejections(srv) == {}

    def post(path: str, body: bytes, **headers: str) -> int:
        return srv.post(path, content=body, headers={**PROTOBUF, **headers}).status_code

    assert post("/v1/traces", b"\xff\xff not protobuf") == 400
    assert (
        post("/v1/traces", b'{"resourceSpans": 7}', **{"content-type": "application/json"}) == 400
    )
    assert post("/v1/logs", b"hello", **{"content-type": "text/plain"}) == 415
    assert post("/v1/metrics", b"x", **{"content-encoding": "br"}) == 415
    assert post("/v1/metrics", b"x", **{"content-encoding": "gzip"}) == 400  # not gzip
    assert post("/v1/traces", b"\x00" * (65 * 1024)) == 413
    bomb = gzip.compress(b"\x00" * (1024 * 1024))
    assert post("/v1/logs", bomb, **{"content-encoding": "gzip"}) == 413
    # Accepted exports that refused some items (partial_success): counted as items.
    bad = span(0x7001, 2, 1)
    bad.start_time_unix_nano = 0
    traces = request([span(0x7001, 1), bad]).SerializeToString()
    assert post("/v1/traces", traces) == 200
    short = log_record("bad trace id")
    short.trace_id = b"\x01\x02"
    logs_body = logs_request([log_record("fine"), short, log_record("no time", time_ns=0)])
    assert post("/v1/logs", logs_body.SerializeToString()) == 200
    # The same over gRPC.
    error = _grpc_export(srv, "metrics.v1.MetricsService", b"\xff\xff not protobuf")
    assert error is not None and error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert _grpc_export(srv, "logs.v1.LogsService", logs_body.SerializeToString()) is None
    assert _grpc_export(srv, "trace.v1.TraceService", traces) is None  # a resend: still refused
    # A writer that is not running: 503 / UNAVAILABLE.
    srv.app.state.writer.stop()
    assert post("/v1/traces", request([span(0x7002, 1)]).SerializeToString()) == 503
    error = _grpc_export(
        srv, "logs.v1.LogsService", logs_request([log_record("x")]).SerializeToString()
    )
    assert error is not None and error.code() == grpc.StatusCode.UNAVAILABLE

    assert _rejections(srv) == {
        (REJECTED, "traces", "http", "bad_request"): 2,
        (REJECTED, "logs", "http", "unsupported_media_type"): 1,
        (REJECTED, "metrics", "http", "unsupported_encoding"): 1,
        (REJECTED, "metrics", "http", "bad_request"): 1,
        (REJECTED, "traces", "http", "too_large"): 1,
        (REJECTED, "logs", "http", "too_large"): 1,
        (REJECTED, "metrics", "grpc", "bad_request"): 1,
        (REJECTED, "traces", "http", "unavailable"): 1,
        (REJECTED, "logs", "grpc", "unavailable"): 1,
        (ITEMS, "traces", "http"): 1,
        (ITEMS, "logs", "http"): 2,
        (ITEMS, "logs", "grpc"): 2,
        (ITEMS, "traces", "grpc"): 1,
    }


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_overloaded_ingest_is_counted_for_http_and_grpc(
    make_server: ServerFactory, db_url: str
) -> None:
    srv = make_server(writer_queue_size=1)
    lock = sqlite3.connect(
        db_url.removeprefix("sqlite:///"), isolation_level=None, check_same_thread=False
    )
    lock.execute("BEGIN IMMEDIATE")  # the writer blocks on its first transaction
    codes: list[object] = []

    def send(i: int) -> None:
        body = request([span(0x7100 + i, 1)]).SerializeToString()
        if i % 2:
            error = _grpc_export(srv, "trace.v1.TraceService", body)
            codes.append(error.code() if error is not None else grpc.StatusCode.OK)
        else:
            codes.append(srv.post("/v1/traces", content=body, headers=PROTOBUF).status_code)

    threads = [threading.Thread(target=send, args=(i,)) for i in range(6)]
    try:
        for t in threads:  # one is committing (blocked), one waits in the queue, four refused
            t.start()
            time.sleep(0.15)
        deadline = time.monotonic() + 15
        while len(codes) < 4:
            assert time.monotonic() < deadline, codes
            time.sleep(0.05)
    finally:
        lock.execute("COMMIT")
        lock.close()
        for t in threads:
            t.join()
    http = codes.count(503)
    grpc_refused = codes.count(grpc.StatusCode.RESOURCE_EXHAUSTED)
    assert http + grpc_refused == 4, codes
    counted = _rejections(srv)
    assert counted == {
        k: v
        for k, v in {
            (REJECTED, "traces", "http", "overloaded"): http,
            (REJECTED, "traces", "grpc", "overloaded"): grpc_refused,
        }.items()
        if v
    }
    writer = _samples(srv.get("/metrics").text)
    assert writer[("pharos_writer_refused_total", (("reason", "overloaded"),))] == 4
