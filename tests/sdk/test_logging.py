"""Structured logging: keyword fields, JSON lines on stdout, OpenTelemetry log records (in
memory and as real OTLP protobuf to a local receiver) with trace_id/span_id, agent, request id,
extra fields, exceptions and redaction; stdlib logging and structlog; context across tasks."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import pytest
import structlog

import pharos
from tests.sdk.conftest import MemorySDK
from tests.sdk.otlp_capture import otlp_capture


def _attrs(record: Any) -> dict[str, Any]:
    return dict(record.attributes or {})


def test_keyword_fields_trace_context_agent_and_request_id(make_sdk: Any) -> None:
    sdk: MemorySDK = make_sdk(log_level="INFO")
    log = pharos.get_logger("app.tickets")

    @pharos.agent(name="support-bot")
    def handle() -> tuple[str | None, str | None]:
        log.info("ticket answered", ticket_id=42, priority="high")
        span = pharos.current_span()
        return span.trace_id, span.span_id

    trace_id, span_id = handle()
    (record,) = sdk.logs()
    assert record.body == "ticket answered"
    assert format(record.trace_id, "032x") == trace_id
    assert format(record.span_id, "016x") == span_id
    assert record.severity_text == "INFO" and record.severity_number.value == 9
    attrs = _attrs(record)
    assert attrs["ticket_id"] == 42
    assert attrs["priority"] == "high"
    assert attrs["gen_ai.agent.name"] == "support-bot"
    root = sdk.span("invoke_agent support-bot")
    assert attrs["request_id"] == root.attributes["pharos.request_id"]
    assert attrs["code.function.name"] == "handle"


def test_stdlib_logging_extra_fields_exceptions_and_redaction(make_sdk: Any) -> None:
    sdk: MemorySDK = make_sdk(log_level="DEBUG", redact_pii=True)
    std = logging.getLogger("plain.stdlib")
    std.debug("connecting with password=%s", "hunter2", extra={"db": "orders"})
    try:
        raise ConnectionError("refused for bob@example.com")
    except ConnectionError:
        std.exception("db down", extra={"api_key": "sk-abcdefghijklmnopqrstuv"})
    debug, error = sdk.logs()
    assert debug.body == "connecting with password=[REDACTED]"
    assert _attrs(debug)["db"] == "orders"
    assert debug.severity_text == "DEBUG"
    assert error.severity_text == "ERROR" and error.severity_number.value == 17
    attrs = _attrs(error)
    assert attrs["api_key"] == "[REDACTED]"
    assert attrs["exception.type"] == "ConnectionError"
    assert attrs["exception.message"] == "refused for [REDACTED]"
    assert "bob@example.com" not in attrs["exception.stacktrace"]
    assert "ConnectionError" in attrs["exception.stacktrace"]
    assert error.trace_id in (None, 0)  # not inside a span


def test_log_levels_and_bind(make_sdk: Any) -> None:
    sdk: MemorySDK = make_sdk(log_level="WARNING")
    log = pharos.get_logger("levels").bind(component="router")
    log.info("not sent")
    log.warning("sent", attempt=2)
    log.critical("also sent")
    warn, crit = sdk.logs()
    assert (warn.body, warn.severity_text, crit.severity_text) == ("sent", "WARN", "FATAL")
    assert _attrs(warn)["component"] == "router" and _attrs(warn)["attempt"] == 2


def test_json_lines_on_stdout(make_sdk: Any, capsys: pytest.CaptureFixture[str]) -> None:
    make_sdk(json_logs=True, log_level="INFO")
    log = pharos.get_logger("json.test")
    with pharos.bind(request_id="req-123", tenant="acme"), pharos.span("work") as span:
        log.info("hello %s", "world", token="abc", count=3)
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    (line,) = [doc for doc in lines if doc.get("logger") == "json.test"]
    assert line["message"] == "hello world"
    assert line["level"] == "info"
    assert line["trace_id"] == span.trace_id and line["span_id"] == span.span_id
    assert line["request_id"] == "req-123" and line["tenant"] == "acme"
    assert line["token"] == "[REDACTED]" and line["count"] == 3
    assert line["time"].endswith("Z")


def test_no_json_stdout_when_the_app_configured_logging(make_sdk: Any, capsys: Any) -> None:
    # pytest's own capture handler is on the root logger: logging counts as configured.
    make_sdk(log_level="INFO")
    pharos.get_logger("quiet").info("only to Pharos")
    assert "only to Pharos" not in capsys.readouterr().out


def test_structlog_goes_to_stdout_as_json_and_to_pharos(make_sdk: Any, capsys: Any) -> None:
    sdk: MemorySDK = make_sdk(structlog=True, log_level="INFO")
    slog = structlog.get_logger()
    with pharos.agent(name="struct-bot"):
        slog.info("order shipped", order_id="A1", authorization="Bearer abcdefghijklmnop")
        try:
            raise ValueError("bad order")
        except ValueError:
            slog.exception("order failed", order_id="A2")
    out = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line]
    shipped = next(doc for doc in out if doc["event"] == "order shipped")
    assert shipped["order_id"] == "A1" and shipped["authorization"] == "[REDACTED]"
    assert shipped["agent"] == "struct-bot" and len(shipped["trace_id"]) == 32
    failed = next(doc for doc in out if doc["event"] == "order failed")
    assert "ValueError: bad order" in failed["exception"]
    info, error = sdk.logs()
    assert info.body == "order shipped"
    assert _attrs(info)["authorization"] == "[REDACTED]"
    assert _attrs(info)["gen_ai.agent.name"] == "struct-bot"
    assert format(info.trace_id, "032x") == shipped["trace_id"]
    assert error.severity_text == "ERROR"
    assert _attrs(error)["exception.type"] == "ValueError"
    pharos.shutdown()
    assert not structlog.is_configured()  # put back as it was


def test_structlog_processor_in_the_apps_own_chain(make_sdk: Any) -> None:
    sdk: MemorySDK = make_sdk(structlog=False, log_level="INFO")
    captured: list[dict[str, Any]] = []

    def keep(logger: Any, name: str, event_dict: dict[str, Any]) -> str:
        captured.append(dict(event_dict))
        return ""

    structlog.configure(
        processors=[structlog.processors.add_log_level, pharos.structlog_processor(), keep],
        logger_factory=structlog.ReturnLoggerFactory(),
    )
    try:
        with pharos.tool("t"):
            structlog.get_logger().warning("slow", ms=1200, password="x")
    finally:
        structlog.reset_defaults()
    assert captured[0]["password"] == "[REDACTED]" and captured[0]["ms"] == 1200
    (record,) = sdk.logs()
    assert record.severity_text == "WARN" and _attrs(record)["ms"] == 1200


def test_request_id_follows_asyncio_tasks(make_sdk: Any) -> None:
    sdk: MemorySDK = make_sdk(log_level="INFO")
    log = pharos.get_logger("tasks")

    async def step(n: int) -> str | None:
        await asyncio.sleep(0.001 * (3 - n))
        log.info("step", n=n)
        return pharos.request_id()

    async def handle(rid: str) -> list[str | None]:
        with pharos.bind(request_id=rid):
            gathered = await asyncio.gather(step(1), step(2))
            spawned = await asyncio.create_task(step(3))
            return [*gathered, spawned]

    async def main() -> list[list[str | None]]:
        return await asyncio.gather(handle("req-a"), handle("req-b"))

    a, b = asyncio.run(main())
    assert a == ["req-a"] * 3 and b == ["req-b"] * 3
    by_request: dict[str, set[int]] = {}
    for record in sdk.logs():
        by_request.setdefault(_attrs(record)["request_id"], set()).add(_attrs(record)["n"])
    assert by_request == {"req-a": {1, 2, 3}, "req-b": {1, 2, 3}}
    assert pharos.request_id() is None


def test_each_agent_run_gets_its_own_request_id_unless_one_is_bound(sdk: MemorySDK) -> None:
    @pharos.agent(name="a")
    def run() -> str | None:
        return pharos.request_id()

    first, second = run(), run()
    assert first and second and first != second
    with pharos.bind(request_id="outer"):
        assert run() == "outer"


def test_sdk_and_exporter_logs_are_not_sent_back(make_sdk: Any) -> None:
    sdk: MemorySDK = make_sdk(log_level="DEBUG")
    logging.getLogger("pharos.sdk").warning("internal")
    logging.getLogger("opentelemetry.sdk.trace").warning("otel internal")
    logging.getLogger("app").warning("app")
    assert [r.body for r in sdk.logs()] == ["app"]


def test_real_otlp_logs_to_a_local_receiver() -> None:
    """The SDK's OTLP/HTTP log export as bytes on the wire: decode the protobuf."""
    with otlp_capture() as capture:
        pharos.init(
            service_name="log-wire",
            endpoint=capture.url,
            api_key="phk_wire",
            log_level="INFO",
            redact_pii=True,
        )
        log = pharos.get_logger("wire")

        @pharos.agent(name="wire-bot")
        def handle() -> tuple[str | None, str | None]:
            with pharos.bind(user="u-7"):
                log.info(
                    "refund for %s",
                    "alice@example.com",
                    ticket_id=9,
                    cookie="session=abc",
                    note="key sk-abcdefghijklmnopqrstuvwx",
                )
            span = pharos.current_span()
            return span.trace_id, span.span_id

        trace_id, span_id = handle()
        assert pharos.shutdown(10)
        (record,) = [r for r in capture.logs() if r["scope"] == "wire"]
        assert record["trace_id"] == trace_id and record["span_id"] == span_id
        assert record["body"] == "refund for [REDACTED]"
        assert record["severity_text"] == "INFO"
        attrs = record["attributes"]
        assert attrs["ticket_id"] == 9 and attrs["user"] == "u-7"
        assert attrs["cookie"] == "[REDACTED]" and attrs["note"] == "key [REDACTED]"
        assert attrs["gen_ai.agent.name"] == "wire-bot"
        assert record["resource"]["service.name"] == "log-wire"
        (span,) = capture.spans()
        assert span["span_id"] == span_id
        assert span["headers"]["authorization"] == "Bearer phk_wire"
        assert span["headers"]["content-encoding"] == "gzip"
