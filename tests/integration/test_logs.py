"""OTLP logs against a real server on SQLite and PostgreSQL: the real OTel Python logs SDK and
exporters (HTTP protobuf and gRPC), OTLP JSON, gzip, idempotent resends, partial success, bad
input, and the log explorer API (filters, text search, cursor paging, trace links)."""

from __future__ import annotations

import gzip
import logging
import time
import uuid
from typing import Any

import grpc
import orjson
import pytest
from google.protobuf import json_format
from google.rpc import status_pb2
from opentelemetry.exporter.otlp.proto.grpc._log_exporter import (
    OTLPLogExporter as GrpcLogExporter,
)
from opentelemetry.exporter.otlp.proto.http._log_exporter import (
    OTLPLogExporter as HttpLogExporter,
)
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceResponse
from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from sqlalchemy import func, select

from pharos.server.db.engine import make_engine
from pharos.server.db.schema import logs
from pharos.server.query import logs as log_queries
from tests.conftest import RunningServer, ServerFactory
from tests.log_helpers import log_record, logs_request, logs_to_otlp_json
from tests.otlp_helpers import JSON, PROTOBUF, request, span

LOGS_EXPORT = "/opentelemetry.proto.collector.logs.v1.LogsService/Export"


def _log_count(server: RunningServer) -> int:
    engine = make_engine(server.settings.database_url)
    try:
        with engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(logs)).scalar_one())
    finally:
        engine.dispose()


def _python_logger(provider: LoggerProvider) -> logging.Logger:
    logger = logging.getLogger(f"pharos-test-{uuid.uuid4().hex[:8]}")
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    logger.addHandler(LoggingHandler(level=logging.DEBUG, logger_provider=provider))
    return logger


def _get_logs(server: RunningServer, **params: Any) -> dict[str, Any]:
    resp = server.get("/api/v1/logs", params=params)
    assert resp.status_code == 200, resp.text
    body: dict[str, Any] = resp.json()
    return body


# --- the real OTel logs SDK ---------------------------------------------------------------------


@pytest.mark.parametrize("transport", ["http", "grpc"])
def test_real_otel_log_exporter_and_trace_link_up(server: RunningServer, transport: str) -> None:
    exporter: Any = (
        HttpLogExporter(endpoint=f"{server.url}/v1/logs")
        if transport == "http"
        else GrpcLogExporter(endpoint=server.grpc_target, insecure=True)
    )
    provider = LoggerProvider(resource=Resource.create({"service.name": "billing-agent"}))
    provider.add_log_record_processor(SimpleLogRecordProcessor(exporter))  # exports each record
    logger = _python_logger(provider)

    spans = InMemorySpanExporter()  # the trace is sent *after* its logs
    tracer_provider = TracerProvider(resource=Resource.create({"service.name": "billing-agent"}))
    tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
    tracer = tracer_provider.get_tracer("test")

    logger.debug("warming the cache")
    with tracer.start_as_current_span("invoke_agent billing") as root:
        logger.info("charging customer %s", "c-1042", extra={"order.id": "o-77"})
        logger.warning("card declined, retrying")
        try:
            raise TimeoutError("payment gateway timed out after 30s")
        except TimeoutError:
            logger.exception("charge failed")
    trace_id = format(root.get_span_context().trace_id, "032x")
    span_id = format(root.get_span_context().span_id, "016x")
    provider.shutdown()

    page = _get_logs(server)
    items = page["items"]
    assert [i["body"] for i in items] == [
        "charge failed",
        "card declined, retrying",
        "charging customer c-1042",
        "warming the cache",
    ]  # newest first
    assert [i["level"] for i in items] == ["error", "warn", "info", "debug"]
    assert {i["agent"] for i in items} == {"billing-agent"}
    failed, _, charging, warming = items
    assert failed["attributes"]["exception.type"] == "TimeoutError"
    assert "raise TimeoutError" in failed["attributes"]["exception.stacktrace"]
    assert charging["attributes"]["order.id"] == "o-77"
    assert charging["trace_id"] == trace_id and charging["span_id"] == span_id
    assert charging["trace"] == {"trace_id": trace_id, "exists": False, "path": None}
    assert warming["trace_id"] is None and warming["trace"] is None  # no trace context
    assert server.get(f"/api/v1/traces/{trace_id}").status_code == 404

    # The trace arrives: the logs link up, and the trace lists its logs.
    assert (
        OTLPSpanExporter(endpoint=f"{server.url}/v1/traces").export(spans.get_finished_spans()).name
        == "SUCCESS"
    )
    linked = _get_logs(server, trace_id=trace_id)["items"]
    assert len(linked) == 3
    assert all(
        i["trace"] == {"trace_id": trace_id, "exists": True, "path": f"/api/v1/traces/{trace_id}"}
        for i in linked
    )
    detail = server.get(f"/api/v1/traces/{trace_id}").json()
    assert [entry["body"] for entry in detail["logs"]] == [
        "charging customer c-1042",
        "card declined, retrying",
        "charge failed",
    ]  # in time order within the trace
    assert detail["logs_truncated"] is False


def test_http_protobuf_gzip_resend_is_idempotent(server: RunningServer) -> None:
    t = time.time_ns()
    body = logs_request(
        [log_record(f"line {i}", time_ns=t + i) for i in range(5)]
        + [log_record("line 0", time_ns=t)]  # the same record twice in one request
    ).SerializeToString()
    for _ in range(3):
        resp = server.post(
            "/v1/logs",
            content=gzip.compress(body),
            headers={**PROTOBUF, "content-encoding": "gzip"},
        )
        assert resp.status_code == 200, resp.text
        assert resp.headers["content-type"] == "application/x-protobuf"
        assert ExportLogsServiceResponse.FromString(resp.content) == ExportLogsServiceResponse()
    assert _log_count(server) == 5


def test_json_body_structured_and_partial_success(server: RunningServer) -> None:
    t = time.time_ns()
    good = log_record({"event": "tool_call", "tool": "search", "ok": True}, time_ns=t, trace=7)
    good.span_id = (3).to_bytes(8, "big")
    short_trace = log_record("bad trace id", time_ns=t + 1)
    short_trace.trace_id = b"\x01\x02"
    no_time = log_record("no time at all", time_ns=0)
    doc = logs_to_otlp_json(logs_request([good, short_trace, no_time], service="json-svc"))
    resp = server.post("/v1/logs", content=orjson.dumps(doc), headers=JSON)
    assert resp.status_code == 200, resp.text
    partial = resp.json()["partialSuccess"]
    assert partial["rejectedLogRecords"] == "2"
    assert "trace_id must be 16 bytes or empty" in partial["errorMessage"]
    assert "time_unix_nano and observed_time_unix_nano are both missing" in partial["errorMessage"]

    (item,) = _get_logs(server)["items"]
    assert item["body"] == {"event": "tool_call", "tool": "search", "ok": True}
    assert item["body_type"] == "json"
    assert item["agent"] == "json-svc"
    assert item["trace_id"] == f"{7:032x}" and item["span_id"] == f"{3:016x}"
    # The same document again is acknowledged and stores nothing twice.
    assert server.post("/v1/logs", content=orjson.dumps(doc), headers=JSON).status_code == 200
    assert _log_count(server) == 1


VALID = logs_request([log_record("x" * 200)]).SerializeToString()


def _json_with_record(**fields: Any) -> bytes:
    doc = logs_to_otlp_json(logs_request([log_record("json")]))
    doc["resourceLogs"][0]["scopeLogs"][0]["logRecords"][0].update(fields)
    return orjson.dumps(doc)


@pytest.mark.parametrize(
    ("body", "headers", "status", "says"),
    [
        (VALID[: len(VALID) // 2], PROTOBUF, 400, "invalid protobuf ExportLogsServiceRequest"),
        (b"\xff\xff\xff\xff", PROTOBUF, 400, "invalid protobuf ExportLogsServiceRequest"),
        (VALID.replace(b"x" * 200, b"\xff" * 200), PROTOBUF, 400, "invalid protobuf"),
        (b'{"resourceLogs": [', JSON, 400, "invalid JSON"),
        (b'{"resourceLogs": [], "x": "\xff\xfe"}', JSON, 400, "invalid JSON"),
        (
            _json_with_record(traceId="zz" * 16),
            JSON,
            400,
            "resourceLogs[0].scopeLogs[0].logRecords[0].traceId",
        ),
        (_json_with_record(spanId=12), JSON, 400, "logRecords[0].spanId: expected a hex string"),
        (_json_with_record(timeUnixNano="soon"), JSON, 400, "timeUnixNano"),
        (
            orjson.dumps({"resourceLogs": [{"scopeLogs": [{"logRecords": {"a": 1}}]}]}),
            JSON,
            400,
            "logRecords: expected an array",
        ),
        (b"x", {"content-type": "text/plain"}, 415, "unsupported content type"),
        (b"x", {**PROTOBUF, "content-encoding": "br"}, 415, "unsupported Content-Encoding"),
        (b"not gzip", {**PROTOBUF, "content-encoding": "gzip"}, 400, "invalid gzip body"),
    ],
    ids=[
        "truncated protobuf",
        "garbage protobuf",
        "invalid utf-8 in protobuf",
        "invalid json",
        "json invalid utf-8",
        "json bad hex id",
        "json id not a string",
        "json wrong type",
        "json records not a list",
        "content type",
        "encoding",
        "corrupt gzip",
    ],
)
def test_http_bad_input_is_a_clear_4xx_and_stores_nothing(
    server: RunningServer, body: bytes, headers: dict[str, str], status: int, says: str
) -> None:
    resp = server.post("/v1/logs", content=body, headers=headers)
    assert resp.status_code == status, resp.text
    if resp.headers.get("content-type") == "application/x-protobuf":
        message = status_pb2.Status.FromString(resp.content).message
    else:
        message = resp.json()["error"]["message"]
    assert says in message, message
    assert _log_count(server) == 0
    ok = server.post("/v1/logs", content=VALID, headers=PROTOBUF)  # the server goes on
    assert ok.status_code == 200


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_log_bomb_and_oversized_body_are_refused(make_server: ServerFactory) -> None:
    srv = make_server(max_body_bytes=64 * 1024, max_decompressed_bytes=256 * 1024)
    big = logs_request([log_record("y" * 30_000, time_ns=time.time_ns() + i) for i in range(20)])
    raw = big.SerializeToString()
    bomb = srv.post(
        "/v1/logs", content=gzip.compress(raw), headers={**PROTOBUF, "content-encoding": "gzip"}
    )
    assert bomb.status_code == 413
    assert "decompressed body" in status_pb2.Status.FromString(bomb.content).message
    assert srv.post("/v1/logs", content=raw, headers=PROTOBUF).status_code == 413
    assert _log_count(srv) == 0


def _grpc_export(server: RunningServer, body: bytes) -> tuple[bytes | None, grpc.RpcError | None]:
    with grpc.insecure_channel(server.grpc_target) as channel:
        call = channel.unary_unary(LOGS_EXPORT, request_serializer=None, response_deserializer=None)
        try:
            return call(body, timeout=30), None
        except grpc.RpcError as exc:
            return None, exc


def test_grpc_partial_success_resend_and_bad_input(server: RunningServer) -> None:
    t = time.time_ns()
    bad = log_record("bad span id", time_ns=t)
    bad.span_id = b"\x01"
    body = logs_request([log_record("over grpc", time_ns=t), bad]).SerializeToString()
    for _ in range(2):
        raw, error = _grpc_export(server, body)
        assert error is None and raw is not None
        partial = ExportLogsServiceResponse.FromString(raw).partial_success
        assert partial.rejected_log_records == 1
        assert "span_id must be 8 bytes or empty" in partial.error_message
    assert _log_count(server) == 1
    for garbage in (VALID[:-7], VALID.replace(b"x" * 200, b"\xff" * 200)):
        _, error = _grpc_export(server, garbage)
        assert error is not None and error.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "invalid protobuf ExportLogsServiceRequest" in (error.details() or "")
    assert _log_count(server) == 1


# --- GET /api/v1/logs ----------------------------------------------------------------------------

S = 1_000_000_000


def _seed(server: RunningServer) -> int:
    """12 logs from two agents over 12 seconds (oldest first); returns the first one's time."""
    t0 = (time.time_ns() // S - 600) * S
    planner = [
        log_record("planner started", level="debug", time_ns=t0),
        log_record("Fetching https://example.com/a?x=1", level="info", time_ns=t0 + 1 * S),
        log_record("100% of quota used_up", level="warn", time_ns=t0 + 2 * S, trace=0xA1),
        log_record("tool SEARCH failed: timeout", level="error", time_ns=t0 + 3 * S, trace=0xA1),
        log_record("ok", level="info", time_ns=t0 + 4 * S, trace=0xA1, span_id=0xB2),
        log_record("Ünïcode Straße café", level="info", time_ns=t0 + 5 * S),
    ]
    writer = [
        log_record("writer started", level="info", time_ns=t0 + 6 * S),
        log_record("draft ready", level="info", time_ns=t0 + 7 * S, trace=0xA2),
        log_record("search index stale", level="warn", time_ns=t0 + 8 * S),
        log_record("Crash: out of memory", level="fatal", time_ns=t0 + 9 * S),
        log_record("trace-level detail", level="trace", time_ns=t0 + 10 * S),
        log_record({"msg": "structured search hit"}, level="info", time_ns=t0 + 11 * S),
    ]
    for records, agent in ((planner, "planner"), (writer, "writer")):
        resp = server.post(
            "/v1/logs", content=logs_request(records, agent).SerializeToString(), headers=PROTOBUF
        )
        assert resp.status_code == 200, resp.text
    trace = request([span(0xA1, 1, name="planner run")]).SerializeToString()
    assert server.post("/v1/traces", content=trace, headers=PROTOBUF).status_code == 200
    return t0


def _bodies(server: RunningServer, **params: Any) -> list[Any]:
    return [i["body"] for i in _get_logs(server, **params)["items"]]


@pytest.mark.parametrize("rare_level", [log_queries.RARE_LEVEL, 0], ids=["severity", "time"])
def test_filters(server: RunningServer, monkeypatch: pytest.MonkeyPatch, rare_level: int) -> None:
    # rare_level=0: on SQLite a level filter always walks the time index; by default (few logs
    # here) it reads the severity index. Both plans must give the same answers.
    monkeypatch.setattr(log_queries, "RARE_LEVEL", rare_level)
    t0 = _seed(server)
    assert len(_get_logs(server)["items"]) == 12
    assert _bodies(server, level="error") == [
        "Crash: out of memory",
        "tool SEARCH failed: timeout",
    ]
    assert _bodies(server, level="WARNING") == [
        "Crash: out of memory",
        "search index stale",
        "tool SEARCH failed: timeout",
        "100% of quota used_up",
    ]
    assert _bodies(server, agent="planner", level="info")[0] == "Ünïcode Straße café"
    assert len(_bodies(server, agent="planner")) == 6
    assert _bodies(server, trace_id=f"{0xA1:032X}") == [
        "ok",
        "tool SEARCH failed: timeout",
        "100% of quota used_up",
    ]
    assert _bodies(server, span_id=f"{0xB2:016x}") == ["ok"]
    since = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime((t0 + 3 * S) // S)) + "Z"
    until = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime((t0 + 5 * S) // S)) + "Z"
    assert _bodies(server, since=since, until=until) == ["ok", "tool SEARCH failed: timeout"]
    assert _bodies(server, since="1m") == []  # all were 10 minutes ago

    by_trace = {str(i["body"]): i["trace"] for i in _get_logs(server)["items"]}
    assert by_trace["ok"]["exists"] is True  # 0xA1 was stored as a trace
    assert by_trace["draft ready"] == {"trace_id": f"{0xA2:032x}", "exists": False, "path": None}


@pytest.mark.parametrize("plan", ["index", "time-walk"])
def test_text_search(server: RunningServer, monkeypatch: pytest.MonkeyPatch, plan: str) -> None:
    # Both plans must give the same answers. "index": SQLite reads matches through the FTS5
    # index (a few matches here) and PostgreSQL, with a walk of 1 log, through pg_trgm.
    # "time-walk": SQLite walks the time index for any text with more than one match, and
    # PostgreSQL's walk of the newest logs covers them all.
    monkeypatch.setattr(log_queries, "FTS_SMALL", 1 if plan == "time-walk" else 10_000)
    monkeypatch.setattr(log_queries, "PG_WALK", 2 if plan == "index" else 10_000)
    _seed(server)
    assert _bodies(server, q="search") == [
        {"msg": "structured search hit"},
        "search index stale",
        "tool SEARCH failed: timeout",
    ]  # case-insensitive, structured bodies too
    assert _bodies(server, q="SeArCh", agent="writer") == [
        {"msg": "structured search hit"},
        "search index stale",
    ]
    assert _bodies(server, q="ok") == ["ok"]  # shorter than a trigram
    assert _bodies(server, q="e", level="fatal") == ["Crash: out of memory"]
    assert _bodies(server, q="100%") == ["100% of quota used_up"]  # LIKE wildcards are text
    assert _bodies(server, q="0%") == ["100% of quota used_up"]
    assert _bodies(server, q="d_up") == ["100% of quota used_up"]
    assert _bodies(server, q="_") == ["100% of quota used_up"]
    assert _bodies(server, q='x=1"') == []
    assert _bodies(server, q="a?x=1") == ["Fetching https://example.com/a?x=1"]
    # Structured bodies are searched as their JSON text; quotes are text too.
    assert _bodies(server, q='"') == [{"msg": "structured search hit"}]
    assert _bodies(server, q='"msg":"s') == [{"msg": "structured search hit"}]
    assert _bodies(server, q="straße") == ["Ünïcode Straße café"]
    assert _bodies(server, q="nothing like this") == []
    # Paging a search: every match once, newest first.
    first = _get_logs(server, q="e", limit=4)
    second = _get_logs(server, q="e", limit=4, cursor=first["next_cursor"])
    everything = _bodies(server, q="e")
    assert [i["body"] for i in first["items"] + second["items"]] == everything[:8]


def test_cursor_paging_walks_everything_once(server: RunningServer) -> None:
    t = (time.time_ns() // S - 60) * S
    records = [log_record(f"n{i:03d}", time_ns=t + (i // 3) * S) for i in range(40)]  # ties
    body = logs_request(records).SerializeToString()
    assert server.post("/v1/logs", content=body, headers=PROTOBUF).status_code == 200
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        params: dict[str, Any] = {"limit": 7}
        if cursor:
            params["cursor"] = cursor
        page = _get_logs(server, **params)
        seen += [i["body"] for i in page["items"]]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert pages == 6
    assert sorted(seen) == sorted(f"n{i:03d}" for i in range(40))
    assert len(seen) == 40
    times = [int(s[1:]) // 3 for s in seen]
    assert times == sorted(times, reverse=True)  # newest first across pages


@pytest.mark.parametrize(
    ("params", "says"),
    [
        ({"level": "loud"}, "level: 'loud' is not one of trace, debug, info, warn, error, fatal"),
        ({"trace_id": "xyz"}, "trace_id: expected 32 hexadecimal characters"),
        ({"span_id": "0" * 15}, "span_id: expected 16 hexadecimal characters"),
        ({"since": "yesterday"}, "since:"),
        ({"cursor": "bm9wZQ"}, "cursor: cursor is not one this server returned"),
        ({"cursor": "WzEsImEiXQ"}, "cursor: cursor is not one this server returned"),
        ({"limit": "0"}, "limit"),
        ({"q": "x" * 300}, "q:"),
    ],
)
def test_bad_query_parameters_are_400(
    server: RunningServer, params: dict[str, str], says: str
) -> None:
    resp = server.get("/api/v1/logs", params=params)
    assert resp.status_code == 400, resp.text
    assert says in resp.json()["error"]["message"]


def test_trace_logs_are_capped(server: RunningServer, monkeypatch: pytest.MonkeyPatch) -> None:
    from pharos.server.query import traces as trace_queries

    monkeypatch.setattr(trace_queries, "MAX_TRACE_LOGS", 2)
    t = time.time_ns()
    records = [log_record(f"step {i}", time_ns=t + i, trace=0xC3) for i in range(3)]
    server.post("/v1/logs", content=logs_request(records).SerializeToString(), headers=PROTOBUF)
    trace = request([span(0xC3, 1, name="capped")]).SerializeToString()
    server.post("/v1/traces", content=trace, headers=PROTOBUF)
    detail = server.get(f"/api/v1/traces/{0xC3:032x}").json()
    assert [entry["body"] for entry in detail["logs"]] == ["step 0", "step 1"]
    assert detail["logs_truncated"] is True


def test_json_response_from_protobuf_request_is_protobuf_and_json_for_json(
    server: RunningServer,
) -> None:
    message = logs_request([log_record("fmt")])
    resp = server.post("/v1/logs", content=json_format.MessageToJson(message), headers=JSON)
    assert resp.status_code == 200 and resp.headers["content-type"] == "application/json"
    assert resp.json() == {}


def test_live_log_event_after_commit_and_none_for_a_resend(server: RunningServer) -> None:
    from websockets.sync.client import connect

    url = server.url.replace("http://", "ws://") + "/api/v1/live?window=15m"
    t = time.time_ns()
    records = [
        log_record("live one", time_ns=t, trace=0xD1),
        log_record("live two", level="error", time_ns=t + 1),
    ]
    body = logs_request(records, service="tail-agent").SerializeToString()
    with connect(url) as ws:
        assert orjson.loads(ws.recv(timeout=20))["type"] == "hello"
        assert server.post("/v1/logs", content=body, headers=PROTOBUF).status_code == 200
        event: dict[str, Any] = {}
        for _ in range(50):
            event = orjson.loads(ws.recv(timeout=20))
            if event["type"] == "log":
                break
        assert event == {
            "type": "log",
            "records": 2,
            "stored": 2,
            "levels": {"info": 1, "error": 1},
            "agents": ["tail-agent"],
            "trace_ids": [f"{0xD1:032x}"],
        }
        # A resend stores nothing new: no event. The next fresh record gets one.
        assert server.post("/v1/logs", content=body, headers=PROTOBUF).status_code == 200
        fresh = logs_request([log_record("live three", time_ns=t + 2)]).SerializeToString()
        assert server.post("/v1/logs", content=fresh, headers=PROTOBUF).status_code == 200
        for _ in range(50):
            event = orjson.loads(ws.recv(timeout=20))
            if event["type"] == "log":
                break
        assert event["stored"] == 1 and event["records"] == 1
