"""OTLP/gRPC ingest against a real server on SQLite and PostgreSQL: the real OTel gRPC exporter,
raw gRPC calls for bad input, gzip, size limits, overload and an unavailable writer."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time

import grpc
import pytest
from google.rpc import error_details_pb2, status_pb2
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import StatusCode

from pharos.server.ingest.grpc import OtlpGrpcServer
from tests.conftest import RunningServer, ServerFactory
from tests.otlp_helpers import request, span

TRACE_EXPORT = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"


def _export(
    srv: RunningServer,
    body: bytes,
    *,
    compression: grpc.Compression | None = None,
    method: str = TRACE_EXPORT,
) -> tuple[bytes | None, grpc.RpcError | None]:
    """One raw unary call with the body as it is (no client-side serialization)."""
    with grpc.insecure_channel(srv.grpc_target) as channel:
        call = channel.unary_unary(method, request_serializer=None, response_deserializer=None)
        try:
            return call(body, timeout=30, compression=compression), None
        except grpc.RpcError as exc:
            return None, exc


@pytest.mark.parametrize("gzip_on", [False, True], ids=["plain", "gzip"])
def test_real_otel_grpc_exporter_sends_a_trace(server: RunningServer, gzip_on: bool) -> None:
    exporter = OTLPSpanExporter(
        endpoint=server.grpc_target,
        insecure=True,
        compression=grpc.Compression.Gzip if gzip_on else grpc.Compression.NoCompression,
    )
    provider = TracerProvider(resource=Resource.create({"service.name": "grpc-service"}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("test")
    with tracer.start_as_current_span(
        "invoke_agent planner",
        attributes={"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "planner"},
    ) as root:
        with tracer.start_as_current_span(
            "chat gpt-4o",
            attributes={
                "gen_ai.operation.name": "chat",
                "gen_ai.request.model": "gpt-4o",
                "gen_ai.usage.input_tokens": 50,
                "gen_ai.usage.output_tokens": 7,
            },
        ) as child:
            child.set_status(StatusCode.ERROR, "rate limited")
        trace_id = format(root.get_span_context().trace_id, "032x")
    provider.shutdown()  # SimpleSpanProcessor exported each span synchronously: both are acked

    detail = server.get(f"/api/v1/traces/{trace_id}").json()
    assert detail["trace"]["agent"] == "planner"
    assert detail["trace"]["span_count"] == 2
    assert detail["trace"]["tokens"]["input"] == 50
    assert detail["trace"]["status"] == "error"
    names = sorted(s["name"] for s in detail["spans"])
    assert names == ["chat gpt-4o", "invoke_agent planner"]


def test_raw_call_returns_partial_success_and_is_idempotent(server: RunningServer) -> None:
    good = span(0xA1, 1, name="root")
    bad = span(0xA1, 2, 1, name="no-start")
    bad.start_time_unix_nano = 0
    body = request([good, bad]).SerializeToString()
    for _ in range(2):  # a resend stores nothing twice
        raw, error = _export(server, body)
        assert error is None
        response = ExportTraceServiceResponse.FromString(raw)
        assert response.partial_success.rejected_spans == 1
        assert "start_time_unix_nano is missing" in response.partial_success.error_message
    detail = server.get(f"/api/v1/traces/{0xA1:032x}").json()
    assert detail["trace"]["span_count"] == 1


def test_empty_request_is_ok(server: RunningServer) -> None:
    raw, error = _export(server, b"")
    assert error is None
    assert not ExportTraceServiceResponse.FromString(raw).HasField("partial_success")


def test_garbage_is_invalid_argument_with_a_message(server: RunningServer) -> None:
    _, error = _export(server, b"\xff\xff\xff\xff not protobuf")
    assert error is not None
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "invalid protobuf ExportTraceServiceRequest" in (error.details() or "")
    status = status_pb2.Status.FromString(
        dict(error.trailing_metadata())["grpc-status-details-bin"]
    )
    assert status.code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    assert not status.details  # not retryable: no RetryInfo
    # The server is still serving.
    _, error = _export(server, request([span(0xA2, 1)]).SerializeToString())
    assert error is None


def test_unknown_method_is_unimplemented(server: RunningServer) -> None:
    _, error = _export(server, b"", method="/opentelemetry.proto.collector.trace.v1.Nope/Export")
    assert error is not None and error.code() == grpc.StatusCode.UNIMPLEMENTED


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_message_over_max_body_bytes_is_refused(make_server: ServerFactory) -> None:
    srv = make_server(max_body_bytes=2048)
    big = request([span(0xA3, 1, attrs={"blob": "x" * 4096})]).SerializeToString()
    _, error = _export(srv, big)
    assert error is not None and error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "larger than max" in (error.details() or "")
    # Compressed below the limit but over it once decompressed: refused too (no bombs).
    _, error = _export(srv, big, compression=grpc.Compression.Gzip)
    assert error is not None and error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert srv.get(f"/api/v1/traces/{0xA3:032x}").status_code == 404


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_full_queue_is_resource_exhausted_with_retry_info(
    make_server: ServerFactory, db_url: str
) -> None:
    srv = make_server(writer_queue_size=1, retry_after_seconds=3)
    lock = sqlite3.connect(
        db_url.removeprefix("sqlite:///"), isolation_level=None, check_same_thread=False
    )
    lock.execute("BEGIN IMMEDIATE")  # the writer blocks on its first transaction
    results: dict[int, tuple[bytes | None, grpc.RpcError | None]] = {}

    def send(i: int) -> None:
        results[i] = _export(srv, request([span(0x600 + i, 1)]).SerializeToString())

    threads = [threading.Thread(target=send, args=(i,)) for i in range(4)]
    try:
        for t in threads:
            t.start()
            time.sleep(0.15)
        deadline = time.monotonic() + 10
        while sum(1 for _, e in results.values() if e is not None) < 2:
            assert time.monotonic() < deadline, results
            time.sleep(0.05)
        assert len(results) == 2, "acknowledged while the database was locked"
    finally:
        lock.execute("COMMIT")
        lock.close()
        for t in threads:
            t.join()
    errors = [e for _, e in results.values() if e is not None]
    assert len(errors) == 2
    for error in errors:
        assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        trailers = dict(error.trailing_metadata())
        status = status_pb2.Status.FromString(trailers["grpc-status-details-bin"])
        assert status.code == grpc.StatusCode.RESOURCE_EXHAUSTED.value[0]
        retry = error_details_pb2.RetryInfo()
        assert status.details[0].Unpack(retry)
        assert retry.retry_delay.seconds == 3
        assert (
            error_details_pb2.RetryInfo.FromString(
                trailers["google.rpc.retryinfo-bin"]
            ).retry_delay.seconds
            == 3
        )
    for i, (_, error) in results.items():
        found = srv.get(f"/api/v1/traces/{0x600 + i:032x}").status_code
        assert found == (404 if error is not None else 200)


def test_stopped_writer_is_unavailable(make_server: ServerFactory) -> None:
    srv = make_server(retry_after_seconds=1)
    srv.app.state.writer.stop()
    _, error = _export(srv, request([span(0xA4, 1)]).SerializeToString())
    assert error is not None and error.code() == grpc.StatusCode.UNAVAILABLE
    assert "retry later" in (error.details() or "")
    status = status_pb2.Status.FromString(
        dict(error.trailing_metadata())["grpc-status-details-bin"]
    )
    retry = error_details_pb2.RetryInfo()
    assert status.details[0].Unpack(retry) and retry.retry_delay.seconds == 1


def test_grpc_port_in_use_is_a_clear_startup_error(server: RunningServer) -> None:
    state = server.app.state
    other = OtlpGrpcServer(
        parser=state.parser, writer=state.writer, max_message_bytes=1024, retry_after_seconds=1
    )
    with pytest.raises(OSError, match=r"cannot listen for OTLP/gRPC on 127\.0\.0\.1:.*PHAROS_GRPC"):
        asyncio.run(other.start("127.0.0.1", state.grpc_port))


def test_grpc_can_be_disabled(make_server: ServerFactory) -> None:
    srv = make_server(grpc_enabled=False)
    assert srv.app.state.grpc_port is None
    empty = srv.post("/v1/traces", content=b"", headers={"content-type": "application/x-protobuf"})
    assert empty.status_code == 200


def test_raw_request_roundtrip_matches_http(server: RunningServer) -> None:
    """The same body over gRPC and over HTTP gives the same stored trace."""
    body = request([span(0xB1, 1, name="root", duration_ms=25)]).SerializeToString()
    _, error = _export(server, body)
    assert error is None
    http_body = request([span(0xB2, 1, name="root", duration_ms=25)]).SerializeToString()
    assert (
        server.post(
            "/v1/traces", content=http_body, headers={"content-type": "application/x-protobuf"}
        ).status_code
        == 200
    )
    a = server.get(f"/api/v1/traces/{0xB1:032x}").json()["trace"]
    b = server.get(f"/api/v1/traces/{0xB2:032x}").json()["trace"]
    for key in ("name", "agent", "duration_ms", "span_count", "status"):
        assert a[key] == b[key], key
    assert isinstance(ExportTraceServiceRequest.FromString(body), ExportTraceServiceRequest)
