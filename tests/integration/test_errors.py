"""Error tracking against a real server on SQLite and PostgreSQL: exception events sent by the
real OTel SDK and ERROR logs sent by the real OTel logs exporter are grouped; counts in windows,
trends, occurrences over time, recent traces; resolve, regression and reopen."""

from __future__ import annotations

import logging
import time
import uuid
from typing import Any

import pytest
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.trace.v1.trace_pb2 import Span
from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

from tests.conftest import RunningServer
from tests.log_helpers import log_record, logs_request
from tests.otlp_helpers import PROTOBUF, kv, request, span

S = 1_000_000_000


def _errors(server: RunningServer, **params: Any) -> list[dict[str, Any]]:
    resp = server.get("/api/v1/errors", params=params)
    assert resp.status_code == 200, resp.text
    items: list[dict[str, Any]] = resp.json()["items"]
    return items


def _by_type(items: list[dict[str, Any]]) -> dict[str | None, dict[str, Any]]:
    return {i["type"]: i for i in items}


class SearchError(Exception):
    pass


def test_real_sdk_exceptions_and_error_logs_are_grouped(server: RunningServer) -> None:
    tracer_provider = TracerProvider(resource=Resource.create({"service.name": "research-svc"}))
    # Batched, as applications send them: a trace's spans arrive together, so the spans
    # below an agent span take its agent.
    tracer_provider.add_span_processor(
        BatchSpanProcessor(OTLPSpanExporter(endpoint=f"{server.url}/v1/traces"))
    )
    tracer = tracer_provider.get_tracer("test")
    log_provider = LoggerProvider(resource=Resource.create({"service.name": "research-svc"}))
    log_provider.add_log_record_processor(
        SimpleLogRecordProcessor(OTLPLogExporter(endpoint=f"{server.url}/v1/logs"))
    )
    logger = logging.getLogger(f"pharos-errors-{uuid.uuid4().hex[:8]}")
    logger.propagate = False
    logger.addHandler(LoggingHandler(logger_provider=log_provider))

    trace_ids = []
    for i, agent in enumerate(["researcher", "researcher", "writer"]):
        with tracer.start_as_current_span(
            f"invoke_agent {agent}", attributes={"gen_ai.agent.name": agent}
        ) as root:
            with tracer.start_as_current_span("execute_tool search"):
                try:  # the SDK records the exception event and sets the status
                    with tracer.start_as_current_span("http GET"):
                        raise SearchError(f"search for 'topic {i}' failed after {i + 3}s")
                except SearchError:
                    pass
            logger.error("disk almost full: %d%% used", 90 + i)  # ERROR log, no exception
        trace_ids.append(format(root.get_span_context().trace_id, "032x"))
    logger.info("all done")  # not an error
    tracer_provider.shutdown()  # flushes the batch: acknowledged once committed
    log_provider.shutdown()

    groups = _errors(server, window="1h")
    assert len(groups) == 2
    search = next(g for g in groups if g["source"] == "span")
    disk = next(g for g in groups if g["source"] == "log")
    assert search["type"].endswith("SearchError")
    # The SDK recorded the exception event on the span it left (not on the parent, which
    # caught it): one occurrence per trace.
    assert search["count"] == 3 and search["total_count"] == 3
    assert search["message"] == "search for <str> failed after <n>"
    assert search["sample_message"] == "search for 'topic 2' failed after 5s"
    assert search["title"] == f"{search['type']}: search for 'topic 2' failed after 5s"
    assert sorted(search["agents"]) == ["researcher", "writer"]
    assert search["sample_trace_id"] == trace_ids[-1]
    assert "raise SearchError" in search["stacktrace"]
    assert search["status"] == "open" and search["regression"] is False
    assert search["previous_count"] == 0 and search["trend"]["direction"] == "up"
    assert sum(search["sparkline"]) == 3
    assert disk["type"] is None and disk["count"] == 3
    assert disk["message"] == "disk almost full: <n>% used"
    assert disk["agents"] == ["research-svc"]  # logs: the resource's service.name

    writer_only = _errors(server, window="1h", agent="writer")
    assert [(g["source"], g["count"]) for g in writer_only] == [("span", 1)]

    detail = server.get(f"/api/v1/errors/{search['fingerprint']}", params={"window": "1h"}).json()
    assert sum(detail["occurrences"]) == 3
    assert len(detail["timestamps"]) == len(detail["occurrences"]) == 60
    assert detail["interval_seconds"] == 60
    assert detail["by_agent"] == {"researcher": 2, "writer": 1}
    assert [t["trace_id"] for t in detail["recent_traces"]] == trace_ids[::-1]
    assert all(
        t["exists"] and t["path"] == f"/api/v1/traces/{t['trace_id']}"
        for t in detail["recent_traces"]
    )

    overview = server.get("/api/v1/overview", params={"window": "1h"}).json()
    assert sorted((e["fingerprint"], e["count"]) for e in overview["top_errors"]) == sorted(
        [(search["fingerprint"], 3), (disk["fingerprint"], 3)]
    )


def _exception_span(trace: int, t_ns: int, message: str, agent: str = "planner") -> Span:
    s = span(trace, 1, name="step", error=message, attrs={"gen_ai.agent.name": agent})
    s.start_time_unix_nano, s.end_time_unix_nano = t_ns, t_ns + 1000
    s.events.append(
        Span.Event(
            name="exception",
            time_unix_nano=t_ns + 500,
            attributes=[
                kv("exception.type", "ToolError"),
                kv("exception.message", message),
                kv("exception.stacktrace", f"Traceback: {message}"),
            ],
        )
    )
    return s


def _send(server: RunningServer, *spans: Span) -> None:
    resp = server.post(
        "/v1/traces", content=request(list(spans)).SerializeToString(), headers=PROTOBUF
    )
    assert resp.status_code == 200, resp.text


def test_resend_counts_once_and_windows_and_trend(server: RunningServer) -> None:
    now = time.time_ns()
    old = [
        _exception_span(0x100 + i, now - 90 * 60 * S + i * S, f"tool {i} failed") for i in range(4)
    ]
    recent = [
        _exception_span(0x200 + i, now - 10 * 60 * S + i * S, f"tool {i} failed") for i in range(2)
    ]
    for _ in range(2):  # a resend of the same spans is not a new occurrence
        _send(server, *old, *recent)
    (group,) = _errors(server, window="1h")
    assert (group["count"], group["previous_count"], group["total_count"]) == (2, 4, 6)
    assert group["trend"] == {"change_pct": -50.0, "direction": "down"}
    assert group["first_seen"] < group["last_seen"]
    (wide,) = _errors(server, window="3h")
    assert wide["count"] == 6
    assert _errors(server, window="5m") == []
    detail = server.get(f"/api/v1/errors/{group['fingerprint']}", params={"window": "3h"}).json()
    assert sum(detail["occurrences"]) == 6 and detail["interval_seconds"] == 300
    # Logs of the same error (same type + message) join the group.
    body = logs_request(
        [
            log_record(
                "tool call failed",
                level="error",
                time_ns=now - 60 * S,
                trace=0x300,
                attrs={"exception.type": "ToolError", "exception.message": "tool 9 failed"},
            )
        ]
    ).SerializeToString()
    for _ in range(2):
        assert server.post("/v1/logs", content=body, headers=PROTOBUF).status_code == 200
    (group,) = _errors(server, window="1h")
    assert group["count"] == 3 and group["total_count"] == 7
    assert group["sample_trace_id"] == f"{0x300:032x}"


def test_resolve_regression_and_reopen(server: RunningServer) -> None:
    now = time.time_ns()
    _send(server, _exception_span(0x400, now - 5 * 60 * S, "quota exceeded for 'acme'"))
    (group,) = _errors(server, window="1h")
    fp = group["fingerprint"]

    resolved = server.post(f"/api/v1/errors/{fp}/resolve")
    assert resolved.status_code == 200, resolved.text
    assert resolved.json()["status"] == "resolved" and resolved.json()["resolved_at"]
    assert _errors(server, window="1h", status="open") == []
    assert [g["status"] for g in _errors(server, window="1h", status="resolved")] == ["resolved"]

    # An occurrence dated before the resolution (a late export) does not re-open it.
    _send(server, _exception_span(0x401, now - 4 * 60 * S, "quota exceeded for 'beta'"))
    (still,) = _errors(server, window="1h")
    assert still["status"] == "resolved" and still["count"] == 2

    # It happens again: the group re-opens as a regression, and says when.
    # Now, not in the future: the list's window ends with the current minute, and an
    # occurrence a few seconds ahead falls into the next one near a minute's end.
    later = time.time_ns()
    _send(server, _exception_span(0x402, later, "quota exceeded for 'gamma'"))
    (again,) = _errors(server, window="1h", status="open")
    assert again["status"] == "open" and again["regression"] is True
    assert again["regressed_at"] is not None and again["regressed_at"] > again["resolved_at"]
    assert again["count"] == 3

    reopened = server.post(f"/api/v1/errors/{fp}/resolve").json()
    assert reopened["status"] == "resolved"
    manual = server.post(f"/api/v1/errors/{fp}/reopen").json()
    assert manual["status"] == "open" and manual["regression"] is False
    assert manual["resolved_at"] is None and manual["regressed_at"] is None


@pytest.mark.parametrize(
    ("method", "path", "params", "status", "says"),
    [
        ("GET", "/api/v1/errors", {"window": "soon"}, 400, "window:"),
        ("GET", "/api/v1/errors", {"status": "gone"}, 400, "status"),
        ("GET", "/api/v1/errors/xyz", {}, 400, "fingerprint: expected 16 hexadecimal"),
        ("GET", "/api/v1/errors/0123456789abcdef", {}, 404, "error group 0123456789abcdef"),
        (
            "GET",
            "/api/v1/errors/0123456789abcdef",
            {"window": "7d", "interval": "1m"},
            400,
            "interval: 1m over 10080m gives more than 1000 points",
        ),
        ("POST", "/api/v1/errors/0123456789ABCDEF/resolve", {}, 404, "not found"),
        ("POST", "/api/v1/errors/nothex/reopen", {}, 400, "fingerprint"),
    ],
)
def test_bad_requests_are_clear(
    server: RunningServer, method: str, path: str, params: dict[str, str], status: int, says: str
) -> None:
    with server.client() as client:
        resp = client.request(method, path, params=params)
    assert resp.status_code == status, resp.text
    assert says in resp.json()["error"]["message"]


@pytest.mark.parametrize("order", ["spans_first", "logs_first"])
def test_a_failure_on_a_span_and_logged_in_it_counts_once(
    server: RunningServer, order: str
) -> None:
    """The usual instrumentation: the SDK records the exception on the span and the code logs
    it with logger.exception inside that span. One failure, one occurrence, whichever signal
    arrives first and in separate requests (the real OTel SDK and OTLP exporters)."""
    from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    resource = Resource.create({"service.name": "billing-svc"})
    finished_spans = InMemorySpanExporter()
    tracer_provider = TracerProvider(resource=resource)
    tracer_provider.add_span_processor(SimpleSpanProcessor(finished_spans))
    tracer = tracer_provider.get_tracer("test")
    finished_logs = InMemoryLogRecordExporter()
    log_provider = LoggerProvider(resource=resource)
    log_provider.add_log_record_processor(SimpleLogRecordProcessor(finished_logs))
    logger = logging.getLogger(f"pharos-dedup-{uuid.uuid4().hex[:8]}")
    logger.propagate = False
    logger.addHandler(LoggingHandler(logger_provider=log_provider))

    for i in range(4):
        with (
            tracer.start_as_current_span(
                "invoke_agent billing", attributes={"gen_ai.agent.name": "billing"}
            ),
            tracer.start_as_current_span("execute_tool charge", record_exception=False) as s,
        ):
            tries = 2 if i == 3 else 1  # run 3 fails twice in its span, logged once
            for attempt in range(tries):
                try:
                    raise TimeoutError(f"charge {i}.{attempt} timed out after {i + 2}s")
                except TimeoutError as exc:
                    s.record_exception(exc)
                    if attempt == tries - 1:
                        logger.exception("charging the card failed")
    try:  # the same failure outside any span: nothing else reports it, it counts
        raise TimeoutError("charge 9 timed out after 30s")
    except TimeoutError:
        logger.exception("charging the card failed (batch job)")
    spans_ = finished_spans.get_finished_spans()
    logs_ = finished_logs.get_finished_logs()
    assert len(logs_) == 5 and all(r.log_record.span_id for r in logs_[:4])

    span_exporter = OTLPSpanExporter(endpoint=f"{server.url}/v1/traces")
    log_exporter = OTLPLogExporter(endpoint=f"{server.url}/v1/logs")
    sends = [
        lambda: span_exporter.export(spans_[:4]),  # two runs
        lambda: span_exporter.export(spans_[4:]),  # two more, in another request
        lambda: log_exporter.export(logs_[:2]),
        lambda: log_exporter.export(logs_[2:]),
    ]
    if order == "logs_first":
        sends = sends[2:] + sends[:2]
    for send in sends:
        assert send().name == "SUCCESS"
    tracer_provider.shutdown()
    log_provider.shutdown()

    (group,) = _errors(server, window="1h")
    assert group["type"] == "TimeoutError"
    # runs 0-2: 1 each; run 3: two failures (two events, one log) = 2; the batch job: 1
    assert group["count"] == 6 and group["total_count"] == 6
    detail = server.get(f"/api/v1/errors/{group['fingerprint']}", params={"window": "1h"}).json()
    assert sum(detail["occurrences"]) == 6
    assert detail["by_agent"] == {"billing": 5, "billing-svc": 1}
    assert sorted(group["agents"]) == ["billing", "billing-svc"]
    assert [(g["count"]) for g in _errors(server, window="1h", agent="billing-svc")] == [1]
    # A resend of everything counts nothing again.
    for send in sends:
        assert send().name == "SUCCESS"
    assert _errors(server, window="1h")[0]["count"] == 6


def test_logs_without_their_spans_counterpart_keep_counting(server: RunningServer) -> None:
    """Hand-made: an ERROR log in a span whose exception differs (another fingerprint), and a
    span with no exception event, each stay one occurrence of their own."""
    t = time.time_ns() - 5 * S
    exc = _exception_span(0xD1, t, "quota exceeded for key 7")
    plain = span(0xD2, 1, name="step", attrs={"gen_ai.agent.name": "planner"})
    plain.start_time_unix_nano, plain.end_time_unix_nano = t, t + 1000
    _send(server, exc, plain)
    other_error = log_record(
        "retrying",
        level="error",
        time_ns=t + 600,
        trace=0xD1,
        span_id=1,
        attrs={"exception.type": "ToolError", "exception.message": "connection reset by peer"},
    )
    same_error = log_record(
        "it failed",
        level="error",
        time_ns=t + 700,
        trace=0xD1,
        span_id=1,
        attrs={"exception.type": "ToolError", "exception.message": "quota exceeded for key 9"},
    )
    in_plain_span = log_record(
        "quota exceeded for key 3", level="error", time_ns=t + 800, trace=0xD2, span_id=1
    )
    body = logs_request([other_error, same_error, in_plain_span], service="planner-svc")
    resp = server.post("/v1/logs", content=body.SerializeToString(), headers=PROTOBUF)
    assert resp.status_code == 200, resp.text
    counts = {(g["type"], g["message"]): g["count"] for g in _errors(server, window="1h")}
    assert counts == {
        ("ToolError", "quota exceeded for key <n>"): 1,  # the event and its log: one
        ("ToolError", "connection reset by peer"): 1,
        (None, "quota exceeded for key <n>"): 1,  # no exception.type: log:error
    }
