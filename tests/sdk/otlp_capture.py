"""A real local OTLP/HTTP receiver for SDK tests: records every request, decodes the protobuf,
and can misbehave on purpose — answer 500 or 429, or accept connections and never answer."""

from __future__ import annotations

import gzip
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue

_REQUESTS = {
    "/v1/traces": (ExportTraceServiceRequest, ExportTraceServiceResponse),
    "/v1/logs": (ExportLogsServiceRequest, ExportLogsServiceResponse),
    "/v1/metrics": (ExportMetricsServiceRequest, ExportMetricsServiceResponse),
}


def value_of(v: AnyValue) -> Any:
    kind = v.WhichOneof("value")
    if kind == "array_value":
        return [value_of(x) for x in v.array_value.values]
    if kind == "kvlist_value":
        return {kv.key: value_of(kv.value) for kv in v.kvlist_value.values}
    return getattr(v, kind) if kind else None


def attrs(kvs: Any) -> dict[str, Any]:
    return {kv.key: value_of(kv.value) for kv in kvs}


@dataclass
class Captured:
    path: str
    headers: dict[str, str]
    message: Any


@dataclass
class Capture:
    """``mode``: "ok", "500", "429" (with Retry-After), or "hang" (never answers)."""

    url: str = ""
    mode: str = "ok"
    received: list[Captured] = field(default_factory=list)
    attempts: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    # --- decoded views ------------------------------------------------------------------------

    def _of(self, path: str) -> list[Captured]:
        with self.lock:
            return [c for c in self.received if c.path == path]

    def spans(self) -> list[dict[str, Any]]:
        out = []
        for c in self._of("/v1/traces"):
            for rs in c.message.resource_spans:
                resource = attrs(rs.resource.attributes)
                for ss in rs.scope_spans:
                    for s in ss.spans:
                        out.append(
                            {
                                "name": s.name,
                                "trace_id": s.trace_id.hex(),
                                "span_id": s.span_id.hex(),
                                "parent_span_id": s.parent_span_id.hex(),
                                "attributes": attrs(s.attributes),
                                "events": [(e.name, attrs(e.attributes)) for e in s.events],
                                "status": (s.status.code, s.status.message),
                                "resource": resource,
                                "headers": c.headers,
                            }
                        )
        return out

    def logs(self) -> list[dict[str, Any]]:
        out = []
        for c in self._of("/v1/logs"):
            for rl in c.message.resource_logs:
                resource = attrs(rl.resource.attributes)
                for sl in rl.scope_logs:
                    for r in sl.log_records:
                        out.append(
                            {
                                "body": value_of(r.body),
                                "severity_number": r.severity_number,
                                "severity_text": r.severity_text,
                                "trace_id": r.trace_id.hex(),
                                "span_id": r.span_id.hex(),
                                "attributes": attrs(r.attributes),
                                "resource": resource,
                                "scope": sl.scope.name,
                            }
                        )
        return out

    def metric_names(self) -> set[str]:
        names = set()
        for c in self._of("/v1/metrics"):
            for rm in c.message.resource_metrics:
                for sm in rm.scope_metrics:
                    names.update(m.name for m in sm.metrics)
        return names

    def wait_for(self, predicate: Any, timeout: float = 20.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return True
            time.sleep(0.05)
        return bool(predicate())


def _handler(capture: Capture) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            length = int(self.headers.get("content-length", "0"))
            body = self.rfile.read(length)
            with capture.lock:
                capture.attempts += 1
            if capture.mode in ("500", "429"):
                status = int(capture.mode)
                self.send_response(status)
                if status == 429:
                    self.send_header("retry-after", "1")
                self.send_header("content-length", "0")
                self.end_headers()
                return
            if self.headers.get("content-encoding") == "gzip":
                body = gzip.decompress(body)
            request_cls, response_cls = _REQUESTS[self.path]
            message = request_cls()
            message.ParseFromString(body)
            with capture.lock:
                capture.received.append(
                    Captured(self.path, {k.lower(): v for k, v in self.headers.items()}, message)
                )
            payload = response_cls().SerializeToString()
            self.send_response(200)
            self.send_header("content-type", "application/x-protobuf")
            self.send_header("content-length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

    return Handler


@contextmanager
def otlp_capture(mode: str = "ok") -> Iterator[Capture]:
    """A receiver on a free loopback port; ``mode="hang"`` accepts and never answers."""
    capture = Capture(mode=mode)
    if mode == "hang":
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        sock.listen(512)
        held: list[socket.socket] = []
        stop = threading.Event()

        def hold() -> None:
            sock.settimeout(0.2)
            while not stop.is_set():
                try:
                    conn, _ = sock.accept()
                except OSError:
                    continue
                with capture.lock:
                    capture.attempts += 1
                held.append(conn)  # never read, never answered

        thread = threading.Thread(target=hold, daemon=True)
        thread.start()
        capture.url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        try:
            yield capture
        finally:
            stop.set()
            thread.join(5)
            for conn in held:
                conn.close()
            sock.close()
        return
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(capture))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    capture.url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield capture
    finally:
        server.shutdown()
        server.server_close()


def closed_port_url() -> str:
    """A URL nothing listens on (connection refused)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"
